"""`fieldsync check` sees what the engine will trip on (issue 14): empty, fake, truncated and
still-growing photos, non-photo files in photo folders, symlinks and symlink loops. Real files
in a real temp tree, through the CLI and through check_tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from fieldsync.demo import write_sample_photo
from fieldsync.tree.check import GROWING_SECONDS, check_tree
from fieldsync.tree.visits import now

ACCOUNT = "3300001234"


@pytest.fixture
def visit(tree, invoke) -> Path:
    invoke("customer", "open", ACCOUNT)
    invoke("category", "add", ACCOUNT, "1", "计量装置")
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    for kind in ("外观", "铭牌"):
        (path / kind).mkdir(exist_ok=True)
    return path


def photo(path: Path) -> Path:
    return write_sample_photo(path, now(), (30.28, 120.13), size=(640, 480))


def aged(path: Path, seconds: float = 3600) -> Path:
    """As if the camera finished writing it `seconds` ago."""
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)
    return path


def findings_for(cfg, path: Path) -> list[str]:
    rel = path.relative_to(cfg.root).as_posix()
    return [f"{f.problem}; {f.advice}" for f in check_tree(cfg) if str(f.path) == rel]


def test_a_visit_with_good_photos_is_clean_even_just_after_they_were_written(tree, invoke, visit):
    photo(visit / "外观" / "a.jpg")           # written this instant, complete
    aged(photo(visit / "铭牌" / "b.jpg"))
    result = invoke("check")
    assert result.exit_code == 0, result.output


def test_empty_photo(tree, visit):
    empty = visit / "外观" / "empty.jpg"
    empty.touch()
    aged(empty)
    assert any("empty photo (0 bytes)" in f for f in findings_for(tree, empty))


def test_fake_photo(tree, visit):
    fake = visit / "铭牌" / "fake.jpg"
    fake.write_text("this is a note, not a JPEG", encoding="utf-8")
    aged(fake)
    [found] = findings_for(tree, fake)
    assert "not a readable photo (not an image)" in found and "quarantine" in found


def test_truncated_photo_is_bad_when_old_and_still_being_written_when_young(tree, invoke, visit):
    whole = photo(visit.parent / "whole.jpg").read_bytes()
    (visit.parent / "whole.jpg").unlink()
    cut = visit / "外观" / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    [young] = findings_for(tree, cut)
    assert young.startswith("still being written") and "let the camera finish" in young
    aged(cut, GROWING_SECONDS + 1)
    [old] = findings_for(tree, cut)
    assert old.startswith("not a readable photo (corrupt or truncated")
    result = invoke("check")
    assert result.exit_code == 1 and "外观/cut.jpg: not a readable photo" in result.output


def test_truncated_png_is_caught_by_the_full_decode(tree, visit):
    full = visit / "外观" / "full.png"
    Image.effect_noise((400, 300), 64).convert("RGB").save(full)
    cut = visit / "外观" / "cut.png"
    cut.write_bytes(full.read_bytes()[:-4000])
    aged(full), aged(cut)
    assert findings_for(tree, full) == []
    assert any("not a readable photo" in f for f in findings_for(tree, cut))


def test_a_note_in_a_photo_folder_is_left_and_pushed_as_it_is(tree, invoke, visit):
    note = visit / "铭牌" / "备注.txt"
    note.write_text("铭牌被油漆遮挡", encoding="utf-8")
    [found] = findings_for(tree, note)
    assert "not a photo, in a photo folder" in found and "pushes it as it is" in found
    assert "fieldsync remark" in found
    assert invoke("check").exit_code == 1


def test_symlinks_are_reported_as_skipped_never_as_misplaced(tree, invoke, visit, tmp_path):
    elsewhere = aged(photo(tmp_path / "elsewhere.jpg"))
    (visit / "外观" / "linked.jpg").symlink_to(elsewhere)
    (visit / "外观" / "loop.jpg").symlink_to("loop.jpg")
    (visit / "铭牌" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (visit / "linked_folder").symlink_to(tmp_path)
    result = invoke("check")
    assert result.exit_code == 1
    lines = result.output.splitlines()

    def line(name: str) -> str:
        [found] = [x for x in lines if x.split(":")[0].endswith(name)]
        return found

    assert "symlink (to " in line("linked.jpg") and "not mirrored" in line("linked.jpg")
    assert "symlink loop (to loop.jpg)" in line("loop.jpg")
    assert "broken symlink" in line("dangling.jpg")
    assert "symlink" in line("linked_folder") and "unknown folder" not in result.output
    assert "misplaced" not in result.output and "does not expect" not in result.output
    assert "linked_folder/" not in result.output  # the linked folder was not walked into


def test_a_visit_without_visit_yaml_is_completed_by_sync_not_by_visit_edit(tree, invoke, visit):
    by_hand = visit.parent / "2026-12-02_现场复查"
    (by_hand / "外观").mkdir(parents=True)
    [found] = findings_for(tree, by_hand)
    assert "visit without visit.yaml" in found
    assert "fieldsync sync" in found and "visit edit" not in found


def test_names_other_filesystems_refuse_are_still_reported(tree, visit):
    odd = aged(photo(visit / "外观" / "IMG_0001.jpg "))
    assert any("not safe on every filesystem" in f for f in findings_for(tree, odd))


def test_damage_inside_a_whole_looking_jpeg_is_found_by_deep_only(tree, invoke, visit):
    """The default check reads a photo's head and tail (as the engine judges completeness);
    --deep decodes it and also finds a scan broken in the middle."""
    path = photo(visit / "外观" / "broken_inside.jpg")
    data = bytearray(path.read_bytes())
    table = data.index(b"\xff\xc4")  # a Huffman table: the decoder cannot read the scan with it
    data[table + 5:table + 21] = b"\xff" * 16
    path.write_bytes(bytes(data))
    aged(path)
    assert invoke("check").exit_code == 0
    deep = invoke("check", "--deep")
    assert deep.exit_code == 1 and "broken_inside.jpg" in deep.output


def test_names_the_engine_refuses_are_reported_with_what_to_do(tree, visit):
    path = aged(photo(visit / "外观" / "a\\b.jpg"))
    (found,) = [f for f in findings_for(tree, path) if "does not push" in f]
    assert "backslash" in found and "rename it" in found


def test_a_customer_yaml_behind_the_master_data_is_reported(tree, invoke, visit):
    from fieldsync.base.yamlfile import read_yaml, write_yaml

    folder = visit.parents[2]
    data = read_yaml(folder / "customer.yaml")
    write_yaml(folder / "customer.yaml", {**data, "meter_no": "0000", "location": {"lat": 30.0, "lon": 120.0}})
    (found,) = [f for f in findings_for(tree, folder / "customer.yaml")]
    assert "meter_no" in found and f"customer open {ACCOUNT}" in found
    assert invoke("customer", "open", ACCOUNT).exit_code == 0
    assert findings_for(tree, folder / "customer.yaml") == []
    assert read_yaml(folder / "customer.yaml")["location"] == {"lat": 30.0, "lon": 120.0}
