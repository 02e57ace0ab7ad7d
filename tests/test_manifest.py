"""manifest.json: facts from real EXIF, pending then sealed entries, chain, ledger, remarks."""

from __future__ import annotations

import json
from datetime import datetime

from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from fieldsync.base.hashing import GENESIS, file_sha256
from fieldsync.evidence import ledger, manifest
from fieldsync.media.exif import photo_facts
from tests.fixtures.evidence import SITE, empty_visit, make_jpeg


def test_photo_facts_reads_time_gps_camera(tmp_path):
    path = make_jpeg(tmp_path / "a.jpg", taken=datetime(2026, 11, 25, 14, 30, 5), offset="+08:00",
                     gps={"lat": 30.2741, "lon": -120.1551, "alt": 12.5})
    facts = photo_facts(path)
    assert facts["taken_at"] == "2026-11-25T14:30:05+08:00"
    assert facts["gps"]["lat"] == 30.2741 and facts["gps"]["lon"] == -120.1551
    assert facts["gps"]["alt"] == 12.5
    assert facts["camera"] == {"make": "HUAWEI", "model": "MatePad 11"}
    assert (facts["width"], facts["height"], facts["format"]) == (640, 480, "JPEG")


def test_photo_facts_tolerates_zero_denominators_and_no_fix(tmp_path):
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(0, 0), IFDRational(0, 0), IFDRational(0, 0))
    gps[3], gps[4] = "E", (IFDRational(120, 1), IFDRational(0, 0), IFDRational(0, 0))
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (50, 40)).save(path, exif=exif)
    facts = photo_facts(path)
    assert facts["gps"] is None and facts["taken_at"] is None and facts["camera"] is None
    # minutes/seconds with zero denominators count as 0, the degrees still stand
    gps[2] = (IFDRational(30, 1), IFDRational(0, 0), IFDRational(0, 0))
    Image.new("RGB", (50, 40)).save(path, exif=exif)
    assert photo_facts(path)["gps"] == {"lat": 30.0, "lon": 120.0}


def test_photo_facts_orientation_swaps_size_and_heic(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    Image.new("RGB", (60, 20)).save(path, exif=exif)
    assert (photo_facts(path)["width"], photo_facts(path)["height"]) == (20, 60)
    from fieldsync.media.imaging import register_heif

    register_heif()
    heic = tmp_path / "p.heic"
    src = make_jpeg(tmp_path / "src.jpg", gps=SITE)
    with Image.open(src) as image:
        image.save(heic, format="HEIF", exif=image.getexif())
    facts = photo_facts(heic)
    assert facts["format"] == "HEIF" and facts["gps"]["lat"] == SITE["lat"]


def test_record_original_then_result_seals_a_chained_entry(filed_visit, tmp_path):
    cfg, visit = filed_visit
    data = manifest.load(visit)
    assert len(data["entries"]) == 5 and data["pending"] == {}
    assert manifest.chain_problems(data) == []
    first, second = data["entries"][:2]
    assert first["prev"] == GENESIS and second["prev"] == first["hash"]
    assert data["head"] == data["entries"][-1]["hash"]
    sha, size = file_sha256(visit / first["path"])
    assert (first["sha256"], first["bytes"]) == (sha, size)
    assert first["inspector"] == "zhang.san" and first["device"] == "tablet-07"
    assert first["kind"] == "appearance" and first["path"].startswith("外观/")
    assert datetime.fromisoformat(first["filed_at"]).tzinfo is not None
    assert first["gps"]["alt"] == 12.5
    for key in ("original_sha256", "original_bytes", "width", "height", "taken_at", "camera"):
        assert first[key]
    # the ledger logged the visit's head and the remark seal
    parsed = ledger.read(ledger.local_path(cfg))
    assert parsed.problems == []
    last = parsed.latest_by_visit()[data["visit_id"]]
    assert last["head"] == data["head"] and last["photos"] == 5
    assert last["remarks"]["history_len"] == 1


def test_shrunk_result_keeps_original_hash(tree, tmp_path):
    cfg = tree
    visit = empty_visit(cfg, "3300005678", "专项检查", "配电房", "v")
    photo = make_jpeg(visit / "外观" / "big.jpg", size=(1200, 900))
    original_sha, original_size = file_sha256(photo)
    manifest.record_original(cfg, visit, "外观/big.jpg", "appearance", photo)
    pending = manifest.load(visit)["pending"]["外观/big.jpg"]
    assert pending["original_sha256"] == original_sha
    with Image.open(photo) as image:  # what the engine does: shrink in place
        exif = image.getexif()
        small = image.resize((600, 450))
    small.save(photo, "JPEG", exif=exif)
    manifest.record_result(cfg, visit, "外观/big.jpg", photo)
    manifest.record_result(cfg, visit, "外观/big.jpg", photo)  # a retry adds nothing
    entries = manifest.load(visit)["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["original_sha256"] == original_sha and entry["original_bytes"] == original_size
    assert entry["sha256"] == file_sha256(photo)[0] != original_sha
    assert (entry["width"], entry["height"]) == (600, 450)
    assert (entry["original_width"], entry["original_height"]) == (1200, 900)


def test_manifest_written_atomically_no_temp_left(filed_visit):
    cfg, visit = filed_visit
    assert not [p for p in visit.iterdir() if p.name.startswith(".")]
    json.loads((visit / "manifest.json").read_text(encoding="utf-8"))


def test_ledger_excerpt_keeps_chain_and_hides_other_visits(filed_visit, tmp_path):
    cfg, visit = filed_visit
    parsed = ledger.read(ledger.local_path(cfg))
    text = ledger.excerpt(parsed.records, set())
    redacted = ledger.parse(text)
    assert redacted.problems == [] and redacted.head == parsed.head
    assert all("body" not in r for r in redacted.records)


def test_ledger_extends_only_appends(filed_visit):
    cfg, _ = filed_visit
    data = ledger.local_path(cfg).read_bytes()
    lines = data.splitlines(keepends=True)
    assert ledger.snapshot(cfg) == data
    assert ledger.extends(b"".join(lines[:-1]), data)
    assert not ledger.extends(data, b"".join(lines[:-1]))
    assert ledger.ledger_upload_items(cfg) == [(ledger.local_path(cfg),
                                                ledger.REMOTE_DIR / "tablet-07")]


def test_two_processes_filing_into_one_visit_keep_one_chain(tree, tmp_path):
    """The daemon and `fieldsync add` may record at the same time: the file lock serialises them."""
    import subprocess
    import sys

    from fieldsync.tree import photos

    cfg = tree
    visit = empty_visit(cfg, "3300001234", "周期检查", "变压器", "shared")
    sources = [make_jpeg(tmp_path / "c" / f"P{i}.jpg", seed=i, gps=SITE) for i in range(16)]
    placed = [a.target for a in photos.add_photos(cfg, visit, "appearance", sources)]
    script = (
        "import sys; from pathlib import Path\n"
        "from fieldsync import config\nfrom fieldsync.evidence import manifest\n"
        "cfg = config.load(Path(sys.argv[1])); visit = Path(sys.argv[2])\n"
        "for p in sys.argv[3:]:\n"
        "    p = Path(p); rel = p.relative_to(visit).as_posix()\n"
        "    manifest.record_original(cfg, visit, rel, 'appearance', p)\n"
        "    manifest.record_result(cfg, visit, rel, p)\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, str(cfg.path), str(visit),
                                 *map(str, placed[i::2])]) for i in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    data = manifest.load(visit)
    assert len(data["entries"]) == 16 and manifest.chain_problems(data) == []
    parsed = ledger.read(ledger.local_path(cfg))
    assert parsed.problems == [] and parsed.latest_by_visit()[data["visit_id"]]["head"] == data["head"]
