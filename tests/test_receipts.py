"""Server receipts (issue 17): what the server received cannot be deleted or rolled back unseen.

The attacks need no key: deleting a visit together with its ledger records (the ledger's tail),
or putting back an older copy of a device's tree and ledger, leave a tree whose chains and
signatures all agree. Only the receipts, signed with a server key kept off the share, remember.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

from fieldsync.base import signing
from fieldsync.evidence import ledger
from fieldsync.evidence import receipts as receipts_mod
from fieldsync.evidence.verify import Options, verify_tree
from tests.fixtures.evidence import SITE, empty_visit, file_photos, make_jpeg


def push(cfg, share: Path) -> Path:
    """What a sync leaves on the share: the tree (updated in place) and the ledger, never the key."""
    shutil.copytree(cfg.root, share, ignore=shutil.ignore_patterns(".fieldsync"), dirs_exist_ok=True)
    for local, remote in ledger.ledger_upload_items(cfg):
        (share / remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, share / remote)
    return share


def second_visit(cfg, tmp_path: Path) -> Path:
    visit = empty_visit(cfg, "3300001234", "专项检查", "计量装置", "2026-11-26_0900")
    near = {"lat": SITE["lat"] + 0.0005, "lon": SITE["lon"]}
    file_photos(cfg, visit, "appearance", [make_jpeg(tmp_path / "cam2" / "IMG_9.jpg", seed=99, gps=near)])
    return visit


def take(invoke, share: Path, key: Path, *extra):
    return invoke("server", "receipts", share, "--key", key, *extra)


def check(cfg, tree: Path, key: Path, receipts: Path | None = None, tree_name: str | None = "."):
    loaded = None
    if key is not None:
        public = (Path(str(key) + ".pub")).read_text(encoding="utf-8").strip()
        loaded = receipts_mod.load(receipts or receipts_mod.receipts_file(tree), public, tree=tree_name)
    report = verify_tree(tree, cfg.layout, ledger.server_ledgers(tree), options=Options(), receipts=loaded)
    return [str(f) for f in report.problems], report


def drop_ledger_tail(path: Path, keep: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:keep]), encoding="utf-8")


def test_visit_deleted_with_its_ledger_records_caught(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    kept = len(ledger.read(ledger.local_path(cfg)).records)
    gone = second_visit(cfg, tmp_path)
    share, key = push(cfg, tmp_path / "share"), tmp_path / "serveradmin" / "server_key.pem"
    result = take(invoke, share, key)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(receipts_mod.receipts_file(share).parent.stat().st_mode) == 0o700
    # The careful deletion: the visit folder, and its records from the ledger's end.
    gone_rel = gone.relative_to(cfg.root).as_posix()
    shutil.rmtree(share / gone_rel)
    drop_ledger_tail(share / ledger.remote_rel("tablet-07"), kept)
    found, _ = check(cfg, share, None)
    assert found == []  # signatures and chains alone cannot tell
    found, _ = check(cfg, share, key)
    assert any(p.startswith(gone_rel) and "the server received head" in p and "it is gone" in p
               for p in found), found
    assert any("ledger tablet-07: the server received record" in p and "rolled back" in p for p in found), found
    result = invoke("verify", "--server", share, "--receipts", share / ".fieldsync" / "receipts",
                    "--server-key", f"{key}.pub")
    assert result.exit_code == 1 and "it is gone" in result.output
    # The next receipts run does not launder the deletion into a new, consistent receipt.
    result = take(invoke, share, key)
    assert result.exit_code == 1 and "no longer holds record" in result.output
    assert any("it is gone" in p for p in check(cfg, share, key)[0])


def test_device_rolled_back_caught(filed_visit, tmp_path, invoke):
    cfg, visit = filed_visit
    share, key = push(cfg, tmp_path / "share"), tmp_path / "server_key.pem"
    assert take(invoke, share, key).exit_code == 0
    older = tmp_path / "older"  # what a backup restore, or an admin, would put back
    shutil.copytree(share, older, ignore=shutil.ignore_patterns("receipts"))
    file_photos(cfg, visit, "appearance", [make_jpeg(tmp_path / "cam3" / "IMG_5.jpg", seed=55, gps=SITE)])
    push(cfg, share)
    assert take(invoke, share, key).exit_code == 0
    # Roll the whole device back: every visit folder and the ledger, as they were before.
    visit_rel = visit.relative_to(cfg.root).as_posix()
    shutil.rmtree(share / visit_rel)
    shutil.copytree(older / visit_rel, share / visit_rel)
    shutil.copy2(older / ledger.remote_rel("tablet-07"), share / ledger.remote_rel("tablet-07"))
    assert check(cfg, share, None)[0] == []
    found, _ = check(cfg, share, key)
    assert any("rolled back" in p and "tablet-07" in p for p in found), found
    assert any(p.startswith(f"{visit_rel}/manifest.json") and "does not hold it" in p for p in found), found


def test_bundle_with_receipts_verifies_with_keyring_and_server_key_only(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    keyring = tmp_path / "backoffice" / "keyring.json"
    keyring.parent.mkdir()
    public = signing.public_b64(signing.load_key(ledger.key_path(cfg)))
    assert invoke("keyring", "add", "--keyring", keyring, "--device", "tablet-07", "--inspector",
                  "zhang.san", "--key", public, "--from", "2020-01-01").exit_code == 0
    second_visit(cfg, tmp_path)
    share, key = push(cfg, tmp_path / "share"), tmp_path / "server_key.pem"
    assert take(invoke, share, key).exit_code == 0
    out = tmp_path / "bundle.zip"
    result = invoke("evidence", "3300001234", "--visit", "2026-11-25_1430", "--out", out, "--server", share,
                    "--keyring", keyring, "--receipts", share / ".fieldsync" / "receipts",
                    "--server-key", f"{key}.pub")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        top = archive.namelist()[0].split("/", 1)[0]
        archive.extractall(tmp_path / "third_party")
    folder = tmp_path / "third_party" / top
    shutil.rmtree(share)  # the third party has the bundle, the keyring and the server's public key
    server_public = Path(f"{key}.pub").read_text(encoding="utf-8").strip()
    result = invoke("verify", "--server", folder, "--keyring", keyring, "--server-key", server_public,
                    "--ignore-warnings")
    assert result.exit_code == 0, result.output
    assert "signed by device tablet-07 of inspector zhang.san" in result.output
    assert "received by the server at" in result.output and "2026-11-25_1430" in result.output
    described = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    assert described["receipts"]["fingerprint"] == signing.fingerprint(server_public)
    # Only this visit's receipt keeps its body: the other visit is not in the bundle.
    bodies = [r["body"] for r in ledger.read(receipts_mod.receipts_file(folder)).records if "body" in r]
    assert {b.get("visit_id") for b in bodies if b["kind"] == "visit"} == \
        {v["visit_id"] for v in described["visits"]}
    result = invoke("verify", "--server", folder, "--keyring", keyring, "--ignore-warnings")
    assert "not proven: when the server received" in result.output
    # A server key that is not the server's proves nothing.
    other = signing.public_b64(signing.load_key(signing.ensure_key(tmp_path / "other.pem")))
    result = invoke("verify", "--server", folder, "--keyring", keyring, "--server-key", other)
    assert result.exit_code == 1 and "not signed by server key" in result.output


def test_receipts_tampered_caught(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    kept = len(ledger.read(ledger.local_path(cfg)).records)
    gone = second_visit(cfg, tmp_path)
    share, key = push(cfg, tmp_path / "share"), tmp_path / "server_key.pem"
    assert take(invoke, share, key).exit_code == 0
    path = receipts_mod.receipts_file(share)
    # Delete the visit, its ledger records and its receipt, and re-chain the receipts.
    shutil.rmtree(share / gone.relative_to(cfg.root))
    drop_ledger_tail(share / ledger.remote_rel("tablet-07"), kept)
    records = [r for r in ledger.read(path).records if r["body"].get("visit_id") != gone.name
               and r["body"].get("visit") != gone.relative_to(cfg.root).as_posix()]
    prev, lines = ledger.GENESIS, []
    for seq, record in enumerate(records, start=1):
        body = dict(record["body"])
        if body["kind"] == "ledger":
            body["ledger_seq"] = kept
            body["ledger_hash"] = ledger.read(share / ledger.remote_rel("tablet-07")).records[-1]["hash"]
        rebuilt = ledger.make_record(seq, prev, body)
        rebuilt.update(key=record["key"], signed_at=record["signed_at"], sig=record["sig"])
        prev = rebuilt["hash"]
        lines.append(json.dumps(rebuilt, ensure_ascii=False) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    found, _ = check(cfg, share, key)
    assert any("not signed by server key" in p for p in found), found
    # ... or signed anew with a key of the attacker's own: not the server's key either.
    forger = signing.load_key(signing.ensure_key(tmp_path / "forger.pem"))
    path.write_text("".join(json.dumps(receipts_mod.make_receipt(
        r["seq"], r["prev"], r["body"], forger, r["signed_at"]), ensure_ascii=False) + "\n"
        for r in ledger.read(path).records), encoding="utf-8")
    found, _ = check(cfg, share, key)
    assert any("not signed by server key" in p for p in found), found
    # The server refuses to add to receipts someone else changed.
    result = take(invoke, share, key)
    assert result.exit_code == 2 and "changed by someone without the server key" in result.output
    # And verify needs the server's key to read receipts at all.
    result = invoke("verify", "--server", share, "--receipts", path)
    assert result.exit_code == 2 and "--server-key" in result.output


def test_share_of_tablets_receipted_per_tree(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    share = tmp_path / "share"
    tree = push(cfg, share / "tablets" / "insp07" / "fieldsync")
    key = tmp_path / "server_key.pem"
    result = take(invoke, share, key, "--tablets")
    assert result.exit_code == 0, result.output
    bodies = [r["body"] for r in ledger.read(receipts_mod.receipts_file(share)).records]
    assert {b["tree"] for b in bodies} == {"tablets/insp07/fieldsync"}
    result = invoke("verify", "--server", tree, "--receipts", share / ".fieldsync" / "receipts",
                    "--server-key", f"{key}.pub", "--ignore-warnings")
    assert result.exit_code == 0, result.output
    assert "received by the server at" in result.output
    os.remove(tree / ledger.remote_rel("tablet-07"))
    result = invoke("verify", "--server", tree, "--receipts", share / ".fieldsync" / "receipts",
                    "--server-key", f"{key}.pub")
    assert result.exit_code == 1 and "the ledger is gone" in result.output


# --------------------------------------------------------------------------- the published keyring
# (here beside the receipts: both are trust roots the back office or the server keeps off the share)

def test_keyring_published_like_master_data(filed_visit, tmp_path, invoke):
    cfg, _ = filed_visit
    keyring = tmp_path / "backoffice" / "keyring.json"
    keyring.parent.mkdir()
    public = signing.public_b64(signing.load_key(ledger.key_path(cfg)))
    invoke("keyring", "add", "--keyring", keyring, "--device", "tablet-07", "--inspector", "zhang.san",
           "--key", public, "--from", "2020-01-01")
    server = tmp_path / "server"  # the tablet's file:// server (config.yaml)
    result = invoke("keyring", "publish", "--keyring", keyring, server)
    assert result.exit_code == 0, result.output
    assert (server / ".fieldsync" / "keyring" / "keyring.json").read_bytes() == keyring.read_bytes()
    assert json.loads((server / ".fieldsync" / "keyring" / "version.json").read_text())["sha256"]
    # The tablet fetches it and checks its signatures against it; later verifies use it by default.
    result = invoke("verify", "--keyring", "published", "--ignore-warnings")
    assert result.exit_code == 0, result.output
    assert "signed by device tablet-07 of inspector zhang.san" in result.output
    assert "keyring: the published copy" in result.output
    assert (cfg.state_dir / "keyring.json").read_bytes() == keyring.read_bytes()
    result = invoke("verify", "--ignore-warnings")
    assert "signed by device tablet-07 of inspector zhang.san" in result.output
    # On a server tree, the copy published there is the default (and says where it came from).
    share = push(cfg, tmp_path / "share")
    assert invoke("keyring", "publish", "--keyring", keyring, share).exit_code == 0
    result = invoke("verify", "--server", share, "--ignore-warnings")
    assert result.exit_code == 0 and "signed by device tablet-07 of inspector zhang.san" in result.output
    # A revocation published reaches the tablet on its next fetch.
    invoke("keyring", "revoke", "--keyring", keyring, "tablet-07", "--at", "2020-06-01", "--reason", "lost")
    assert invoke("keyring", "publish", "--keyring", keyring, server).exit_code == 0
    result = invoke("verify", "--keyring", "published")
    assert result.exit_code == 1 and "after it was revoked" in result.output
    # Nothing published: '--keyring published' says what to do.
    shutil.rmtree(server / ".fieldsync" / "keyring")
    result = invoke("verify", "--keyring", "published")
    assert result.exit_code == 2 and "keyring publish" in result.output
