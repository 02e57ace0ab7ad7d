"""Signed evidence (issue 17): rewrites by someone without the tablet's key are caught.

The attacks are the careful ones from the issue: everything a hash chain alone can be made to
agree with is rewritten consistently; only the device's private key is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import zipfile
from pathlib import Path

import pytest

from fieldsync.base import signing
from fieldsync.base.hashing import GENESIS
from fieldsync.evidence import keys, ledger, manifest
from fieldsync.evidence.hashcache import HashCache
from fieldsync.evidence.verify import Options, verify_tree
from tests.fixtures.evidence import SITE, empty_visit, file_photos, make_jpeg


def mirror(cfg, server: Path) -> Path:
    """What the engine leaves on the server: the tree plus the pushed ledger, never the key."""
    shutil.copytree(cfg.root, server, ignore=shutil.ignore_patterns(".fieldsync"))
    for local, remote in ledger.ledger_upload_items(cfg):
        (server / remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, server / remote)
    return server


def run(cfg, server: Path, keyring=None):
    return verify_tree(server, cfg.layout, ledger.server_ledgers(server), options=Options(), keyring=keyring)


def problems(report) -> list[str]:
    return [str(f) for f in report.problems]


def device_public(cfg) -> str:
    return signing.public_b64(signing.load_key(ledger.key_path(cfg)))


@pytest.fixture
def keyring_file(filed_visit, tmp_path) -> Path:
    cfg, _ = filed_visit
    path = tmp_path / "backoffice" / "keyring.json"
    path.parent.mkdir()
    keys.add_key(path, "tablet-07", "zhang.san", device_public(cfg), valid_from="2020-01-01")
    return path


def rewrite_careful(server: Path, visit_rel: str, *, sign_with=None, device: str = "tablet-07") -> None:
    """Replace a photo, re-hash its manifest entry, re-chain the manifest and rebuild the
    whole ledger (signed with `sign_with`, a key that is not the tablet's, or unsigned)."""
    visit = server / visit_rel
    data = json.loads((visit / "manifest.json").read_text(encoding="utf-8"))
    index = 1
    target = visit / data["entries"][index]["path"]
    make_jpeg(target, seed=777, gps=SITE)
    old_hashes = [e["hash"] for e in data["entries"]]
    entry = data["entries"][index]
    entry["sha256"], entry["bytes"] = hashlib.sha256(target.read_bytes()).hexdigest(), target.stat().st_size
    prev = entry["prev"]
    for e in data["entries"][index:]:
        e["prev"] = prev
        e["hash"] = manifest.entry_hash(e)
        prev = e["hash"]
    data["head"] = prev
    renamed = dict(zip(old_hashes, [e["hash"] for e in data["entries"]]))
    (visit / "manifest.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    path = server / ledger.remote_rel(device)
    lines, prev = [], GENESIS
    for record in ledger.read(path).records:
        body = record.get("body")
        if isinstance(body, dict):
            body["head"] = renamed.get(body.get("head"), body.get("head"))
            new = ledger.make_record(record["seq"], prev, body)
        else:  # a bundle's excerpt: other visits' records without their bodies
            new = {"seq": record["seq"], "prev": prev, "body_sha256": record["body_sha256"],
                   "hash": ledger.record_hash(record["seq"], prev, record["body_sha256"])}
        if sign_with is not None:
            ledger.sign_record(new, sign_with, record["signed_at"])
        lines.append(json.dumps(new, ensure_ascii=False) + "\n")
        prev = new["hash"]
    path.write_text("".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------- device keys

def test_records_signed_key_private_and_never_pushed(filed_visit, tmp_path):
    cfg, _ = filed_visit
    key_file = ledger.key_path(cfg)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    records = ledger.read(ledger.local_path(cfg)).records
    assert records and all(ledger.signature_valid(r) for r in records)
    assert {r["key"] for r in records} == {device_public(cfg)}
    server = mirror(cfg, tmp_path / "share")
    assert not list(server.rglob(signing.KEY_FILE))
    report = run(cfg, server)
    assert report.findings == [], problems(report)
    assert report.signers["tablet-07"][0]["records"] == len(records)


def test_signing_costs_under_a_millisecond_per_record(tmp_path):
    key = signing.load_key(signing.ensure_key(tmp_path / "k.pem"))
    count = 500
    started = time.perf_counter()
    for seq in range(1, count + 1):
        ledger.sign_record(ledger.make_record(seq, GENESIS, {"visit_id": "v", "head": "0" * 64}), key,
                           "2026-11-25T14:30:00+08:00")
    per_record = (time.perf_counter() - started) / count
    assert per_record < 0.001, f"{per_record * 1000:.3f} ms per record"


def test_existing_tree_gets_its_key_on_first_need(tree):
    ledger.key_path(tree).unlink()  # a tree made before signing existed
    visit = empty_visit(tree, "3300001234", "周期检查", "计量装置", "v1")
    manifest.record_remarks(tree, visit)
    assert ledger.key_path(tree).exists()
    assert all(ledger.signature_valid(r) for r in ledger.read(ledger.local_path(tree)).records)


def test_unsigned_legacy_ledger_warns_and_signing_starts_next(filed_visit, tmp_path, keyring_file, invoke):
    cfg, visit = filed_visit
    path = ledger.local_path(cfg)
    legacy = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in legacy:  # as the tablet wrote them before issue 17
        for name in ("key", "signed_at", "sig"):
            record.pop(name)
        record["body"]["at"] = "2019-06-01T10:00:00+08:00"
        record.update(body_sha256=ledger.digest(record["body"]))
        record["hash"] = ledger.record_hash(record["seq"], record["prev"], record["body_sha256"])
    prev = GENESIS
    for record in legacy:
        record["prev"] = prev
        record["hash"] = ledger.record_hash(record["seq"], prev, record["body_sha256"])
        prev = record["hash"]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in legacy), encoding="utf-8")
    server = mirror(cfg, tmp_path / "share")
    report = run(cfg, server)
    assert not report.problems, problems(report)
    assert any("unsigned record(s), written before signing began" in str(w) for w in report.warnings)
    # the next record is signed, on the same chain
    file_photos(cfg, visit, "appearance", [make_jpeg(tmp_path / "cam" / "NEW.jpg", seed=60, gps=SITE)])
    records = ledger.read(path).records
    assert "sig" not in records[0] and ledger.signature_valid(records[-1])
    server = mirror(cfg, tmp_path / "share2")
    report = run(cfg, server, keys.load_keyring(keyring_file))
    assert not report.problems, problems(report)
    assert report.unsigned["tablet-07"] == len(legacy)
    result = invoke("verify", "--server", server)
    assert "unsigned record(s)" in result.output


# --------------------------------------------------------------------------- the careful attacks

def test_careful_rewrite_of_photo_manifest_and_ledger_caught(filed_visit, tmp_path, keyring_file, invoke):
    cfg, visit = filed_visit
    visit_rel = visit.relative_to(cfg.root).as_posix()
    attacker = signing.load_key(signing.ensure_key(tmp_path / "attacker.pem"))
    # rebuilt and re-signed with the attacker's own key: caught against the keyring
    server = mirror(cfg, tmp_path / "share")
    rewrite_careful(server, visit_rel, sign_with=attacker)
    assert run(cfg, server).problems == []  # a hash chain alone cannot tell (the old weakness)
    found = problems(run(cfg, server, keys.load_keyring(keyring_file)))
    assert any("which keyring keyring.json does not list" in p and signing.fingerprint(signing.public_b64(attacker)) in p
               for p in found), found
    result = invoke("verify", "--server", server)
    assert "signatures not checked against a keyring" in result.output
    result = invoke("verify", "--server", server, "--keyring", keyring_file)
    assert result.exit_code == 1 and "does not list" in result.output
    # rebuilt keeping the tablet's key and signatures: the signatures no longer verify
    server = mirror(cfg, tmp_path / "share2")
    records = ledger.read(server / ledger.remote_rel("tablet-07")).records
    rewrite_careful(server, visit_rel, sign_with=None)
    path = server / ledger.remote_rel("tablet-07")
    rebuilt = ledger.read(path).records
    for old, new in zip(records, rebuilt):
        new.update(key=old["key"], signed_at=old["signed_at"], sig=old["sig"])
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rebuilt), encoding="utf-8")
    found = problems(run(cfg, server))
    assert any("signature does not verify" in p for p in found), found
    # rebuilt without any signature: caught against the keyring (the device is registered)
    server = mirror(cfg, tmp_path / "share3")
    rewrite_careful(server, visit_rel, sign_with=None)
    found = problems(run(cfg, server, keys.load_keyring(keyring_file)))
    assert any("not signed, though dated after tablet-07 was registered" in p
               or "no record is signed, though the keyring registers tablet-07" in p for p in found), found


def test_signed_records_then_unsigned_tail_caught(filed_visit, tmp_path):
    cfg, visit = filed_visit
    server = mirror(cfg, tmp_path / "share")
    path = server / ledger.remote_rel("tablet-07")
    records = ledger.read(path).records
    body = dict(records[-1]["body"], photos=99)
    records.append(ledger.make_record(records[-1]["seq"] + 1, records[-1]["hash"], body))
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    found = problems(run(cfg, server))
    assert any(f"record {len(records)}: not signed, though records before it are" in p for p in found), found


# --------------------------------------------------------------------------- the keyring

def test_keyring_missing_a_device(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    server = mirror(cfg, tmp_path / "share")
    other = tmp_path / "keyring.json"
    keys.add_key(other, "tablet-99", "li.si", signing.public_b64(
        signing.load_key(signing.ensure_key(tmp_path / "other.pem"))))
    result = invoke("verify", "--server", server, "--keyring", other)
    assert result.exit_code == 1
    assert "tablet-07" in result.output and "does not list" in result.output
    assert "fieldsync keyring add" in result.output and signing.fingerprint(device_public(cfg)) in result.output


def test_revoked_key(filed_visit, tmp_path, keyring_file, invoke):
    cfg, visit = filed_visit
    result = invoke("keyring", "revoke", "--keyring", keyring_file, "tablet-07",
                    "--at", "2020-06-01T00:00:00+08:00", "--reason", "lost")
    assert result.exit_code == 0, result.output
    server = mirror(cfg, tmp_path / "share")
    result = invoke("verify", "--server", server, "--keyring", keyring_file)
    assert result.exit_code == 1
    assert "after it was revoked on 2020-06-01T00:00:00+08:00 (lost)" in result.output
    assert "lost or stolen tablet" in result.output


def test_replaced_tablet_old_records_verify_with_old_key_new_with_new(filed_visit, tmp_path, keyring_file, invoke):
    cfg, visit = filed_visit
    old_public = device_public(cfg)
    server = mirror(cfg, tmp_path / "share")
    # the tablet is replaced: its key revoked from now, the new tablet (own device name) registered
    invoke("keyring", "revoke", "--keyring", keyring_file, signing.fingerprint(old_public), "--reason", "replaced")
    new_root = tmp_path / "new-tablet"
    text = (cfg.root / "config.yaml").read_text(encoding="utf-8").replace("tablet-07", "tablet-08")
    text = text.replace(str(cfg.root), str(new_root))
    from fieldsync import config as config_mod
    from fieldsync.tree.folders import init_root
    new_cfg = config_mod.load(init_root(new_root, text))
    for name in os.listdir(cfg.state_dir):  # the new tablet pulls the same master data
        if name.startswith("customers") or name.startswith("master"):
            source = cfg.state_dir / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, new_cfg.state_dir / name)
    assert new_cfg.device == "tablet-08"
    result = invoke("--config", new_root / "config.yaml", "keyring", "device-key")
    new_public = next(line.split()[-1] for line in result.output.splitlines() if line.startswith("key:"))
    assert new_public != old_public
    result = invoke("keyring", "add", "--keyring", keyring_file, "--device", "tablet-08",
                    "--inspector", "zhang.san", "--key", new_public, "--from", "2020-01-01")
    assert result.exit_code == 0, result.output
    new_visit = empty_visit(new_cfg, "3300001234", "周期检查", "计量装置", "2026-12-01_0900")
    file_photos(new_cfg, new_visit, "appearance", [make_jpeg(tmp_path / "c" / "N.jpg", seed=70, gps=SITE)])
    shutil.copytree(new_visit, server / new_visit.relative_to(new_root))
    for local, remote in ledger.ledger_upload_items(new_cfg):
        shutil.copy2(local, server / remote)
    report = run(cfg, server, keys.load_keyring(keyring_file))
    assert not report.problems, problems(report)
    assert report.signers["tablet-07"][0]["registered"]["revoked"]["reason"] == "replaced"
    assert report.signers["tablet-08"][0]["registered"]["device"] == "tablet-08"
    result = invoke("verify", "--server", server, "--keyring", keyring_file, "--ignore-warnings")
    assert result.exit_code == 0, result.output
    assert f"signed by device tablet-07 of inspector zhang.san, key fingerprint {signing.fingerprint(old_public)}" in result.output
    assert "signed by device tablet-08" in result.output
    result = invoke("keyring", "list", "--keyring", keyring_file)
    assert "revoked" in result.output and "tablet-08" in result.output


def test_bad_keyring_is_a_clear_error(filed_visit, tmp_path, invoke):
    bad = tmp_path / "keyring.json"
    bad.write_text('{"format": "fieldsync-keyring/1", "keys": [{"device": "x", "key": "nope"}]}', encoding="utf-8")
    result = invoke("verify", "--keyring", bad)
    assert result.exit_code == 2 and "key 1 needs a device name and a base64 Ed25519" in result.stderr
    assert os.path.exists(bad)


# --------------------------------------------------------------------------- bundles

def make_bundle(invoke, tmp_path: Path, keyring_file: Path | None) -> Path:
    out = tmp_path / "bundle.zip"
    args = ["evidence", "3300001234", "--out", out] + (["--keyring", keyring_file] if keyring_file else [])
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        top = archive.namelist()[0].split("/", 1)[0]
        archive.extractall(tmp_path / "unpacked")
    return tmp_path / "unpacked" / top


def test_bundle_proves_itself_with_nothing_but_the_keyring(filed_visit, tmp_path, keyring_file, invoke):
    cfg, _ = filed_visit
    folder = make_bundle(invoke, tmp_path, keyring_file)
    fingerprint = signing.fingerprint(device_public(cfg))
    described = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    assert described["signers"][0]["fingerprint"] == fingerprint
    assert described["signers"][0]["registered"]["inspector"] == "zhang.san"
    result = invoke("verify", "--server", folder, "--keyring", keyring_file, "--ignore-warnings")
    assert result.exit_code == 0, result.output
    assert f"signed by device tablet-07 of inspector zhang.san, key fingerprint {fingerprint}" in result.output
    assert "not proven: when the server received" in result.output
    html = (folder / "report.html").read_text(encoding="utf-8")
    signers = html[html.index("签名设备 Signing devices"):]
    assert fingerprint in signers and "tablet-07" in signers and "zhang.san" in signers
    assert signers.index("签名设备") < signers.index("Signing devices")  # Chinese first
    assert "已按密钥册 keyring.json 核验" in signers
    from fieldsync.evidence.pdf import find_font
    from tests.conftest import require_real_part

    require_real_part(find_font() is not None, "a Chinese TrueType font (fonts-wqy-microhei)")
    assert (folder / "report.pdf").read_bytes().startswith(b"%PDF-")


def _rewrite_bundle(folder: Path, sign_with) -> None:
    """Photo, manifest, ledger excerpt, bundle.json heads and signers, SHA256SUMS: all agree."""
    visit_rel = next(p.parent for p in folder.rglob("manifest.json")).relative_to(folder).as_posix()
    rewrite_careful(folder, visit_rel, sign_with=sign_with)
    described = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    parsed = ledger.read(folder / ledger.remote_rel("tablet-07"))
    described["ledger_heads"]["tablet-07"] = parsed.head
    if sign_with is not None:
        public = signing.public_b64(sign_with)
        for row in described["signers"]:
            row.update(key=public, fingerprint=signing.fingerprint(public))
    (folder / "bundle.json").write_text(json.dumps(described, ensure_ascii=False), encoding="utf-8")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n"
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def test_bundle_rewritten_consistently_is_caught(filed_visit, tmp_path, keyring_file, invoke):
    cfg, _ = filed_visit
    folder = make_bundle(invoke, tmp_path, keyring_file)
    attacker = signing.load_key(signing.ensure_key(tmp_path / "attacker.pem"))
    _rewrite_bundle(folder, attacker)
    for line in (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines():  # sha256sum -c passes
        digest, rel = line.split("  ", 1)
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == digest
    result = invoke("verify", "--server", folder, "--keyring", keyring_file)
    assert result.exit_code == 1
    assert "does not list" in result.output and signing.fingerprint(signing.public_b64(attacker)) in result.output
    # the same rewrite keeping the tablet's signatures: they no longer verify, keyring or not
    folder.parent.rename(tmp_path / "first-try")
    folder = make_bundle(invoke, tmp_path, keyring_file)
    before = ledger.read(folder / ledger.remote_rel("tablet-07")).records
    _rewrite_bundle(folder, None)
    path = folder / ledger.remote_rel("tablet-07")
    rebuilt = ledger.read(path).records
    for old, new in zip(before, rebuilt):
        new.update(key=old["key"], signed_at=old["signed_at"], sig=old["sig"])
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rebuilt), encoding="utf-8")
    result = invoke("verify", "--server", folder)
    assert result.exit_code == 1 and "signature does not verify" in result.output


def test_reverify_reuses_checked_signatures_only_for_the_same_bytes(filed_visit, tmp_path, keyring_file):
    cfg, _ = filed_visit
    server = mirror(cfg, tmp_path / "share")
    keyring = keys.load_keyring(keyring_file)
    cache_file = tmp_path / "cache.json"

    def again():
        return verify_tree(server, cfg.layout, ledger.server_ledgers(server), options=Options(),
                           keyring=keyring, cache=HashCache(cache_file, server))
    assert not again().problems
    count = len(ledger.read(server / ledger.remote_rel("tablet-07")).records)
    assert len(HashCache(cache_file, server).signatures) == count
    assert not again().problems
    path = server / ledger.remote_rel("tablet-07")
    records = ledger.read(path).records
    records[2]["signed_at"] = "2020-01-02T00:00:00+08:00"  # a signed field changed: checked anew
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert any("record 3: signature does not verify" in p for p in problems(again()))
