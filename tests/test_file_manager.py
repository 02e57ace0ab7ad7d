"""The file manager and a text editor give the same record as the CLI (issue 14, points 1-2).

Real folders and files, the real engine through `fieldsync sync` to a file:// server, and
verify on both ends: a visit made with mkdir, a remark changed with a text editor, a visit
renamed in the file manager.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime

from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.server.site import build
from fieldsync.tree import folders as tree_mod
from tests.fixtures.syncing import camera_photo, server_root

ACCOUNT = "3300001234"


def _customer(cfg):
    tree_mod.open_customer(cfg, ACCOUNT)
    return tree_mod.customer_dir(cfg, ACCOUNT)


def _verify(invoke, *args):
    result = invoke("verify", "--json", "--no-gps-warning", *args)
    return result.exit_code, json.loads(result.stdout)


def test_a_visit_made_with_mkdir_is_completed_edited_pushed_and_attributed(tree, invoke):
    cfg = tree
    visit = _customer(cfg) / "专项检查" / "变压器" / "2026-12-02_现场复查"
    (visit / "外观").mkdir(parents=True)  # as a file manager would: no visit.yaml, no 铭牌
    camera_photo(visit / "外观" / "IMG_1.jpg", taken=datetime.now())

    result = invoke("visit", "edit", visit, "--appearance-note", "柜门锈蚀")
    assert result.exit_code == 0, result.output
    data = read_yaml(visit / "visit.yaml")
    assert data["account_no"] == ACCOUNT and data["customer_name"] == "杭州某某机械有限公司"
    assert (data["business"], data["category"]) == ("专项检查", "变压器")
    assert (data["inspector"], data["device"]) == ("zhang.san", "tablet-07")
    assert data["created_at"].startswith("2026-12-02T00:00:00")
    assert data["appearance_note"] == "柜门锈蚀" and data["history"][0]["old"] == ""
    assert (visit / "铭牌").is_dir()

    assert invoke("remark", "--visit", visit, "--nameplate", "铭牌清晰").exit_code == 0
    assert invoke("sync").exit_code == 0
    server = server_root(cfg)
    assert (server / visit.relative_to(cfg.root) / "外观" / "IMG_1.jpg").is_file()
    page = (visit / "index.html").read_text(encoding="utf-8")
    assert "柜门锈蚀" in page and "IMG_1.jpg" in page
    assert _verify(invoke)[0] == 0
    assert _verify(invoke, "--server", server)[0] == 0

    build(server)
    rel = visit.relative_to(cfg.root).as_posix()
    server_page = (server / ".fieldsync" / "site" / f"{rel}.html").read_text(encoding="utf-8")
    assert "(未知)" not in server_page and "zhang.san" in server_page and "杭州某某机械有限公司" in server_page


def test_a_hand_made_visit_gets_its_visit_yaml_from_sync_alone(tree, invoke):
    cfg = tree
    visit = _customer(cfg) / "周期检查" / "计量装置" / "现场复查"  # no date in the name
    (visit / "铭牌").mkdir(parents=True)
    camera_photo(visit / "铭牌" / "IMG_2.jpg", taken=datetime.now())
    assert invoke("sync").exit_code == 0
    data = read_yaml(visit / "visit.yaml")
    assert data["account_no"] == ACCOUNT and data["inspector"] == "zhang.san" and data["created_at"]
    assert (server_root(cfg) / visit.relative_to(cfg.root) / "visit.yaml").read_bytes() == \
        (visit / "visit.yaml").read_bytes()
    assert _verify(invoke)[0] == 0


def test_a_remark_changed_in_a_text_editor_is_an_edit_and_verifies_on_both_ends(tree, invoke, tmp_path):
    cfg = tree
    _customer(cfg)
    tree_mod.add_category(cfg, ACCOUNT, "1", "计量装置")
    visit = tree_mod.customer_dir(cfg, ACCOUNT) / "周期检查" / "计量装置" / "2026-11-25_0930"
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置", "--name", visit.name, "--appearance-note", "外观完好")
    assert result.exit_code == 0, result.output
    camera_photo(visit / "外观" / "IMG_3.jpg", taken=datetime.now())
    assert invoke("sync").exit_code == 0

    # sed -i 's/^appearance_note: .*/appearance_note: 手工/' visit.yaml
    file = visit / "visit.yaml"
    text = file.read_text(encoding="utf-8")
    file.write_text("\n".join("appearance_note: 手工" if line.startswith("appearance_note:") else line
                              for line in text.splitlines()) + "\n", encoding="utf-8")
    assert invoke("sync").exit_code == 0
    history = read_yaml(file)["history"]
    assert history[-1] | {"at": None} == {"at": None, "by": "zhang.san", "field": "appearance_note",
                                          "old": "外观完好", "new": "手工", "how": "hand"}
    server = server_root(cfg)
    assert (server / visit.relative_to(cfg.root) / "visit.yaml").read_bytes() == file.read_bytes()
    assert _verify(invoke)[0] == 0
    code, report = _verify(invoke, "--server", server)
    assert code == 0 and report["clean"], report

    # a proper edit after the hand edit is fine too
    assert invoke("visit", "edit", visit, "--appearance-note", "已复查").exit_code == 0
    assert invoke("sync").exit_code == 0
    assert _verify(invoke)[0] == 0 and _verify(invoke, "--server", server)[0] == 0
    out = tmp_path / "bundle.zip"
    assert invoke("evidence", ACCOUNT, "--out", out, "--server", server).exit_code in (0, 1)
    assert out.is_file()

    # the same change made on the server behind the tablet's back is still caught
    remote = server / visit.relative_to(cfg.root) / "visit.yaml"
    data = read_yaml(remote)
    data["appearance_note"] = "服务器上改的"
    write_yaml(remote, data)
    code, report = _verify(invoke, "--server", server)
    assert code != 0 and not report["ok"]
    assert [f["message"] for f in report["problems"]] == [
        "appearance_note differs from its last recorded edit (changed without history)"]


def test_a_visit_renamed_in_the_file_manager_records_the_rename(tree, invoke):
    cfg = tree
    _customer(cfg)
    tree_mod.add_category(cfg, ACCOUNT, "1", "计量装置")
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置", "--name", "2026-11-25_0930")
    assert result.exit_code == 0, result.output
    old = tree_mod.customer_dir(cfg, ACCOUNT) / "周期检查" / "计量装置" / "2026-11-25_0930"
    camera_photo(old / "外观" / "IMG_4.jpg", taken=datetime.now())
    assert invoke("sync").exit_code == 0
    new = old.with_name("2026-11-25_0930_复查")
    shutil.move(old, new)
    assert invoke("sync").exit_code == 0
    data = read_yaml(new / "visit.yaml")
    assert data["name"] == new.name
    assert data["history"][-1]["field"] == "name" and data["history"][-1]["new"] == new.name
    assert _verify(invoke)[0] == 0
    assert _verify(invoke, "--server", server_root(cfg))[0] == 0


def test_visit_edit_without_options_completes_a_hand_made_visit(tree, invoke):
    """`check` used to advise 'visit edit' to create a missing visit.yaml, which did nothing."""
    cfg = tree
    visit = _customer(cfg) / "违约用电检查" / "表箱" / "2026-12-01_0915"
    visit.mkdir(parents=True)
    result = invoke("visit", "edit", visit)
    assert result.exit_code == 0, result.output
    data = read_yaml(visit / "visit.yaml")
    assert data["created_at"].startswith("2026-12-01T09:15:00") and data["business"] == "违约用电检查"
    assert (visit / "外观").is_dir() and (visit / "铭牌").is_dir() and (visit / "index.html").is_file()
    assert invoke("check").exit_code == 0
