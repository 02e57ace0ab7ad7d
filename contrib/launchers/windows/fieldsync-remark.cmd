@echo off
rem 编辑 fieldsync remark: show the active visit's remarks and change them (empty = keep).
chcp 65001 >nul
set PYTHONUTF8=1
if not defined FIELDSYNC_CONFIG set FIELDSYNC_CONFIG=%USERPROFILE%\fieldsync\config.yaml
title 编辑 fieldsync remark
fieldsync remark || goto end
set "A="
set "N="
set /p "A=外观备注 (留空 = 不改): "
set /p "N=铭牌备注 (留空 = 不改): "
if defined A if defined N (fieldsync remark --appearance "%A%" --nameplate "%N%" & goto end)
if defined A fieldsync remark --appearance "%A%"
if defined N fieldsync remark --nameplate "%N%"
:end
pause
