"""fieldsync verify: a clean tree verifies clean; every kind of tampering is caught, every time."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.evidence import ledger, manifest
from fieldsync.evidence.hashcache import HashCache
from fieldsync.evidence.verify import Options, tablet_ledgers, verify_tree
from fieldsync.sync.derive import derive
from fieldsync.tree import photos, visits
from tests.fixtures.evidence import SITE, empty_visit, file_photos, make_jpeg


def run(cfg, cache=None):
    return verify_tree(cfg.root, cfg.layout, tablet_ledgers(cfg.state_dir, cfg.device),
                       cache=cache, options=Options())


def problems(report) -> list[str]:
    return [str(f) for f in report.problems]


def mirror(cfg, server: Path) -> Path:
    """What the engine leaves on the server: the tree byte for byte plus the pushed ledger."""
    shutil.copytree(cfg.root, server, ignore=shutil.ignore_patterns(".fieldsync"))
    for local, remote in ledger.ledger_upload_items(cfg):
        (server / remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, server / remote)
    return server


def photos_of(visit: Path) -> list[Path]:
    return sorted(p for p in visit.rglob("*.jpg"))


def test_clean_tree_verifies_clean(filed_visit, invoke):
    cfg, visit = filed_visit
    report = run(cfg)
    assert report.findings == [], problems(report)
    assert report.photos == 5 and report.visits == 1 and report.ledgers == {"tablet-07": 7}  # visit created + 5 photos + 1 remark edit
    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    result = invoke("verify", "--json")
    data = json.loads(result.stdout)
    assert data["clean"] and data["photos"] == 5


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_flipped_byte_caught_in_every_photo(filed_visit, where):
    cfg, visit = filed_visit
    for photo in photos_of(visit):
        data = bytearray(photo.read_bytes())
        index = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[where]
        data[index] ^= 0x01
        stat = photo.stat()
        photo.write_bytes(bytes(data))
        os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # hide it from mtime
        rel = photo.relative_to(cfg.root).as_posix()
        assert any(rel in p and "altered" in p for p in problems(run(cfg))), rel
        data[index] ^= 0x01
        photo.write_bytes(bytes(data))
    assert run(cfg).findings == []


def test_deleted_photo_caught(filed_visit, invoke):
    cfg, visit = filed_visit
    for photo in photos_of(visit):
        kept = photo.read_bytes()
        photo.unlink()
        assert any(photo.name in p and "missing" in p for p in problems(run(cfg)))
        photo.write_bytes(kept)
    victim = photos_of(visit)[0]
    victim.unlink()
    result = invoke("verify")
    assert result.exit_code == 1 and victim.name in result.output


def test_added_photo_caught(filed_visit, tmp_path):
    cfg, visit = filed_visit
    for folder in ("外观", "铭牌"):
        extra = make_jpeg(visit / folder / "extra.jpg", seed=99, gps=SITE)
        assert any("extra.jpg" in p and "not in the visit's manifest" in p for p in problems(run(cfg)))
        extra.unlink()
    # a visit without any manifest, photos dropped in by hand
    other = visits.new_visit(cfg, "3300001234", "周期检查", "计量装置", name="hand-made")
    make_jpeg(other / "外观" / "x.jpg", gps=SITE)
    assert any("hand-made/外观/x.jpg" in p for p in problems(run(cfg)))


def _edit_manifest(visit: Path, change) -> None:
    path = visit / "manifest.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("field,value", [
    ("taken_at", "2026-01-01T09:00:00+08:00"), ("gps", {"lat": 30.0, "lon": 120.0}),
    ("inspector", "li.si"), ("original_sha256", "0" * 64), ("kind", "document"),
    ("filed_at", "2026-11-24T10:00:00+08:00"),
])
def test_edited_manifest_entry_caught(filed_visit, field, value):
    cfg, visit = filed_visit
    original = (visit / "manifest.json").read_bytes()
    for index in range(5):
        _edit_manifest(visit, lambda d: d["entries"][index].__setitem__(field, value))
        assert any("entry edited" in p for p in problems(run(cfg))), (field, index)
        # rewriting the whole chain consistently is still caught: the ledger disagrees
        def reseal(d):
            d["entries"][index][field] = value
            prev = d["entries"][index]["prev"]
            for entry in d["entries"][index:]:
                entry["prev"] = prev
                entry["hash"] = manifest.entry_hash(entry)
                prev = entry["hash"]
            d["head"] = prev
        (visit / "manifest.json").write_bytes(original)
        _edit_manifest(visit, reseal)
        found = problems(run(cfg))
        assert found and not any("entry edited" in p for p in found)
        assert any("not sealed in any ledger" in p or "older than or different" in p for p in found)
        (visit / "manifest.json").write_bytes(original)
    assert run(cfg).findings == []


def test_removed_or_reordered_manifest_entries_caught(filed_visit):
    cfg, visit = filed_visit
    original = (visit / "manifest.json").read_bytes()
    _edit_manifest(visit, lambda d: d["entries"].pop(2))
    assert any("removed" in p for p in problems(run(cfg)))
    (visit / "manifest.json").write_bytes(original)
    _edit_manifest(visit, lambda d: d["entries"].reverse())
    assert any("reordered" in p for p in problems(run(cfg)))


def test_manifest_replaced_by_older_version_caught(filed_visit, tmp_path):
    cfg, visit = filed_visit
    older = (visit / "manifest.json").read_bytes()
    late = make_jpeg(tmp_path / "late" / "LATE.jpg", seed=50, gps=SITE)
    placed = file_photos(cfg, visit, "appearance", [late])
    (visit / "manifest.json").write_bytes(older)
    placed[0].unlink()  # a consistent rollback: the photo goes too
    found = problems(run(cfg))
    assert any("replaced by an older version" in p for p in found), found


def _ledger_lines(cfg) -> list[bytes]:
    return ledger.local_path(cfg).read_bytes().splitlines(keepends=True)


def test_reordered_ledger_caught_every_adjacent_swap(filed_visit):
    cfg, _ = filed_visit
    path = ledger.local_path(cfg)
    lines = _ledger_lines(cfg)
    assert len(lines) >= 3
    for i in range(len(lines) - 1):
        swapped = lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2:]
        path.write_bytes(b"".join(swapped))
        assert any("reordered" in p for p in problems(run(cfg))), i
    path.write_bytes(b"".join(lines))
    assert run(cfg).findings == []


def test_truncated_ledger_caught_at_every_length(filed_visit):
    cfg, _ = filed_visit
    path = ledger.local_path(cfg)
    lines = _ledger_lines(cfg)
    for keep in range(len(lines)):
        path.write_bytes(b"".join(lines[:keep]))
        assert problems(run(cfg)), f"truncated to {keep} lines"
    for drop in range(len(lines)):  # a line cut out of the middle or the front
        path.write_bytes(b"".join(lines[:drop] + lines[drop + 1:]))
        assert problems(run(cfg)), f"line {drop} removed"
    path.write_bytes(b"".join(lines)[:-10])  # half a line
    assert problems(run(cfg))


def test_edited_ledger_record_caught(filed_visit):
    cfg, _ = filed_visit
    path = ledger.local_path(cfg)
    lines = _ledger_lines(cfg)
    record = json.loads(lines[0])
    record["body"]["photos"] += 7
    path.write_bytes(json.dumps(record).encode() + b"\n" + b"".join(lines[1:]))
    assert any("record edited" in p for p in problems(run(cfg)))


def test_rewritten_remark_history_caught(filed_visit):
    cfg, visit = filed_visit
    path = visit / "visit.yaml"
    original = path.read_bytes()
    data = read_yaml(path)
    assert data["history"][0]["new"] == "铭牌清晰，型号DTZ341"
    rewrites = {
        "edit text": lambda d: d["history"][0].__setitem__("new", "铭牌模糊") or d.__setitem__("nameplate_note", "铭牌模糊"),
        "drop edit": lambda d: d.__setitem__("history", []),
        "change who": lambda d: d["history"][0].__setitem__("by", "li.si"),
        "change first remark": lambda d: d.__setitem__("appearance_note", "柜体破损"),
        "change creation time": lambda d: d.__setitem__("created_at", "2026-11-20T08:00:00+08:00"),
        "note without history": lambda d: d.__setitem__("nameplate_note", "改过"),
    }
    for name, change in rewrites.items():
        data = read_yaml(path)
        change(data)
        write_yaml(path, data)
        assert problems(run(cfg)), name
        path.write_bytes(original)
    # a new edit through fieldsync is fine: history only grows
    visits.edit_visit(cfg, visit, appearance_note="柜门锈蚀")
    derive(cfg, [visit / "visit.yaml"])  # what `visit edit` runs next: seals the edit at once
    assert run(cfg).findings == []


def test_deleted_visit_or_manifest_caught(filed_visit):
    cfg, visit = filed_visit
    (visit / "manifest.json").unlink()
    found = problems(run(cfg))
    assert any("missing from the tree" in p for p in found)
    assert any("not in any manifest" in p for p in found)


def test_server_tree_verifies_and_catches_tampering(filed_visit, tmp_path, invoke):
    cfg, visit = filed_visit
    server = mirror(cfg, tmp_path / "srv")
    result = invoke("verify", "--server", server)
    assert result.exit_code == 0, result.output
    photo = next((server / visit.relative_to(cfg.root)).rglob("*.jpg"))
    data = bytearray(photo.read_bytes())
    data[len(data) // 2] ^= 0x80
    photo.write_bytes(bytes(data))
    result = invoke("verify", "--server", server, "--json")
    assert result.exit_code == 1
    found = json.loads(result.stdout)["problems"]
    assert [f["path"] for f in found] == [photo.relative_to(server).as_posix()]
    (server / ledger.REMOTE_DIR / "tablet-07").unlink()
    result = invoke("verify", "--server", server)
    assert result.exit_code == 1 and "no ledger seals this visit" in result.output


def test_warnings_far_old_and_no_gps(tree, tmp_path, invoke):
    from tests.fixtures.evidence import set_location

    cfg = tree
    visit = empty_visit(cfg, "3300009999", "违约用电检查", "计量柜", "v1")
    set_location(cfg, "3300009999", SITE)
    far = make_jpeg(tmp_path / "c" / "far.jpg", seed=1, gps={"lat": SITE["lat"] + 0.05, "lon": SITE["lon"]})
    old = make_jpeg(tmp_path / "c" / "old.jpg", seed=2, gps=SITE, taken=datetime.now() - timedelta(days=30))
    nogps = make_jpeg(tmp_path / "c" / "nogps.jpg", seed=3)
    file_photos(cfg, visit, "appearance", [far, old, nogps])
    report = run(cfg)
    assert report.problems == []
    text = [str(w) for w in report.warnings]
    assert any("far.jpg" in w and "m from the customer" in w for w in text)
    assert any("old.jpg" in w and "EXIF time" in w for w in text)
    assert any("nogps.jpg" in w and "no GPS" in w for w in text)
    assert len(text) == 3
    result = invoke("verify")
    assert result.exit_code == 1 and "warning: " in result.output
    assert invoke("verify", "--ignore-warnings").exit_code == 0


def test_incremental_reverify_skips_only_proven_unchanged(filed_visit, tmp_path):
    cfg, visit = filed_visit
    cache_path = tmp_path / "cache.json"
    first = run(cfg, HashCache(cache_path, cfg.root))
    assert first.hashed == 5 and first.cached == 0
    second = run(cfg, HashCache(cache_path, cfg.root))
    assert second.hashed == 0 and second.cached == 5 and second.findings == []
    # same size, mtime put back: ctime still moves, so the cache is not trusted for it
    photo = photos_of(visit)[0]
    stat = photo.stat()
    data = bytearray(photo.read_bytes())
    data[100] ^= 0xFF
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = run(cfg, HashCache(cache_path, cfg.root))
    assert third.hashed == 1 and third.cached == 4
    assert any(photo.name in p for p in problems(third))
    full = run(cfg, HashCache(cache_path, cfg.root, reuse=False))
    assert full.hashed == 5
    # manifests whose chain passed are remembered by content: an edit is re-checked
    cache = HashCache(cache_path, cfg.root)
    assert len(cache.chains) == 1
    _edit_manifest(visit, lambda d: d["entries"][1].__setitem__("inspector", "li.si"))
    assert any("entry edited" in p for p in problems(run(cfg, cache)))
    assert cache.chains == set()


def test_verify_never_trusts_cache_of_another_tree(filed_visit, tmp_path):
    cfg, _ = filed_visit
    cache_path = tmp_path / "cache.json"
    run(cfg, HashCache(cache_path, cfg.root))
    assert HashCache(cache_path, tmp_path).entries == {}


def test_withdrawn_photo_expected_absent(filed_visit):
    cfg, visit = filed_visit
    photo = photos_of(visit)[0]
    kept = photo.read_bytes()
    photo.unlink()
    manifest.record_removal(cfg, visit, photo.relative_to(visit).as_posix(), reason="拍错了")
    report = run(cfg)
    assert report.findings == [] and report.photos == 4
    photo.write_bytes(kept)  # put back after being withdrawn: caught
    assert any("withdrawn" in p for p in problems(run(cfg)))


def test_concurrent_records_keep_one_chain(tree, tmp_path):
    """The engine files photos from several threads: every entry lands, the chain holds."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = tree
    visit = empty_visit(cfg, "3300009999", "周期检查", "变压器", "busy")
    sources = [make_jpeg(tmp_path / "c" / f"P{i}.jpg", seed=i, gps=SITE) for i in range(24)]
    placed = [a.target for a in photos.add_photos(cfg, visit, "appearance", sources)]

    def file_one(path):
        rel = path.relative_to(visit).as_posix()
        manifest.record_original(cfg, visit, rel, "appearance", path)
        manifest.record_result(cfg, visit, rel, path)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(file_one, placed))
    data = manifest.load(visit)
    assert len(data["entries"]) == 24 and manifest.chain_problems(data) == []
    assert run(cfg).findings == []


@pytest.mark.parametrize("target", ["manifest", "ledger"])
def test_any_flipped_byte_in_records_is_caught_or_meaningless(filed_visit, target):
    """Flip one bit at many positions of manifest.json / the ledger: verify reports a problem
    unless the file still parses to exactly the same records (a whitespace change)."""
    cfg, visit = filed_visit
    path = visit / "manifest.json" if target == "manifest" else ledger.local_path(cfg)
    original = path.read_bytes()

    def meaning(data: bytes):
        try:
            if target == "manifest":
                return json.loads(data)
            return [json.loads(line) for line in data.decode().splitlines()]
        except ValueError:
            return None

    checked = 0
    for position in range(0, len(original), 11):
        flipped = bytearray(original)
        flipped[position] ^= 0x01
        path.write_bytes(bytes(flipped))
        if meaning(bytes(flipped)) != meaning(original):
            checked += 1
            assert problems(run(cfg)), f"flip at byte {position} of {target} not caught"
    path.write_bytes(original)
    assert checked > 20 and run(cfg).findings == []


def test_ops_admin_verifies_server_without_any_config(filed_visit, tmp_path, invoke, monkeypatch):
    cfg, _ = filed_visit
    server = mirror(cfg, tmp_path / "srv")
    monkeypatch.delenv("FIELDSYNC_CONFIG")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    result = invoke("verify", "--server", server)
    assert result.exit_code == 0, result.output
    assert "1 visits, 5 photos checked (5 hashed" in result.output
    result = invoke("verify", "--server", server)  # the admin's own cache, outside the tree
    assert "(0 hashed, 5 unchanged since last verify)" in result.output
    assert not list(server.rglob("*cache*"))
