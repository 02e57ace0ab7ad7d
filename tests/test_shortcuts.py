"""The five buttons as commands: visit use, shoot, pick, appearance, nameplate, remark."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import click

from fieldsync.tree import inbox, visits
from fieldsync.tree.visits import read_visit
from tests.fixtures.camera import configure_camera, shoot_photo

REL = "3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_0930"


def test_visit_use_sets_shows_and_clears_the_target(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    result = invoke("visit", "use", REL, "--kind", "nameplate")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == str(visit / "铭牌")
    assert f"active: {REL} -> 铭牌 (nameplate), until" in result.stdout

    shown = invoke("visit", "use")
    assert shown.exit_code == 0 and f"active: {REL} -> 铭牌 (nameplate)" in shown.stdout

    cleared = invoke("visit", "use", "--clear")
    assert cleared.exit_code == 0 and f"cleared: {REL}" in cleared.stdout
    assert "active visit: none" in invoke("visit", "use").stdout


def test_visit_use_accepts_a_path_from_inside_the_visit(camera_tree, invoke, monkeypatch):
    cfg, camera, visit = camera_tree
    monkeypatch.chdir(visit / "外观")
    result = invoke("visit", "use", ".")
    assert result.exit_code == 0, result.output
    assert inbox.load_active(cfg).visit.as_posix() == REL


def test_shoot_files_new_camera_photos_and_says_where(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    invoke("visit", "use", REL)
    shoot_photo(camera, "IMG_1.jpg")
    shoot_photo(camera, "IMG_2.jpg")

    result = invoke("shoot")

    assert result.exit_code == 0, result.output
    assert str(visit / "外观" / "IMG_1.jpg") in result.stdout
    assert f"filed: 2 into {REL} / 外观 (appearance)" in result.stdout
    assert sorted(p.name for p in (visit / "外观").iterdir()) == ["IMG_1.jpg", "IMG_2.jpg"]
    assert list(camera.iterdir()) == []


def test_shoot_without_a_target_leaves_photos_and_exits_1(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    photo = shoot_photo(camera, "IMG_3.jpg")
    result = invoke("shoot")
    assert result.exit_code == 1
    assert "1 photo(s) left in" in result.stderr and "visit use" in result.stderr
    assert photo.exists()
    assert "waiting: 1 photo(s) in the camera inbox" in invoke("visit", "use").stdout


def test_shoot_all_files_photos_taken_before_visit_use(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    photo = shoot_photo(camera, "IMG_4.jpg")
    earlier = (visits.now() - timedelta(minutes=5)).timestamp()
    os.utime(photo, (earlier, earlier))
    invoke("visit", "use", REL)
    first = invoke("shoot")
    assert first.exit_code == 1 and "shoot --all" in first.stderr
    second = invoke("shoot", "--all")
    assert second.exit_code == 0 and (visit / "外观" / "IMG_4.jpg").exists()


def test_shoot_without_camera_inbox_is_an_error_naming_the_key(tree, invoke):
    result = invoke("shoot")
    assert result.exit_code == 2
    assert "camera.inbox" in result.stderr and str(tree.path) in result.stderr


def test_appearance_and_nameplate_switch_the_active_kind(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    invoke("visit", "use", REL)
    result = invoke("nameplate")
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == str(visit / "铭牌")
    shoot_photo(camera, "IMG_5.jpg")
    invoke("shoot")
    assert invoke("appearance").exit_code == 0
    shoot_photo(camera, "IMG_6.jpg")
    invoke("shoot")
    assert [p.name for p in (visit / "铭牌").iterdir()] == ["IMG_5.jpg"]
    assert [p.name for p in (visit / "外观").iterdir()] == ["IMG_6.jpg"]
    # `visit use --kind` without a visit does the same
    assert invoke("visit", "use", "--kind", "nameplate").exit_code == 0
    assert inbox.load_active(cfg).kind == "nameplate"


def test_switching_kind_without_a_target_is_an_error_with_the_fix(camera_tree, invoke):
    result = invoke("nameplate")
    assert result.exit_code == 2 and "Error: no active visit" in result.stderr
    assert "fieldsync visit use VISIT" in result.stderr


def test_pick_copies_chosen_photos_into_the_active_visit(camera_tree, invoke, tmp_path):
    cfg, camera, visit = camera_tree
    invoke("visit", "use", REL, "--kind", "nameplate")
    chosen = shoot_photo(tmp_path / "Download", "meter.jpg")
    result = invoke("pick", chosen)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(visit / "铭牌" / "meter.jpg")
    assert chosen.exists()  # local select copies, the gallery keeps its photo
    again = invoke("pick", chosen)
    assert "already in the visit" in again.stderr
    other = invoke("pick", "--kind", "appearance", chosen)
    assert other.exit_code == 0 and (visit / "外观" / "meter.jpg").exists()


def test_pick_refuses_a_file_that_is_not_a_photo(camera_tree, invoke, tmp_path):
    invoke("visit", "use", REL)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo", encoding="utf-8")
    result = invoke("pick", text)
    assert result.exit_code == 2 and "not a readable image" in result.stderr


def test_remark_edits_the_active_visit_and_keeps_history(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    invoke("visit", "use", REL)
    result = invoke("remark", "--appearance", "柜门锈蚀", "--nameplate", "铭牌清晰")
    assert result.exit_code == 0, result.output
    assert "外观 remark: 柜门锈蚀" in result.stdout and "铭牌 remark: 铭牌清晰" in result.stdout
    data = read_visit(visit)
    assert data["appearance_note"] == "柜门锈蚀"
    assert [h["field"] for h in data["history"]] == ["appearance_note", "nameplate_note"]
    shown = invoke("remark")
    assert shown.stdout.splitlines()[0] == str(visit) and "柜门锈蚀" in shown.stdout


def test_remark_with_an_expired_target_asks_for_the_visit(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance", at=visits.now() - timedelta(days=1))
    result = invoke("remark", "--appearance", "x")
    assert result.exit_code == 2 and "expired" in result.stderr
    explicit = invoke("remark", "--visit", REL, "--appearance", "补记")
    assert explicit.exit_code == 0 and read_visit(visit)["appearance_note"] == "补记"


def test_copy_mode_from_the_command_line(camera_tree, invoke):
    cfg, camera, visit = camera_tree
    configure_camera(cfg, camera, mode="copy")
    invoke("visit", "use", REL)
    photo = shoot_photo(camera, "IMG_7.jpg")
    assert invoke("shoot").exit_code == 0
    assert photo.exists() and (visit / "外观" / "IMG_7.jpg").exists()
    assert "no new photos" in invoke("shoot").stdout


# --------------------------------------------------------------------------- launchers

LAUNCHERS = Path(__file__).resolve().parent.parent / "contrib" / "launchers"
CALL = re.compile(r"\b(?:fieldsync|fieldsync-button|fieldsync-tap\"?)(?: -q)? ([a-z][a-z-]*)(?: ([a-z]+))?")


def launcher_files():
    return sorted(p for p in LAUNCHERS.rglob("*") if p.is_file())


def read_text(path: Path) -> str:
    data = path.read_bytes()
    return data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8")


def test_every_launcher_calls_a_command_that_exists():
    from fieldsync.cli import cli

    called = set()
    for path in launcher_files():
        for line in read_text(path).splitlines():
            if line.lstrip().startswith(("#", "rem ")):
                continue
            line = re.sub(r"\s#\s.*$", "", line)  # a shell comment after the code
            for command, sub in CALL.findall(line):
                called.add((command, sub))
    assert {c for c, _ in called} >= {"pick", "shoot", "appearance", "nameplate", "remark"}
    for command, sub in called:
        group = cli.get_command(click.Context(cli), command)
        assert group is not None, f"a launcher calls 'fieldsync {command}', which does not exist"
        if isinstance(group, click.Group) and sub:
            assert sub in group.commands, f"a launcher calls 'fieldsync {command} {sub}'"


def test_desktop_files_are_valid_and_pick_accepts_photos():
    entries = sorted(LAUNCHERS.glob("linux/*.desktop"))
    assert len(entries) >= 5
    for path in entries:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read(path, encoding="utf-8")
        entry = parser["Desktop Entry"]
        assert entry["Type"] == "Application" and entry["Exec"] and entry["Name"]
    pick = configparser.ConfigParser(interpolation=None)
    pick.optionxform = str
    pick.read(LAUNCHERS / "linux" / "fieldsync-pick.desktop", encoding="utf-8")
    assert "%F" in pick["Desktop Entry"]["Exec"] and "image/jpeg" in pick["Desktop Entry"]["MimeType"]
    validator = shutil.which("desktop-file-validate")
    if validator:  # desktop-file-utils, when installed
        run = subprocess.run([validator, *map(str, entries)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_shell_launchers_parse_and_windows_ones_use_crlf():
    for path in launcher_files():
        data = path.read_bytes()
        if path.suffix == ".cmd":
            assert data.count(b"\r\n") == data.count(b"\n"), f"{path.name}: cmd.exe wants CRLF"
            assert b"chcp 65001" in data
        elif data.startswith(b"#!"):
            assert os.access(path, os.X_OK), f"{path} is not executable"
            run = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
            assert run.returncode == 0, f"{path}: {run.stderr}"


def test_autostart_files_start_the_daemon():
    from xml.dom import minidom

    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(LAUNCHERS / "linux" / "fieldsync-daemon.service", encoding="utf-8")
    assert unit["Service"]["ExecStart"].endswith("fieldsync -q daemon")
    assert unit["Service"]["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "default.target"

    task = minidom.parseString((LAUNCHERS / "windows" / "fieldsync-daemon.xml").read_bytes())
    text = lambda tag: task.getElementsByTagName(tag)[0].firstChild.data  # noqa: E731
    assert text("Command").endswith("fieldsync.exe") and text("Arguments") == "-q daemon"
    assert text("StopIfGoingOnBatteries") == "false" and text("ExecutionTimeLimit") == "PT0S"
    assert task.getElementsByTagName("LogonTrigger")

    boot = read_text(LAUNCHERS / "termux" / "boot" / "fieldsync-daemon")
    assert "termux-wake-lock" in boot and "fieldsync -q daemon" in boot
