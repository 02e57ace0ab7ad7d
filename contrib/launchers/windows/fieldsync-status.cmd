@echo off
rem 状态 fieldsync status: what has reached the server
rem Double-click, or put a shortcut to this file on the desktop / taskbar. See docs\platforms\windows.md.
rem FIELDSYNC_CONFIG may be set once for the user (setx FIELDSYNC_CONFIG %USERPROFILE%\fieldsync\config.yaml).
chcp 65001 >nul
set PYTHONUTF8=1
if not defined FIELDSYNC_CONFIG set FIELDSYNC_CONFIG=%USERPROFILE%\fieldsync\config.yaml
title 状态 fieldsync status: what has reached the server
fieldsync status
echo.
if errorlevel 2 (echo 出错 / error) else if errorlevel 1 (echo 请注意 / warnings above)
pause
