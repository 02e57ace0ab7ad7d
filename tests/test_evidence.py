"""fieldsync evidence: a bundle that verifies on its own, with a printable report."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from fieldsync.evidence import bundle as evidence
from fieldsync.evidence import ledger
from fieldsync.evidence.verify import Options, layout_of, verify_tree
from tests.fixtures.evidence import SITE, empty_visit, file_photos, make_jpeg


def extract(bundle: Path, into: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        archive.extractall(into)
    tops = {n.split("/", 1)[0] for n in names}
    assert len(tops) == 1, tops  # everything under one folder
    return into / tops.pop()


def verify_folder(folder: Path):
    from fieldsync.config import Layout

    return verify_tree(folder, layout_of(folder, Layout()), ledger.server_ledgers(folder), options=Options())


def test_bundle_verifies_alone_and_reports(filed_visit, tmp_path, invoke):
    cfg, visit = filed_visit
    # a second customer's visit must not leak into the bundle
    other = empty_visit(cfg, "3300005678", "专项检查", "配电房", "secret-visit")
    file_photos(cfg, other, "appearance", [make_jpeg(tmp_path / "o" / "O.jpg", gps=SITE)])

    out = tmp_path / "out" / "3300001234.zip"
    out.parent.mkdir()
    result = invoke("evidence", "3300001234", "--out", out)
    assert result.exit_code == 0, result.output
    folder = extract(out, tmp_path / "x")
    report = verify_folder(folder)
    assert report.findings == [] and report.photos == 5 and report.visits == 1
    result = invoke("verify", "--server", folder)
    assert result.exit_code == 0, result.output

    # plain sha256sum -c semantics: every file listed and matching
    sums = (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert {line.split("  ", 1)[1] for line in sums} == files
    for line in sums:
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest

    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") == 5
    assert "杭州某某机械有限公司" in html and "铭牌清晰，型号DTZ341" in html  # remark history
    entries = json.loads((visit / "manifest.json").read_text(encoding="utf-8"))["entries"]
    for entry in entries:
        assert entry["sha256"] in html and entry["original_sha256"] in html
    assert "30.274" in html and "距客户位置" in html
    # nothing of the other customer, not even in the ledger excerpt
    every_text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())
    assert "secret-visit" not in every_text and "宁波" not in every_text
    # the PDF twin of the report: real font, one image per photo, summary page + visit pages
    from fieldsync.evidence.pdf import find_font
    from tests.conftest import require_real_part

    require_real_part(find_font() is not None, "a Chinese TrueType font (fonts-wqy-microhei)")
    pdf = (folder / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and json.loads((folder / "bundle.json").read_text())["pdf"] == "report.pdf"
    assert len(re.findall(rb"/Subtype /Image", pdf)) == 5
    assert len(re.findall(rb"/Type /Page\b", pdf)) >= 2
    excerpt = ledger.read(next((folder / ".fieldsync" / "ledgers").iterdir()))
    assert excerpt.head == ledger.read(ledger.local_path(cfg)).head  # the whole chain


def test_tampered_bundle_is_caught(filed_visit, tmp_path):
    cfg, visit = filed_visit
    out = tmp_path / "b.zip"
    evidence.build_bundle(cfg.root, cfg.layout, {cfg.device: ledger.local_path(cfg)}, "3300001234", out)
    folder = extract(out, tmp_path / "x")
    photo = next(folder.rglob("*.jpg"))
    data = bytearray(photo.read_bytes())
    data[-5] ^= 1
    photo.write_bytes(bytes(data))
    assert [f.path for f in verify_folder(folder).problems] == [photo.relative_to(folder).as_posix()]
    for ledger_file in (folder / ".fieldsync" / "ledgers").iterdir():
        lines = ledger_file.read_text(encoding="utf-8").splitlines(keepends=True)
        ledger_file.write_text("".join(lines[:-1]), encoding="utf-8")
    assert len(verify_folder(folder).problems) >= 2


def test_single_visit_and_refusal_when_broken(filed_visit, tmp_path):
    cfg, visit = filed_visit
    from fieldsync.tree import visits

    second = visits.new_visit(cfg, "3300001234", "周期检查", "计量装置", name="2026-11-26_0900")
    file_photos(cfg, second, "nameplate", [make_jpeg(tmp_path / "s" / "S.jpg", gps=SITE)])
    out = tmp_path / "one.zip"
    bundle = evidence.build_bundle(cfg.root, cfg.layout, {cfg.device: ledger.local_path(cfg)},
                                   "3300001234", out, visit="2026-11-26_0900")
    assert bundle.visits == 1 and bundle.photos == 1
    assert verify_folder(extract(out, tmp_path / "x")).findings == []
    # a broken record: no bundle, and the reason is listed
    photo = next((second / "铭牌").iterdir())
    photo.write_bytes(photo.read_bytes() + b"x")
    from fieldsync.errors import EvidenceBroken

    with pytest.raises(EvidenceBroken) as caught:
        evidence.build_bundle(cfg.root, cfg.layout, {cfg.device: ledger.local_path(cfg)},
                              "3300001234", tmp_path / "two.zip")
    assert any("S.jpg" in p for p in caught.value.problems)
    assert not (tmp_path / "two.zip").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]


def test_bundle_from_server_tree(filed_visit, tmp_path, invoke):
    from tests.test_verify import mirror

    cfg, _ = filed_visit
    server = mirror(cfg, tmp_path / "srv")
    out = tmp_path / "srv.zip"
    result = invoke("evidence", "3300001234", "--server", server, "--out", out)
    assert result.exit_code == 0, result.output
    assert verify_folder(extract(out, tmp_path / "x")).findings == []


def test_evidence_errors_say_what_to_do(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    result = invoke("evidence", "3300009999", "--out", tmp_path / "x.zip")
    assert result.exit_code == 2 and "customer open" not in result.stdout
    assert "Error:" in result.stderr and "3300009999" in result.stderr
    result = invoke("evidence", "3300001234", "--out", tmp_path / "no" / "such" / "x.zip")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = invoke("evidence", "3300001234", "--visit", "nope", "--out", tmp_path / "x.zip")
    assert result.exit_code == 2 and "no visit" in result.stderr
    assert not (tmp_path / "x.zip").exists()


def test_heic_photo_in_bundle_has_facts_and_thumbnail(filed_visit, tmp_path):
    from PIL import Image

    from fieldsync.media.imaging import register_heif

    cfg, visit = filed_visit
    register_heif()
    source = make_jpeg(tmp_path / "src.jpg", seed=5, gps=SITE)
    heic = tmp_path / "cam" / "IMG_0001.HEIC"
    heic.parent.mkdir()
    with Image.open(source) as image:
        image.save(heic, format="HEIF", exif=image.getexif())
    file_photos(cfg, visit, "appearance", [heic])
    out = tmp_path / "h.zip"
    bundle = evidence.build_bundle(cfg.root, cfg.layout, {cfg.device: ledger.local_path(cfg)}, "3300001234", out)
    assert bundle.photos == 6
    folder = extract(out, tmp_path / "x")
    assert verify_folder(folder).findings == []
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/jpeg;base64,") == 6 and "IMG_0001.HEIC" in html
