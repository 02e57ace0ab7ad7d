@echo off
rem 铭牌 fieldsync nameplate: camera photos go to 铭牌
rem Double-click, or put a shortcut to this file on the desktop / taskbar. See docs\platforms\windows.md.
rem FIELDSYNC_CONFIG may be set once for the user (setx FIELDSYNC_CONFIG %USERPROFILE%\fieldsync\config.yaml).
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
rem Set before fieldsync runs: in a .cmd file a successful 'set' clears ERRORLEVEL.
if "%FS_LANG%"=="zh" (set "FS_ERROR=出错，见上文" & set "FS_WARNED=请注意上面的警告") else (set "FS_ERROR=error, see above" & set "FS_WARNED=warnings above")
if "%FS_LANG%"=="zh" (title 铭牌 fieldsync nameplate：相机照片进入铭牌文件夹) else (title fieldsync nameplate: camera photos go to the nameplate folder, 铭牌)
fieldsync nameplate
echo.
if errorlevel 2 (echo %FS_ERROR%) else if errorlevel 1 (echo %FS_WARNED%)
pause
