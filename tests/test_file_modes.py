"""File modes: what people read gets the umask's mode; the tablet's secrets and state stay 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import paramiko
import pytest

from fieldsync.base import atomic
from fieldsync.masterdata.index_file import index_path
from fieldsync.masterdata.store import CustomerStore
from fieldsync.server.site import SITE, THUMBS
from fieldsync.transport import hostkeys

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Run the test under this umask; yields the mode an ordinary new file should get."""
    old = os.umask(request.param)
    try:
        yield 0o666 & ~request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_atomic_writes_follow_the_umask_unless_private(tmp_path, umask):
    atomic.write_text(tmp_path / "page.html", "<p>x</p>")
    atomic.write_bytes(tmp_path / "thumb.jpg", b"\xff\xd8")
    atomic.write_text(tmp_path / "secret.json", "{}", private=True)
    with atomic.atomic_open(tmp_path / "state.json", "w", private=True) as handle:
        handle.write("{}")
    assert mode(tmp_path / "page.html") == umask
    assert mode(tmp_path / "thumb.jpg") == umask
    assert mode(tmp_path / "secret.json") == 0o600
    assert mode(tmp_path / "state.json") == 0o600
    # replacing a private file with an ordinary write (and back) takes the new mode each time
    atomic.write_text(tmp_path / "secret.json", "{}")
    assert mode(tmp_path / "secret.json") == umask
    assert atomic.ordinary_mode() == umask


def test_server_site_thumbnails_and_report_are_readable(umask, server_tree, invoke, tmp_path):
    result = invoke("server", "index", server_tree)
    assert result.exit_code == 0, result.output
    out = tmp_path / "report.csv"
    result = invoke("server", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--out", out, server_tree)
    assert result.exit_code == 0, result.output
    written = [p for folder in (SITE, THUMBS) for p in (server_tree / folder).rglob("*") if p.is_file()]
    assert any(p.suffix == ".jpg" for p in written) and any(p.suffix == ".html" for p in written)
    wrong = {p.relative_to(server_tree).as_posix(): oct(mode(p)) for p in written if mode(p) != umask}
    assert wrong == {}
    assert mode(server_tree / "fieldsync.html") == umask
    assert mode(out) == umask


def test_evidence_bundle_is_readable(umask, filed_visit, invoke, tmp_path):
    out = tmp_path / "bundle.zip"
    assert invoke("evidence", "3300001234", "--out", out).exit_code == 0
    assert mode(out) == umask


def test_tablet_pages_are_readable_and_secrets_stay_private(umask, tree, invoke, tmp_path):
    result = invoke("customer", "open", "3300001234")
    assert result.exit_code == 0, result.output
    customer_root = Path(result.output.strip().splitlines()[-1])
    assert mode(customer_root / "customer.yaml") == umask
    assert mode(customer_root / "index.html") == umask
    # re-import, so that the store and its index are written under this umask
    csv_path = tmp_path / "again.csv"
    csv_path.write_text("户号,户名\n3300000001,新客户\n", encoding="utf-8")
    assert invoke("customers", "import", csv_path).exit_code == 0
    assert mode(CustomerStore(tree.state_dir).path) == 0o600  # personal data
    assert mode(index_path(tree.state_dir)) == 0o600
    known_hosts = tmp_path / "ssh" / "known_hosts"
    hostkeys.pin(known_hosts, "files.example", 22, paramiko.RSAKey.generate(1024))
    assert mode(known_hosts) == 0o600
