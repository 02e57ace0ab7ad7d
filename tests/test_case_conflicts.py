"""Names that differ only by case in one folder (`IMG_1.jpg`, `img_1.jpg`) are kept apart on
every server: one is pushed, the other stays on the tablet, reported for renaming (issue 15)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePosixPath

import pytest

from fieldsync.sync import engine
from fieldsync.transport.local import LocalTransport
from tests.fixtures.syncing import camera_photo, server_root


class CaseInsensitiveTransport(LocalTransport):
    """A simulated case-insensitive share (NTFS, APFS, SMB): a name matches an existing entry
    that differs only by case, whose name is kept (case-preserving). A fake, as no such
    filesystem can be mounted in the test environment."""

    def _path(self, rel):
        path = super()._path(rel)
        if path == self._real_root():
            return path
        real = self._real_root()
        for part in PurePosixPath(rel).parts:
            folded = unicodedata.normalize("NFC", part).casefold()
            match = part
            if real.is_dir():
                for name in os.listdir(real):
                    if unicodedata.normalize("NFC", name).casefold() == folded:
                        match = name
                        break
            real = real / match
        return real


def two_cases(visit: Path, older: str = "IMG_1.jpg") -> tuple[Path, Path]:
    """IMG_1.jpg and img_1.jpg, different pictures; `older` has the earlier mtime."""
    upper = camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600), seed=1)
    lower = camera_photo(visit / "外观" / "img_1.jpg", upright=(800, 600), seed=99)
    first, second = (upper, lower) if older == "IMG_1.jpg" else (lower, upper)
    os.utime(first, ns=(first.stat().st_mtime_ns - 10**9,) * 2)
    return upper, lower


def photo_files(server: Path) -> list[str]:
    return sorted(p.name for p in server.rglob("外观/*") if p.is_file())


def check_kept_apart(result, visit, loser: str, winner: str) -> None:
    assert result.exit_code == 1, str(result)
    refused = dict(result.refused)
    key = next(k for k in refused if k.endswith(f"/{loser}"))
    assert "case" in refused[key] and winner in refused[key] and "rename" in refused[key]
    assert (visit / "外观" / loser).is_file()  # left in place on the tablet


def test_file_server_pushes_one_and_reports_the_other(sync_visit, invoke):
    cfg, visit = sync_visit
    two_cases(visit)
    result = engine.sync_once(cfg)
    check_kept_apart(result, visit, "img_1.jpg", "IMG_1.jpg")
    server = server_root(cfg)
    assert photo_files(server) == ["IMG_1.jpg"]
    assert (server / (visit / "外观" / "IMG_1.jpg").relative_to(cfg.root)).read_bytes() == \
        (visit / "外观" / "IMG_1.jpg").read_bytes()
    pending = invoke("status", "--files").output
    assert "img_1.jpg" in pending and "case" in pending
    # Renamed, it goes.
    (visit / "外观" / "img_1.jpg").rename(visit / "外观" / "IMG_2.jpg")
    assert engine.sync_once(cfg).exit_code == 0
    assert photo_files(server) == ["IMG_1.jpg", "IMG_2.jpg"]


def test_the_one_already_pushed_wins_over_an_older_newcomer(sync_visit):
    cfg, visit = sync_visit
    upper = camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600), seed=1)
    assert engine.sync_once(cfg).exit_code == 0
    lower = camera_photo(visit / "外观" / "img_1.jpg", upright=(800, 600), seed=99)
    os.utime(lower, ns=(upper.stat().st_mtime_ns - 10 * 10**9,) * 2)  # a copy of an older photo
    result = engine.sync_once(cfg)
    check_kept_apart(result, visit, "img_1.jpg", "IMG_1.jpg")
    assert photo_files(server_root(cfg)) == ["IMG_1.jpg"]


def test_case_insensitive_server_keeps_each_name_its_own_bytes(sync_visit):
    cfg, visit = sync_visit
    upper, lower = two_cases(visit, older="img_1.jpg")
    server = server_root(cfg)
    transport = CaseInsensitiveTransport(server)
    result = engine.sync_once(cfg, transport=transport)
    check_kept_apart(result, visit, "IMG_1.jpg", "img_1.jpg")
    assert photo_files(server) == ["img_1.jpg"]
    assert (server / lower.relative_to(cfg.root)).read_bytes() == lower.read_bytes()


def test_case_insensitive_server_holding_the_other_case_keeps_both(sync_visit):
    cfg, visit = sync_visit
    server = server_root(cfg)
    # Another tablet pushed IMG_1.jpg; this one has img_1.jpg, another picture.
    theirs = server / (visit / "外观" / "IMG_1.jpg").relative_to(cfg.root)
    camera_photo(theirs, upright=(800, 600), seed=5)
    held = theirs.read_bytes()
    camera_photo(visit / "外观" / "img_1.jpg", upright=(800, 600), seed=99)
    result = engine.sync_once(cfg, transport=CaseInsensitiveTransport(server))
    assert theirs.read_bytes() == held, str(result)  # not overwritten
    assert any("conflict" in name for name in photo_files(server)), photo_files(server)
    assert result.conflicts


def test_folders_differing_by_case_keep_the_second_apart(sync_visit):
    from fieldsync.tree import folders as tree_mod

    cfg, visit = sync_visit
    tree_mod.add_category(cfg, "3300001234", "1", "Meter")
    business = visit.parent.parent
    assert engine.sync_once(cfg).exit_code == 0
    made_by_hand = business / "meter" / "2026-11-26_1000" / "外观"
    camera_photo(made_by_hand / "IMG_9.jpg", upright=(800, 600), seed=9)
    result = engine.sync_once(cfg)
    assert result.exit_code == 1, str(result)
    assert any(key.endswith("meter/2026-11-26_1000/外观/IMG_9.jpg") and "Meter" in reason
               for key, reason in result.refused), result.refused
    server_business = server_root(cfg) / business.relative_to(cfg.root)
    assert sorted(p.name for p in server_business.iterdir()) == ["Meter", "计量装置"]


@pytest.mark.usefixtures("sshd")
def test_sftp_server_pushes_one_and_reports_the_other(sftp_tree, remote_root):
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    cfg = sftp_tree
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_1000")
    two_cases(visit)
    result = engine.sync_once(cfg)
    check_kept_apart(result, visit, "img_1.jpg", "IMG_1.jpg")
    assert photo_files(remote_root) == ["IMG_1.jpg"]
    assert (remote_root / (visit / "外观" / "IMG_1.jpg").relative_to(cfg.root)).read_bytes() == \
        (visit / "外观" / "IMG_1.jpg").read_bytes()
