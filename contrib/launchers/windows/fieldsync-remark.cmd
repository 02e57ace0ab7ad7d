@echo off
rem 编辑 fieldsync remark: show the active visit's remarks and change them (empty = keep).
chcp 65001 >nul
set PYTHONUTF8=1
if not defined FIELDSYNC_CONFIG set FIELDSYNC_CONFIG=%USERPROFILE%\fieldsync\config.yaml
rem This window's own words follow the inspector's language, as fieldsync's do: config.yaml's
rem ui.language, else LANG, else Windows' regional format (zh-CN: Chinese). LANG is passed on,
rem so fieldsync answers in the same language.
set "FS_LANG=en"
if not defined LANG for /f "tokens=3" %%L in ('reg query "HKCU\Control Panel\International" /v LocaleName 2^>nul ^| find "LocaleName"') do set "LANG=%%L"
if defined LANG if /i "%LANG:~0,2%"=="zh" set "FS_LANG=zh"
findstr /r /c:"^ *language: *zh" "%FIELDSYNC_CONFIG%" >nul 2>&1 && set "FS_LANG=zh"
findstr /r /c:"^ *language: *en" "%FIELDSYNC_CONFIG%" >nul 2>&1 && set "FS_LANG=en"
if "%FS_LANG%"=="zh" (title 编辑 fieldsync remark：备注) else (title fieldsync remark: the active visit's remarks)
fieldsync remark || goto end
set "A="
set "N="
if "%FS_LANG%"=="zh" (set "FS_ASK_A=外观备注（留空 = 不改）: " & set "FS_ASK_N=铭牌备注（留空 = 不改）: ") else (set "FS_ASK_A=Appearance remark (empty = keep): " & set "FS_ASK_N=Nameplate remark (empty = keep): ")
set /p "A=%FS_ASK_A%"
set /p "N=%FS_ASK_N%"
if defined A if defined N (fieldsync remark --appearance "%A%" --nameplate "%N%" & goto end)
if defined A fieldsync remark --appearance "%A%"
if defined N fieldsync remark --nameplate "%N%"
:end
pause
