"""The quarantine as a managed store: put through the API (as the engine does), then list,
restore and clear through the CLI, on real files in a real temp tree."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from fieldsync.base.hashing import file_sha256
from fieldsync.errors import QuarantineError
from fieldsync.sync import quarantine

VISIT = PurePosixPath("3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_1430")


def tree_file(cfg, rel: PurePosixPath, data: bytes) -> Path:
    path = cfg.root.joinpath(*rel.parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def set_aside(cfg, name: str, data: bytes, reason: str = "corrupt or truncated image") -> quarantine.Entry:
    rel = VISIT / "外观" / name
    return quarantine.put(cfg, tree_file(cfg, rel, data), rel, reason)


def test_put_moves_the_file_and_records_where_when_why(tree):
    entry = set_aside(tree, "bad.jpg", b"\xff\xd8 not really")
    assert not tree.root.joinpath(*(VISIT / "外观" / "bad.jpg").parts).exists()
    assert entry.stored == quarantine.quarantine_dir(tree).joinpath(*(VISIT / "外观" / "bad.jpg").parts)
    assert entry.stored.read_bytes() == b"\xff\xd8 not really"
    assert entry.origin == VISIT / "外观" / "bad.jpg" and entry.reason == "corrupt or truncated image"
    assert entry.size == len(b"\xff\xd8 not really") and entry.sha256 == file_sha256(entry.stored)[0] and entry.at
    assert quarantine.entries(tree) == [entry]


def test_a_second_file_of_the_same_name_never_overwrites_the_first(tree):
    first = set_aside(tree, "slow_app.jpg", b"first")
    second = set_aside(tree, "slow_app.jpg", b"second")
    assert first.stored.read_bytes() == b"first" and second.stored.name == "slow_app-2.jpg"
    assert second.origin == first.origin and first.id != second.id
    assert len(quarantine.entries(tree)) == 2


def test_list_shows_id_origin_when_why_size(tree, invoke):
    assert "empty" in invoke("quarantine", "list").output
    entry = set_aside(tree, "备注.jpg", b"x" * 2048, "not an image")
    result = invoke("quarantine", "list")
    assert result.exit_code == 0
    for text in (entry.id, str(entry.origin), entry.at, "not an image", "2.0 KB"):
        assert text in result.output
    listed = json.loads(invoke("quarantine", "list", "--json").stdout)
    assert listed[0]["id"] == entry.id and listed[0]["origin"] == str(entry.origin)
    assert listed[0]["size"] == 2048 and listed[0]["reason"] == "not an image"


def test_restore_puts_it_back_and_empties_the_quarantine(tree, invoke):
    entry = set_aside(tree, "p.jpg", b"photo bytes")
    result = invoke("quarantine", "restore", entry.id)
    assert result.exit_code == 0, result.stderr
    back = tree.root.joinpath(*entry.origin.parts)
    assert back.read_bytes() == b"photo bytes" and "fieldsync sync" in result.output
    assert quarantine.entries(tree) == []
    assert not quarantine.quarantine_dir(tree).joinpath(*VISIT.parts[:1]).exists()  # emptied folders go


def test_restore_onto_an_occupied_name_keeps_both(tree, invoke):
    entry = set_aside(tree, "p.jpg", b"quarantined")
    occupied = tree_file(tree, entry.origin, b"taken since")
    result = invoke("quarantine", "restore", str(entry.origin))
    assert result.exit_code == 0, result.stderr
    assert occupied.read_bytes() == b"taken since"
    assert occupied.with_name("p-2.jpg").read_bytes() == b"quarantined"
    assert "came back as p-2.jpg" in result.stderr


def test_restore_by_path_takes_every_fragment_and_all_restores_everything(tree, invoke):
    fragments = [set_aside(tree, "slow.jpg", part) for part in (b"a", b"ab", b"abc")]
    other = set_aside(tree, "other.jpg", b"o")
    stored = str(fragments[0].stored)
    assert invoke("quarantine", "restore", stored).exit_code == 0  # its path in the quarantine works too
    assert invoke("quarantine", "restore", str(other.origin)).exit_code == 0
    assert len(quarantine.entries(tree)) == 2
    assert invoke("quarantine", "restore", "--all").exit_code == 0
    folder = tree.root.joinpath(*(VISIT / "外观").parts)
    assert sorted(p.read_bytes() for p in folder.iterdir()) == [b"a", b"ab", b"abc", b"o"]


def test_clear_asks_first_and_deletes_only_when_confirmed(tree, invoke):
    keep = set_aside(tree, "keep.jpg", b"k")
    gone = set_aside(tree, "gone.jpg", b"g")
    refused = invoke("quarantine", "clear", gone.id, input="n\n")
    assert refused.exit_code != 0 and gone.stored.exists()
    confirmed = invoke("quarantine", "clear", gone.id, input="y\n")
    assert confirmed.exit_code == 0 and not gone.stored.exists()
    assert quarantine.entries(tree) == [keep]
    assert invoke("quarantine", "clear", "--all", "--yes").exit_code == 0
    assert quarantine.entries(tree) == [] and not keep.stored.exists()


def test_clear_without_a_terminal_and_without_yes_deletes_nothing(tree, invoke):
    entry = set_aside(tree, "x.jpg", b"x")
    assert invoke("quarantine", "clear", "--all").exit_code != 0
    assert entry.stored.exists()


def test_unknown_ids_and_missing_arguments_are_errors(tree, invoke):
    set_aside(tree, "x.jpg", b"x")
    unknown = invoke("quarantine", "restore", "deadbeef")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("Error: ")
    assert "quarantine list" in unknown.stderr
    assert invoke("quarantine", "clear").exit_code == 2
    assert invoke("quarantine", "restore", "x", "--all").exit_code == 2
    with pytest.raises(QuarantineError):
        quarantine.restore(tree, "deadbeef")


def test_a_crash_between_move_and_record_leaves_a_listable_restorable_file(tree, invoke):
    entry = set_aside(tree, "crash.jpg", b"moved, never recorded")
    record = entry.stored.with_name(f".{entry.stored.name}{quarantine.RECORD_SUFFIX}")
    record.unlink()  # what a power cut after the rename and before the record write leaves
    # and the half-written temp file of the record write that was under way
    (entry.stored.parent / f".{entry.stored.name}{quarantine.RECORD_SUFFIX}.x1y2.tmp").write_text("{")
    [found] = quarantine.entries(tree)
    assert found.origin == entry.origin and found.reason is None and found.size == entry.size
    assert "not recorded" in invoke("quarantine", "list").output
    assert invoke("quarantine", "restore", found.id).exit_code == 0
    assert tree.root.joinpath(*entry.origin.parts).read_bytes() == b"moved, never recorded"


def test_the_engines_older_reason_notes_are_read(tree):
    """Before the store had records, the engine wrote NAME.reason.txt ("origin\\nreason")."""
    stored = quarantine.quarantine_dir(tree).joinpath(*(VISIT / "铭牌" / "old.jpg").parts)
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"old")
    stored.with_name("old.jpg.reason.txt").write_text(f"{VISIT}/铭牌/old.jpg\nimage file is truncated\n")
    [entry] = quarantine.entries(tree)
    assert entry.origin == VISIT / "铭牌" / "old.jpg" and entry.reason == "image file is truncated"
    quarantine.clear(tree, [entry])
    assert not stored.parent.exists()


def test_a_record_cannot_send_a_file_outside_the_tree(tree, tmp_path):
    entry = set_aside(tree, "evil.jpg", b"e")
    record = entry.stored.with_name(f".{entry.stored.name}{quarantine.RECORD_SUFFIX}")
    record.write_text(json.dumps({"origin": "../../outside/evil.jpg", "reason": "edited"}))
    [found] = quarantine.entries(tree)
    assert found.origin == VISIT / "外观" / "evil.jpg"  # from its place in the quarantine
    target = quarantine.restore(tree, found)
    assert target.is_relative_to(tree.root) and not (tmp_path / "outside").exists()


def test_a_file_that_grew_after_it_was_set_aside_says_so(tree, invoke):
    """A slow camera keeps writing through its open handle after the move (issue 14)."""
    rel = VISIT / "外观" / "slow.jpg"
    path = tree_file(tree, rel, b"first 10 KB")
    with open(path, "ab") as camera:
        entry = quarantine.put(tree, path, rel, "image file is truncated")
        camera.write(b" and the rest")
    [found] = quarantine.entries(tree)
    assert found.grew and found.size > entry.recorded_size
    assert "a writer was still at it" in invoke("quarantine", "list").output


def test_a_failed_restore_leaves_the_file_in_the_quarantine(tree, invoke):
    entry = set_aside(tree, "p.jpg", b"p")
    photo_folder = tree.root.joinpath(*entry.origin.parts[:-1])
    photo_folder.rmdir()
    photo_folder.write_text("a file where the folder was")  # works as root too, unlike chmod
    result = invoke("quarantine", "restore", entry.id)
    assert result.exit_code == 2 and "cannot put" in result.stderr
    assert entry.stored.exists() and quarantine.entries(tree)[0].reason == entry.reason


def test_restore_never_follows_a_symlink_out_of_the_tree(tree, invoke, tmp_path):
    entry = set_aside(tree, "p.jpg", b"p")
    photo_folder = tree.root.joinpath(*entry.origin.parts[:-1])
    photo_folder.rmdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    photo_folder.symlink_to(outside)
    result = invoke("quarantine", "restore", entry.id)
    assert result.exit_code == 2 and "outside the tree" in result.stderr
    assert list(outside.iterdir()) == [] and entry.stored.exists()
