"""The sync engine against a file:// server: literal mirror, shrink + evidence, quarantine,
half-written files, crash/restart without duplicates, kill -9 mid-upload, offline, deletes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path, PurePosixPath

from PIL import Image

from fieldsync import config as config_mod
from fieldsync.base.hashing import file_sha256
from fieldsync.evidence import manifest
from fieldsync.sync import engine
from fieldsync.sync.state import STATE_FILE
from fieldsync.transport.paths import part_name
from tests.fixtures.syncing import camera_photo, mirror_problems, server_root


def _photo_dir(visit: Path, kind: str = "外观") -> Path:
    folder = visit / kind
    folder.mkdir(exist_ok=True)
    return folder


def _reconfigure(cfg, **sync):
    """Set keys of config.yaml's sync section, as an inspector would edit it."""
    text = cfg.path.read_text(encoding="utf-8")
    for key, value in sync.items():
        text, found = re.subn(rf"(?m)^  {key}: \S+", f"  {key}: {value}", text)
        if not found:
            text = text.replace("sync:\n", f"sync:\n  {key}: {value}\n", 1)
    cfg.path.write_text(text, encoding="utf-8")
    return config_mod.load(cfg.path)


def test_sync_mirrors_tree_shrinks_photos_and_records_evidence(sync_visit):
    cfg, visit = sync_visit
    photo = camera_photo(_photo_dir(visit) / "IMG_0001.jpg")
    original_sha = file_sha256(photo)[0]
    heic = camera_photo(_photo_dir(visit, "铭牌") / "IMG_0002.heic", upright=(3024, 4032), fmt="HEIF")
    document = visit.parent.parent.parent / "用电资料" / "供用电合同.pdf"
    document.write_bytes(b"%PDF-1.4 contract\n" * 1000)

    result = engine.sync_once(cfg)

    assert result.exit_code == 0 and result.complete, str(result)
    assert result.uploaded >= 5 and not result.quarantined
    assert mirror_problems(cfg) == []
    server = server_root(cfg)
    rel = photo.relative_to(cfg.root)
    with Image.open(server / rel) as image:
        assert image.size == (1200, 1600) and image.getexif().get(0x0112) == 1
    with Image.open(server / heic.relative_to(cfg.root)) as image:
        assert max(image.size) == 1600
    # The original is archived byte for byte, and the manifest proves both states.
    archived = cfg.state_dir / "originals" / rel
    assert file_sha256(archived)[0] == original_sha
    entries = manifest.current_entries(manifest.load(visit))
    entry = entries["外观/IMG_0001.jpg"]
    assert entry["original_sha256"] == original_sha and entry["sha256"] == file_sha256(photo)[0]
    assert entry["gps"] and entry["taken_at"] == "2026-11-25T09:30:15"
    assert entry["width"] == 1200 and entry["height"] == 1600
    assert (server / document.relative_to(cfg.root)).read_bytes() == document.read_bytes()
    assert (server / ".fieldsync" / "ledgers" / cfg.device).is_file()


def test_empty_visit_folders_reach_the_server(sync_visit):
    cfg, visit = sync_visit
    assert engine.sync_once(cfg).exit_code == 0
    server = server_root(cfg)
    for name in ("外观", "铭牌"):
        assert (server / visit.relative_to(cfg.root) / name).is_dir()


def test_second_pass_and_lost_state_push_nothing_twice(sync_visit):
    cfg, visit = sync_visit
    for i in range(3):
        camera_photo(_photo_dir(visit) / f"IMG_{i}.jpg", seed=i)
    first = engine.sync_once(cfg)
    assert first.exit_code == 0
    server = server_root(cfg)
    stamps = {p: p.stat().st_mtime_ns for p in server.rglob("*") if p.is_file()}

    again = engine.sync_once(cfg)
    assert again.uploaded == 0 and again.unchanged == first.uploaded + first.unchanged

    (cfg.state_dir / STATE_FILE).unlink()  # the cache is lost: rebuilt from tree + server
    rebuilt = engine.sync_once(cfg)
    assert rebuilt.exit_code == 0 and rebuilt.uploaded == 0, str(rebuilt)
    assert {p: p.stat().st_mtime_ns for p in server.rglob("*") if p.is_file()} == stamps
    assert not [p for p in server.rglob("*conflict*")]
    assert len(manifest.load(visit)["entries"]) == 3  # no duplicate evidence either


def test_corrupt_photo_quarantined_others_pushed(sync_visit, invoke):
    cfg, visit = sync_visit
    good = camera_photo(_photo_dir(visit) / "good.jpg")
    whole = camera_photo(_photo_dir(visit) / "cut.jpg", seed=3).read_bytes()
    bad = visit / "外观" / "cut.jpg"
    bad.write_bytes(whole[: len(whole) // 3])
    os.utime(bad, (time.time() - 60, time.time() - 60))  # written a minute ago: not in progress

    first = invoke("sync")  # it may still be being written: retried, not quarantined yet
    assert first.exit_code == 1 and "still being written" in first.output, first.output
    assert bad.exists() and not (cfg.state_dir / "quarantine").exists()
    _reconfigure(cfg, incomplete_retry_seconds=0)  # the retry period is over

    result = invoke("sync")

    assert result.exit_code == 1, result.output
    assert "quarantined" in result.output and "cut.jpg" in result.output
    assert not manifest.load(visit).get("pending")  # no stale "尚未封存" record left behind
    server = server_root(cfg)
    assert (server / good.relative_to(cfg.root)).is_file()
    assert not (server / bad.relative_to(cfg.root)).exists()
    assert not bad.exists()
    held = cfg.state_dir / "quarantine" / bad.relative_to(cfg.root)
    assert held.read_bytes() == whole[: len(whole) // 3]
    listed = json.loads(invoke("quarantine", "list", "--json").stdout)
    assert [(e["origin"], "corrupt or truncated" in e["reason"]) for e in listed] == \
        [(bad.relative_to(cfg.root).as_posix(), True)]
    status = json.loads(invoke("status", "--json").stdout)
    assert status["counts"]["quarantined"] == 1 and status["quarantine_folder"].endswith("quarantine")
    assert status["quarantined"][0]["path"].endswith("cut.jpg")
    assert invoke("sync").exit_code == 0  # the rest is complete; the bad file is out of the tree
    # cleared for good: status follows the quarantine folder, not the state's memory of it
    assert invoke("quarantine", "clear", "--all", "--yes").exit_code == 0
    status = json.loads(invoke("status", "--json").stdout)
    assert status["counts"]["quarantined"] == 0 and status["quarantined"] == []


def test_a_photo_finished_inside_the_quarantine_is_restored_and_pushed_whole(sync_visit, invoke):
    """The slow camera of issue 14: a photo quarantined while half written, finished later by
    the camera app where it now lies; `quarantine restore` puts it back and the next sync
    files it like any other, with its evidence."""
    cfg = _reconfigure(sync_visit[0], incomplete_retry_seconds=0)
    visit = sync_visit[1]
    whole = camera_photo(_photo_dir(visit) / "slow.jpg", seed=5).read_bytes()
    photo = visit / "外观" / "slow.jpg"
    photo.write_bytes(whole[:20_000])
    os.utime(photo, (time.time() - 60, time.time() - 60))
    assert invoke("sync").exit_code == 1 and not photo.exists()
    (entry,) = json.loads(invoke("quarantine", "list", "--json").stdout)
    Path(entry["stored"]).write_bytes(whole)  # the camera app finishes writing it there
    assert json.loads(invoke("quarantine", "list", "--json").stdout)[0]["recorded_size"] == 20_000
    assert invoke("quarantine", "restore", entry["id"]).exit_code == 0
    assert photo.read_bytes() == whole
    result = invoke("sync")
    assert result.exit_code == 0, result.output
    assert (server_root(cfg) / photo.relative_to(cfg.root)).is_file()
    sealed = [e["path"] for e in manifest.load(visit)["entries"] if not e.get("removed")]
    assert "外观/slow.jpg" in sealed
    assert json.loads(invoke("status", "--json").stdout)["counts"]["quarantined"] == 0


def test_half_written_file_is_never_pushed(sync_visit):
    cfg = _reconfigure(sync_visit[0], settle_seconds=0.3)
    visit = sync_visit[1]
    growing = visit.parent.parent.parent / "用电资料" / "scan.pdf"
    stop = threading.Event()
    growing.write_bytes(b"%PDF")

    def writer():  # a slow writer (a file manager copying over a poor connection)
        with open(growing, "ab") as handle:
            while not stop.is_set():
                handle.write(b"x" * 1000)
                handle.flush()
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = engine.sync_once(cfg)
    finally:
        stop.set()
        thread.join()
    rel = growing.relative_to(cfg.root)
    assert rel.as_posix() in result.waiting and result.exit_code == 1
    assert not (server_root(cfg) / rel).exists()
    os.utime(growing, (time.time() - 5, time.time() - 5))
    assert engine.sync_once(cfg).exit_code == 0
    assert (server_root(cfg) / rel).read_bytes() == growing.read_bytes()


def test_server_unreachable_then_back(sync_visit, invoke):
    cfg, visit = sync_visit
    camera_photo(_photo_dir(visit) / "IMG_9.jpg")
    server = server_root(cfg)
    hidden = server.with_name("server-unmounted")
    server.rename(hidden)  # the share is not mounted
    result = invoke("sync")
    assert result.exit_code == 2 and "Error:" in result.output and "not there" in result.output
    status = json.loads(invoke("status", "--json").output)
    assert status["error"] and status["last_push"] is None
    hidden.rename(server)
    again = invoke("sync")
    assert again.exit_code == 0, again.output
    assert mirror_problems(cfg) == []


def test_deletes_keep_the_server_copy_unless_mirror(sync_visit):
    cfg, visit = sync_visit
    photo = camera_photo(_photo_dir(visit) / "IMG_5.jpg")
    assert engine.sync_once(cfg).exit_code == 0
    rel = photo.relative_to(cfg.root)
    photo.unlink()
    assert engine.sync_once(cfg).exit_code == 0
    assert (server_root(cfg) / rel).is_file()  # keep: evidence survives a tablet delete

    note = visit.parent.parent.parent / "用电资料" / "note.txt"
    note.write_text("temporary", encoding="utf-8")
    mirror = _reconfigure(cfg, deletes="mirror")
    assert engine.sync_once(mirror).exit_code == 0
    note.unlink()
    assert engine.sync_once(mirror).exit_code == 0
    assert not (server_root(cfg) / note.relative_to(cfg.root)).exists()


def test_other_content_on_server_is_kept_as_conflict(sync_visit):
    cfg, visit = sync_visit
    document = visit.parent.parent.parent / "用电资料" / "plan.txt"
    document.write_text("tablet version", encoding="utf-8")
    there = server_root(cfg) / document.relative_to(cfg.root)
    there.parent.mkdir(parents=True)
    there.write_text("somebody else's version, longer", encoding="utf-8")
    result = engine.sync_once(cfg)
    assert result.conflicts and result.exit_code == 1
    assert there.read_text(encoding="utf-8") == "somebody else's version, longer"
    kept = there.with_name(f"plan.conflict-{cfg.device}.txt")
    assert kept.read_text(encoding="utf-8") == "tablet version"


def test_symlink_out_of_the_tree_is_not_followed(sync_visit, tmp_path):
    cfg, visit = sync_visit
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwords.txt").write_text("x", encoding="utf-8")
    (visit.parent.parent.parent / "用电资料" / "escape").symlink_to(secret)
    assert engine.sync_once(cfg).exit_code == 0
    assert not list(server_root(cfg).rglob("passwords.txt"))


KILLER = """
import os, signal, sys
from fieldsync import config
from fieldsync.sync import engine
from fieldsync.sync.result import Progress

class KillMidway(Progress):
    def advanced(self, rel, done, total):
        if rel.endswith("big.bin") and 0 < done < total:
            os.kill(os.getpid(), signal.SIGKILL)

engine.sync_once(config.load(sys.argv[1]), progress=KillMidway())
"""


def test_kill_9_mid_upload_then_resume(sync_visit):
    cfg, visit = sync_visit
    big = visit.parent.parent.parent / "用电资料" / "big.bin"
    big.write_bytes(os.urandom(5 * 1024 * 1024))  # several 1 MiB chunks: killed after the first
    os.utime(big, (time.time() - 10, time.time() - 10))
    camera_photo(_photo_dir(visit) / "IMG_7.jpg")
    child = subprocess.run([sys.executable, "-c", KILLER, str(cfg.path)], cwd=Path(__file__).parent.parent,
                           capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    server = server_root(cfg)
    rel = big.relative_to(cfg.root)
    assert not (server / rel).exists()  # never a partial file under the final name
    assert (server / rel).with_name(part_name("big.bin", cfg.device)).exists()

    result = engine.sync_once(cfg)  # the lock of the killed process is free again
    assert result.exit_code == 0, str(result)
    assert mirror_problems(cfg) == []
    assert len(manifest.load(visit)["entries"]) == 1


SEAL_KILLER = """
import os, signal, sys
from fieldsync import config
from fieldsync.sync import engine
from fieldsync.sync.result import Progress
from fieldsync.evidence import ledger

def killed(*args, **kwargs):  # the manifest is saved, its ledger record not yet written
    os.kill(os.getpid(), signal.SIGKILL)

ledger.log_visit = killed
engine.sync_once(config.load(sys.argv[1]))
"""


def test_kill_9_between_manifest_and_ledger_still_seals_on_the_server(sync_visit, invoke):
    cfg, visit = sync_visit
    assert engine.sync_once(cfg).exit_code == 0
    camera_photo(_photo_dir(visit) / "IMG_8.jpg")
    child = subprocess.run([sys.executable, "-c", SEAL_KILLER, str(cfg.path)],
                           cwd=Path(__file__).parent.parent, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    head = manifest.load(visit)["head"]
    assert len(manifest.load(visit)["entries"]) == 1  # sealed in the manifest, not in the ledger

    assert engine.sync_once(cfg).exit_code == 0
    assert mirror_problems(cfg) == []
    result = invoke("verify", "--server", server_root(cfg), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code in (0, 1) and report["problems"] == [], report["problems"]
    assert manifest.load(visit)["head"] == head  # the photo was not sealed a second time


# --------------------------------------------------------------------------- real sshd

def test_sftp_push_mirror_restart_and_lost_state(sftp_tree):
    cfg = sftp_tree
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_1000")
    for i in range(4):
        camera_photo(_photo_dir(visit) / f"IMG_{i}.jpg", seed=i)
    camera_photo(_photo_dir(visit, "铭牌") / "NP.heic", upright=(2000, 1500), orientation=1, fmt="HEIF")
    first = engine.sync_once(cfg)
    assert first.exit_code == 0, str(first)
    assert mirror_problems(cfg) == []
    assert engine.sync_once(cfg).uploaded == 0
    (cfg.state_dir / STATE_FILE).unlink()
    rebuilt = engine.sync_once(cfg)
    assert rebuilt.exit_code == 0 and rebuilt.uploaded == 0, str(rebuilt)
    assert len(manifest.load(visit)["entries"]) == 5


def test_sftp_cut_mid_upload_resumes_without_duplicates(sftp_tree, sshd, proxy, remote_root):
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    cfg = sshd.config(remote_root, base=sftp_tree, port=proxy.port)
    tree_mod.open_customer(cfg, "3300001234")
    document = tree_mod.customer_dir(cfg, "3300001234") / "用电资料" / "site-survey.bin"
    document.write_bytes(os.urandom(3 * 1024 * 1024))
    os.utime(document, (time.time() - 10, time.time() - 10))
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_1100")
    camera_photo(_photo_dir(visit) / "IMG_cut.jpg")
    proxy.cut_after(1024 * 1024)  # the Wi-Fi drops after 1 MiB went up
    cut = engine.sync_once(cfg)
    assert cut.error and cut.exit_code == 2
    assert not (remote_root / document.relative_to(cfg.root)).exists()  # nothing half-visible

    done = engine.sync_once(cfg)
    assert done.exit_code == 0, str(done)
    assert mirror_problems(cfg) == []
    assert len(manifest.load(visit)["entries"]) == 1


def test_sftp_server_down_then_back(sftp_tree, sshd, invoke):
    from fieldsync.tree import folders as tree_mod

    tree_mod.open_customer(sftp_tree, "3300005678")
    sshd.stop()
    try:
        down = invoke("sync")
        assert down.exit_code == 2 and "Error:" in down.output
        status = json.loads(invoke("status", "--json").output)
        assert status["error"]
    finally:
        sshd.start()
    assert invoke("sync").exit_code == 0
    assert mirror_problems(sftp_tree) == []


# --------------------------------------------------------------------------- visit renames

def _pushed_names(server: Path) -> set[str]:
    return {p.relative_to(server).as_posix() for p in server.rglob("*") if p.is_file()}


class _CountingTransport:
    """The real transport, counting uploads and renames (to prove a rename re-uploads nothing)."""

    def __init__(self, inner):
        self._inner = inner
        self.uploads: list[str] = []
        self.renames: list[tuple[str, str]] = []

    def upload(self, local, rel, *args, **kwargs):
        self.uploads.append(PurePosixPath(rel).as_posix())
        return self._inner.upload(local, rel, *args, **kwargs)

    def rename(self, old, new):
        self.renames.append((old.as_posix(), new.as_posix()))
        return self._inner.rename(old, new)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _OrderingTransport(_CountingTransport):
    """The real transport, noting in order each folder the engine made and each upload done."""

    def __init__(self, inner):
        super().__init__(inner)
        self.done: list[tuple[str, str]] = []
        self._noting = threading.Lock()

    def makedirs(self, rel):
        self._inner.makedirs(rel)
        with self._noting:
            self.done.append(("folder", PurePosixPath(rel).as_posix()))

    def upload(self, local, rel, *args, **kwargs):
        super().upload(local, rel, *args, **kwargs)
        with self._noting:
            self.done.append(("file", PurePosixPath(rel).as_posix()))


def test_folders_follow_their_own_parents_and_the_ledger_its_manifests(sync_visit):
    """New folders at several depths: each is made after its own parent (not after every
    folder of the depth above); the ledger goes up after the manifests it logs, the pages
    beside them."""
    from fieldsync.transport import open_transport
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    cfg, visit = sync_visit
    assert engine.sync_once(cfg).exit_code == 0
    category = tree_mod.add_category(cfg, "3300001234", "1", "新类别")
    new_visits = [visits.new_visit(cfg, "3300001234", "1", "新类别", name="2026-11-26_0900"),
                  visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-26_1000")]
    for n, folder in enumerate(new_visits):
        camera_photo(_photo_dir(folder) / "IMG_1.jpg", seed=n)
        camera_photo(_photo_dir(folder, "铭牌") / "IMG_2.jpg", seed=n + 2)
    with open_transport(cfg) as inner:
        ordering = _OrderingTransport(inner)
        result = engine.sync_once(cfg, transport=ordering)
    assert result.exit_code == 0, str(result)
    assert mirror_problems(cfg) == []
    folders = [rel for kind, rel in ordering.done if kind == "folder"]
    made = {PurePosixPath(p.relative_to(cfg.root).as_posix()) for p in [category, *new_visits]}
    assert made <= {PurePosixPath(rel) for rel in folders}
    for n, rel in enumerate(folders):
        assert not {p.as_posix() for p in PurePosixPath(rel).parents} & set(folders[n + 1:]), rel
    files = [rel for kind, rel in ordering.done if kind == "file"]
    manifests = [n for n, rel in enumerate(files) if rel.endswith("/manifest.json")]
    [ledger] = [n for n, rel in enumerate(files) if rel.startswith(".fieldsync/ledgers/")]
    assert len(manifests) == 2 and max(manifests) < ledger
    photos = [n for n, rel in enumerate(files) if rel.endswith(".jpg")]
    assert len(photos) == 4 and max(photos) < min(manifests)


def _rename_case(cfg, visit, how: str):
    """Push a visit with photos, rename it (`visit edit --name` or a plain folder move), push
    again; returns (new visit folder, transport used for the second pass)."""
    from fieldsync.transport import open_transport
    from fieldsync.tree import visits

    for i in range(3):
        camera_photo(_photo_dir(visit) / f"IMG_{i}.jpg", seed=i)
    assert engine.sync_once(cfg).exit_code == 0
    if how == "edit":
        new = visits.edit_visit(cfg, visit, name="2026-11-25_0930-改名")
    else:  # a file manager: no name history in visit.yaml, the manifest's visit_id tells
        new = visit.with_name("2026-11-25_0930-moved")
        os.rename(visit, new)
    with open_transport(cfg) as inner:
        counting = _CountingTransport(inner)
        result = engine.sync_once(cfg, transport=counting)
    assert result.exit_code == 0, str(result)
    return new, counting


def _assert_renamed(cfg, server: Path, old: Path, new: Path, counting) -> None:
    old_rel, new_rel = old.relative_to(cfg.root).as_posix(), new.relative_to(cfg.root).as_posix()
    assert counting.renames == [(old_rel, new_rel)]
    assert not [u for u in counting.uploads if u.endswith(".jpg")]  # no photo re-uploaded
    assert not (server / old_rel).exists()
    assert {f"{new_rel}/外观/IMG_{i}.jpg" for i in range(3)} <= _pushed_names(server)
    assert mirror_problems(cfg) == []
    assert engine.sync_once(cfg).uploaded == 0  # the state follows the new name


def test_visit_edit_name_renames_on_the_server(sync_visit):
    cfg, visit = sync_visit
    new, counting = _rename_case(cfg, visit, "edit")
    _assert_renamed(cfg, server_root(cfg), visit, new, counting)
    assert manifest.load(new)["visit_id"]


def test_visit_moved_in_a_file_manager_renames_on_the_server(sync_visit):
    cfg, visit = sync_visit
    new, counting = _rename_case(cfg, visit, "move")
    _assert_renamed(cfg, server_root(cfg), visit, new, counting)


def test_renamed_visit_missing_on_the_server_is_uploaded(sync_visit):
    import shutil

    from fieldsync.tree import visits

    cfg, visit = sync_visit
    camera_photo(_photo_dir(visit) / "IMG_0.jpg")
    assert engine.sync_once(cfg).exit_code == 0
    server = server_root(cfg)
    shutil.rmtree(server / visit.relative_to(cfg.root))  # someone removed it on the server
    new = visits.edit_visit(cfg, visit, name="2026-11-25_0930-b")
    result = engine.sync_once(cfg)
    assert result.exit_code == 0 and result.uploaded >= 1, str(result)
    assert (server / new.relative_to(cfg.root) / "外观" / "IMG_0.jpg").is_file()
    assert mirror_problems(cfg) == []


def test_sftp_visit_edit_name_renames_on_the_server(sftp_tree, remote_root):
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    cfg = sftp_tree
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_0930")
    new, counting = _rename_case(cfg, visit, "edit")
    _assert_renamed(cfg, remote_root, visit, new, counting)


# --------------------------------------------------------------------------- state file

def test_state_file_is_tinydb_json_read_back_and_rebuilt_when_damaged(tmp_path):
    from tinydb import TinyDB

    from fieldsync.sync.state import FileState, SyncState

    folder = tmp_path / "state"
    with SyncState(folder, flush_every=2) as state:
        state.put_many([FileState("a/b.jpg", 10, 5, remote_size=10, status="done"),
                        FileState("a", is_dir=True, status="done"),
                        FileState("a/c.pdf", 3, 7, status="failed", reason="断网", attempts=2)])
        state.set_meta("last_push", 123.0)
        assert state.rekey("a", "z") == 3
    path = folder / STATE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, TinyDB's layout
    assert sorted(doc["rel"] for doc in data["files"].values()) == ["z", "z/b.jpg", "z/c.pdf"]
    with TinyDB(path) as db:  # TinyDB's own storage reads it
        assert len(db.table("files")) == 3
        # ... and what TinyDB writes (one line) is read back by SyncState
        db.table("files").insert({"rel": "y.txt", "size": 1, "status": "done"})
    with SyncState(folder) as state:
        assert state.get("z/c.pdf").reason == "断网" and state.get("z/c.pdf").attempts == 2
        assert state.get("z").is_dir and state.get("y.txt").status == "done"
        assert state.meta("last_push") == 123.0
        state.put(FileState("x", 1, 1, status="done"))
    assert path.read_text(encoding="utf-8").startswith('{"files": {\n')  # back to one doc a line
    path.write_text(path.read_text(encoding="utf-8")[:40], encoding="utf-8")  # damaged by hand
    with SyncState(folder) as state:
        assert len(state) == 0  # rebuilt from the tree and the server by the next pass
    assert list(folder.glob(f"{path.stem}.broken-*"))
