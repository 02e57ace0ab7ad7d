"""The camera inbox: real JPEGs with EXIF filed into the active visit, never lost, never twice."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from fieldsync.errors import TreeError
from fieldsync.sync.derive import derive
from fieldsync.tree import inbox, visits
from tests.fixtures.camera import configure_camera, shoot_photo


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_photo_is_moved_into_the_active_kind_folder_unchanged(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    photo = shoot_photo(camera, "IMG_20261125_093512.jpg")
    digest = sha(photo)

    result = inbox.file_inbox(cfg)

    target = visit / "外观" / "IMG_20261125_093512.jpg"
    assert [f.target for f in result.filed] == [target]
    assert not photo.exists()
    assert sha(target) == digest  # the camera's original, byte for byte (EXIF included)
    with Image.open(target) as image:
        assert image.getexif()[0x0110] == "Redmi Pad SE"
    assert result.reason is None and not result.waiting
    derive(cfg, [f.target for f in result.filed])  # what `shoot` and the daemon's next pass run
    assert "IMG_20261125_093512.jpg" in (visit / "index.html").read_text(encoding="utf-8")


def test_without_a_target_photos_stay_in_the_inbox_and_are_reported(camera_tree):
    cfg, camera, visit = camera_tree
    photo = shoot_photo(camera, "IMG_1.jpg")

    result = inbox.file_inbox(cfg)

    assert result.reason == inbox.NO_TARGET and "visit use" in result.reason_text
    assert result.waiting == [photo] and photo.exists()
    assert not list((visit / "外观").iterdir())
    assert inbox.waiting_photos(cfg) == [photo]


def test_the_target_expires_after_idle_minutes(camera_tree):
    cfg, camera, visit = camera_tree
    yesterday = visits.now() - timedelta(minutes=cfg.camera.idle_minutes + 1)
    inbox.use_visit(cfg, visit, "appearance", at=yesterday)
    photo = shoot_photo(camera, "IMG_tomorrow.jpg")

    result = inbox.file_inbox(cfg)

    assert result.reason == inbox.EXPIRED
    assert result.waiting == [photo] and photo.exists()
    status = inbox.target_status(cfg)
    assert status.state == inbox.EXPIRED and status.live is None
    assert status.expires_at == yesterday.replace(microsecond=0) + timedelta(minutes=cfg.camera.idle_minutes)


def test_filing_restarts_the_idle_clock(camera_tree):
    cfg, camera, visit = camera_tree
    idle = timedelta(minutes=cfg.camera.idle_minutes)
    start = visits.now() - idle + timedelta(minutes=1)  # one minute left
    inbox.use_visit(cfg, visit, "appearance", at=start - timedelta(minutes=5))
    inbox.touch(cfg, inbox.load_active(cfg), at=start)
    shoot_photo(camera, "IMG_1.jpg")
    assert len(inbox.file_inbox(cfg, include_older=True).filed) == 1
    # An hour later than the old deadline, the target is still live: filing used it.
    later = start + idle + timedelta(minutes=1)
    assert inbox.target_status(cfg, at=later).state == "active"


def test_a_half_written_photo_is_not_filed_until_complete(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "nameplate")
    whole = shoot_photo(camera.parent, "whole.jpg", size=(1600, 1200)).read_bytes()
    photo = camera / "IMG_2.jpg"
    photo.write_bytes(whole[: len(whole) // 2])  # the camera app is still writing

    result = inbox.file_inbox(cfg)

    assert result.settling == [photo] and not result.filed
    assert result.next_check_seconds is not None
    assert photo.exists() and not list((visit / "铭牌").iterdir())

    photo.write_bytes(whole)
    result = inbox.file_inbox(cfg)
    assert [f.target.name for f in result.filed] == ["IMG_2.jpg"]
    assert (visit / "铭牌" / "IMG_2.jpg").read_bytes() == whole


def test_the_daemon_filer_waits_for_size_and_mtime_to_settle(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    filer = inbox.InboxFiler(cfg)
    photo = shoot_photo(camera, "IMG_3.jpg")

    first = filer.cycle()  # first sighting: not yet known to be stable
    assert first.settling == [photo] and not first.filed
    assert inbox.InboxFiler.wait_seconds(first) <= inbox.IDLE_POLL_SECONDS

    with open(photo, "ab") as handle:  # still growing between two cycles
        handle.write(b"\0" * 100)
    assert not filer.cycle().filed

    third = filer.cycle()  # unchanged since the last cycle: complete
    assert [f.source for f in third.filed] == [photo]
    assert filer.cycle().filed == []


def test_temporary_and_pending_names_are_left_alone(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    names = [".pending-1764050000-IMG_4.jpg", ".trashed-1764050000-IMG_5.jpg", "IMG_6.jpg.tmp",
             "IMG_7.jpg.part", "VID_8.mp4"]
    for name in names:
        shoot_photo(camera, "x.jpg").rename(camera / name)

    result = inbox.file_inbox(cfg)

    assert not result.filed and not result.waiting and not result.settling
    assert sorted(p.name for p in camera.iterdir()) == sorted(names)
    assert inbox.waiting_photos(cfg) == []


def test_a_name_clash_gets_a_suffix_and_never_overwrites(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    existing = shoot_photo(visit / "外观", "IMG_9.jpg", size=(320, 240))
    before = sha(existing)
    shoot_photo(camera, "IMG_9.jpg")

    result = inbox.file_inbox(cfg)

    assert [f.target.name for f in result.filed] == ["IMG_9-2.jpg"]
    assert sha(existing) == before


def test_copy_mode_keeps_the_camera_roll_and_files_each_photo_once(camera_tree):
    cfg, camera, visit = camera_tree
    cfg = configure_camera(cfg, camera, mode="copy")
    inbox.use_visit(cfg, visit, "appearance")
    photo = shoot_photo(camera, "IMG_10.jpg")

    assert len(inbox.file_inbox(cfg).filed) == 1
    assert photo.exists()
    inbox.switch_kind(cfg, "nameplate")
    again = inbox.file_inbox(cfg, include_older=True)
    assert not again.filed and not again.waiting
    assert [p.name for p in (visit / "外观").iterdir()] == ["IMG_10.jpg"]
    assert not list((visit / "铭牌").iterdir())


def test_copy_mode_ignores_the_camera_roll_from_before(camera_tree):
    cfg, camera, visit = camera_tree
    cfg = configure_camera(cfg, camera, mode="copy")
    old = shoot_photo(camera, "IMG_2019.jpg")
    last_year = (visits.now() - timedelta(days=365)).timestamp()
    os.utime(old, (last_year, last_year))
    inbox.use_visit(cfg, visit, "appearance")

    result = inbox.file_inbox(cfg, include_older=True)

    assert not result.filed and not result.older and inbox.waiting_photos(cfg) == []
    assert old.exists()


def test_a_photo_copied_before_a_crash_is_only_removed_in_move_mode(camera_tree):
    # Copy mode leaves exactly the state a move interrupted after placing the photo leaves:
    # placed and remembered, still in the inbox. Move mode must then remove it, not file it again.
    cfg, camera, visit = camera_tree
    copy_cfg = configure_camera(cfg, camera, mode="copy")
    inbox.use_visit(copy_cfg, visit, "appearance")
    photo = shoot_photo(camera, "IMG_11.jpg")
    assert len(inbox.file_inbox(copy_cfg).filed) == 1

    move_cfg = configure_camera(cfg, camera, mode="move")
    result = inbox.file_inbox(move_cfg)

    assert not result.filed and not photo.exists()
    assert [p.name for p in (visit / "外观").iterdir()] == ["IMG_11.jpg"]


def test_photos_taken_before_the_target_was_set_need_all(camera_tree):
    cfg, camera, visit = camera_tree
    photo = shoot_photo(camera, "IMG_12.jpg")
    earlier = (visits.now() - timedelta(minutes=10)).timestamp()
    os.utime(photo, (earlier, earlier))
    inbox.use_visit(cfg, visit, "appearance")

    result = inbox.file_inbox(cfg)
    assert result.older == [photo] and not result.filed and photo.exists()

    result = inbox.file_inbox(cfg, include_older=True)
    assert [f.source for f in result.filed] == [photo]


def test_switching_kind_sends_the_next_photo_to_the_other_folder(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    shoot_photo(camera, "IMG_13.jpg")
    inbox.file_inbox(cfg)
    target = inbox.switch_kind(cfg, "nameplate")
    assert target.kind == "nameplate"
    shoot_photo(camera, "IMG_14.jpg")
    inbox.file_inbox(cfg)
    assert [p.name for p in (visit / "外观").iterdir()] == ["IMG_13.jpg"]
    assert [p.name for p in (visit / "铭牌").iterdir()] == ["IMG_14.jpg"]


def test_a_renamed_visit_stops_filing_instead_of_recreating_it(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    visits.edit_visit(cfg, visit, name="2026-11-25_上午")
    photo = shoot_photo(camera, "IMG_15.jpg")

    result = inbox.file_inbox(cfg)

    assert result.reason == inbox.VISIT_MISSING and result.waiting == [photo]
    assert not visit.exists()


def test_the_active_target_is_stored_atomically_as_json(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "nameplate")
    data = json.loads((cfg.state_dir / inbox.ACTIVE_FILE).read_text(encoding="utf-8"))
    assert data["visit"] == "3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_0930"
    assert data["kind"] == "nameplate" and data["set_at"] == data["last_used"]
    assert not [p for p in cfg.state_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_broken_active_file_says_how_to_recover(camera_tree):
    cfg, camera, visit = camera_tree
    (cfg.state_dir / inbox.ACTIVE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(TreeError, match="visit use --clear"):
        inbox.target_status(cfg)
    assert inbox.clear_active(cfg) is None  # nothing readable to report
    assert inbox.target_status(cfg).state == "none"


def test_only_visit_folders_can_be_targets(camera_tree):
    cfg, camera, visit = camera_tree
    with pytest.raises(TreeError, match="not a visit folder"):
        inbox.use_visit(cfg, visit.parent, "appearance")


def test_no_inbox_and_a_missing_inbox_are_reasons_not_crashes(camera_tree, tmp_path):
    cfg, camera, visit = camera_tree
    no_inbox = replace(cfg, camera=replace(cfg.camera, inbox=None))
    assert inbox.file_inbox(no_inbox).reason == inbox.NO_INBOX
    missing = replace(cfg, camera=replace(cfg.camera, inbox=tmp_path / "no-such-folder"))
    assert inbox.file_inbox(missing).reason == inbox.INBOX_MISSING


def test_a_photo_that_never_decodes_is_reported_as_failed(camera_tree):
    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    broken = camera / "IMG_16.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    now = [1000.0]
    seen: inbox.Observations = {}
    inbox.file_inbox(cfg, seen=seen, clock=lambda: now[0])
    now[0] += inbox.UNREADABLE_AFTER_SECONDS + 1
    result = inbox.file_inbox(cfg, seen=seen, clock=lambda: now[0])
    assert [p for p, _ in result.failed] == [broken] and not result.settling
    assert broken.exists()


def test_the_status_summary_names_target_expiry_and_waiting_photos(camera_tree):
    cfg, camera, visit = camera_tree
    assert inbox.summary(cfg)["state"] == "none"
    shoot_photo(camera, "IMG_17.jpg")
    at = visits.now()
    inbox.use_visit(cfg, visit, "nameplate", at=at)
    summary = inbox.summary(cfg)
    assert summary["state"] == "active" and summary["waiting"] == 1
    assert summary["target"] == {"visit": "3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_0930",
                                 "kind": "nameplate", "folder": "铭牌"}
    expected = at.replace(microsecond=0) + timedelta(minutes=cfg.camera.idle_minutes)
    assert summary["expires_at"] == expected.isoformat(timespec="seconds")
    json.dumps(summary)  # ready for --json


def test_a_filed_photo_reaches_the_server_with_its_camera_original_on_record(camera_tree):
    # The inbox records no evidence itself: the engine does, from the filed file, which is the
    # camera's original byte for byte. This checks that hand-over end to end (file:// server).
    from fieldsync.evidence import manifest
    from fieldsync.sync import engine

    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    photo = shoot_photo(camera, "IMG_18.jpg", size=(3264, 2448))
    original = sha(photo)
    inbox.file_inbox(cfg)

    engine.sync_once(cfg)

    entry = manifest.current_entries(manifest.load(visit))["外观/IMG_18.jpg"]
    assert entry["original_sha256"] == original and entry["kind"] == "appearance"
    assert entry["sha256"] != original  # shrunk
    server = Path(unquote(urlsplit(cfg.server.url).path))
    rel = visit.relative_to(cfg.root) / "外观" / "IMG_18.jpg"
    assert sha(server / rel) == entry["sha256"]


def test_the_filer_thread_files_photos_and_reports_them_until_stopped(camera_tree):
    import threading

    cfg, camera, visit = camera_tree
    inbox.use_visit(cfg, visit, "appearance")
    stop, arrived = threading.Event(), []
    got_one = threading.Event()

    def on_filed(rel):
        arrived.append(rel)
        got_one.set()

    thread = threading.Thread(target=inbox.InboxFiler(cfg).run, args=(stop, on_filed), name="test-inbox")
    thread.start()
    try:
        shoot_photo(camera, "IMG_19.jpg")
        assert got_one.wait(60), "the filer thread never filed the photo"
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    assert [r.as_posix() for r in arrived] == [
        "3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_0930/外观/IMG_19.jpg"]


def test_filing_into_a_hand_made_visit_works_even_where_pages_cannot_render(camera_tree):
    # A visit made in the file manager, under a customer folder without customer.yaml.
    cfg, camera, _ = camera_tree
    visit = cfg.root / "3300007777_手建客户" / "周期检查" / "配电房" / "上午检查"
    (visit / "外观").mkdir(parents=True)
    inbox.use_visit(cfg, visit, "appearance")
    shoot_photo(camera, "IMG_20.jpg")
    result = inbox.file_inbox(cfg)
    assert [f.target for f in result.filed] == [visit / "外观" / "IMG_20.jpg"]
