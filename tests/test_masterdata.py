"""`customers publish` / `customers pull`: master data from the server tree to tablets."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fieldsync.base.hashing import file_sha256
from fieldsync.masterdata import publish as masterdata
from fieldsync.masterdata import search
from fieldsync.masterdata.store import CustomerStore


def server_dir(cfg) -> Path:
    return Path(urlsplit(cfg.server.url).path)


def accounts(cfg) -> list[str]:
    return sorted(r["account_no"] for r in CustomerStore(cfg.state_dir).all())


def test_publish_then_pull_only_when_changed(tree, invoke, tmp_path):
    result = invoke("customers", "publish")
    assert result.exit_code == 0, result.output
    version = json.loads((server_dir(tree) / ".fieldsync/master/version.json").read_text())
    assert version["count"] == 3 and len(version["sha256"]) == 64
    # the tablet lost its data: pull brings it back, then has nothing to do
    (tree.state_dir / "customers.json").unlink()
    assert invoke("customers", "pull").exit_code == 0
    assert accounts(tree) == ["3300001234", "3300005678", "3300009999"]
    assert "up to date" in invoke("customers", "pull").stdout
    assert masterdata.pull_if_changed(tree) is False
    # new data on the server (published from a folder on the server itself)
    admin_csv = tmp_path / "new.csv"
    admin_csv.write_text("户号,户名\n3300004444,湖州新能源科技有限公司\n", encoding="utf-8")
    assert invoke("customers", "import", admin_csv).exit_code == 0
    assert invoke("customers", "publish", server_dir(tree)).exit_code == 0
    (tree.state_dir / "customers.json").write_bytes(b"{}")  # stale local copy
    assert "pulled new master data" in invoke("customers", "pull").stdout
    assert "3300004444" in accounts(tree)
    assert [h.account_no for h in search.find(tree.state_dir, "hzxny").hits] == ["3300004444"]
    assert (tree.root / "_query" / "manifest.js").is_file()  # the query page follows


def test_nothing_published_is_not_an_error(tree, invoke):
    assert masterdata.pull_if_changed(tree) is False
    assert invoke("customers", "pull").exit_code == 0


def test_damaged_download_keeps_the_old_data(tree, invoke):
    assert invoke("customers", "publish").exit_code == 0
    remote = server_dir(tree) / ".fieldsync/master/customers.json"
    remote.write_bytes(remote.read_bytes().replace("杭州".encode(), "宁波".encode()))
    before = (tree.state_dir / "customers.json").read_bytes()
    (tree.state_dir / masterdata.PULLED_FILE).unlink(missing_ok=True)
    result = invoke("customers", "pull")
    assert result.exit_code == 2 and "pull again" in result.stderr
    assert (tree.state_dir / "customers.json").read_bytes() == before
    assert not list(tree.state_dir.glob(".pull-*"))


def test_not_a_customers_file_is_refused(tree, invoke):
    assert invoke("customers", "publish").exit_code == 0
    master = server_dir(tree) / ".fieldsync/master"
    (master / "customers.json").write_text('{"other": {}}')
    version = json.loads((master / "version.json").read_text())
    version["sha256"] = file_sha256(master / "customers.json")[0]
    (master / "version.json").write_text(json.dumps(version))
    result = invoke("customers", "pull")
    assert result.exit_code == 2 and "not a fieldsync customers file" in result.stderr
    assert len(accounts(tree)) == 3


@pytest.mark.sshd
def test_pull_over_real_sftp(sftp_tree, invoke, remote_root):
    assert invoke("customers", "publish").exit_code == 0
    assert (remote_root / ".fieldsync/master/customers.json").is_file()
    (sftp_tree.state_dir / "customers.json").unlink()
    assert masterdata.pull_if_changed(sftp_tree) is True
    assert accounts(sftp_tree) == ["3300001234", "3300005678", "3300009999"]
    assert masterdata.pull_if_changed(sftp_tree) is False
