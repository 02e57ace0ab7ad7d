"""The tree commands through the CLI on real temp trees: init, customer, category, visit, add, check."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from fieldsync import config as config_mod
from fieldsync.base.yamlfile import read_yaml
from fieldsync.demo import write_sample_photo
from fieldsync.tree.visits import now

ACCOUNT = "3300001234"


def make_photo(path: Path) -> Path:
    return write_sample_photo(path, now(), (30.28, 120.13), size=(640, 480))


@pytest.fixture
def visit(tree, invoke) -> Path:
    invoke("customer", "open", ACCOUNT)
    invoke("category", "add", ACCOUNT, "1", "计量装置")
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


def test_init_creates_root_and_a_valid_config(tmp_path, invoke):
    result = invoke("init", tmp_path / "t", "--inspector", "li.si", "--server", "file:///srv/x")
    assert result.exit_code == 0
    cfg = config_mod.load(tmp_path / "t" / "config.yaml")
    assert cfg.inspector == "li.si" and (tmp_path / "t" / ".fieldsync").is_dir()
    again = invoke("init", tmp_path / "t", "--inspector", "other")
    assert again.exit_code == 0
    assert config_mod.load(tmp_path / "t" / "config.yaml").inspector == "li.si"  # kept


def test_init_refuses_a_file(tmp_path, invoke):
    (tmp_path / "f").write_text("x")
    result = invoke("init", tmp_path / "f")
    assert result.exit_code == 2 and "Error: " in result.stderr and "is a file" in result.stderr


def test_customer_open_builds_the_root(tree, invoke):
    result = invoke("customer", "open", ACCOUNT)
    folder = Path(result.stdout.strip())
    assert folder == tree.root / f"{ACCOUNT}_杭州某某机械有限公司"
    assert {p.name for p in folder.iterdir()} >= {"customer.yaml", "index.html", "用电资料",
                                                   "周期检查", "专项检查", "违约用电检查"}
    info = read_yaml(folder / "customer.yaml")
    assert info["meter_no"] == "5100012345678" and info["voltage"] == "10kV"
    assert "杭州某某机械有限公司" in (folder / "index.html").read_text(encoding="utf-8")


def test_customer_open_refreshes_master_data_and_keeps_location(tree, invoke, tmp_path):
    folder = Path(invoke("customer", "open", ACCOUNT).stdout.strip())
    data = read_yaml(folder / "customer.yaml")
    data["location"] = {"lat": 30.28, "lon": 120.13}
    from fieldsync.base.yamlfile import write_yaml
    write_yaml(folder / "customer.yaml", data)
    path = tmp_path / "new.csv"
    path.write_text("户号,户名,合同容量\n3300001234,杭州某某机械有限公司,800\n", encoding="utf-8")
    invoke("customers", "import", path)
    reopened = invoke("customer", "open", ACCOUNT)
    assert Path(reopened.stdout.strip()) == folder, reopened.stderr
    data = read_yaml(folder / "customer.yaml")
    assert data["capacity_kva"] == 800 and data["location"]["lat"] == 30.28


def test_customer_folder_made_by_hand_is_found(tree, invoke):
    by_hand = tree.root / f"{ACCOUNT}_手工建的"
    by_hand.mkdir()
    assert Path(invoke("customer", "open", ACCOUNT).stdout.strip()) == by_hand
    assert (by_hand / "customer.yaml").is_file()


def test_unknown_customer_is_an_error(tree, invoke):
    result = invoke("customer", "open", "9999")
    assert result.exit_code == 2 and "not in master data" in result.stderr


def test_category_by_name_or_number(tree, invoke):
    invoke("customer", "open", ACCOUNT)
    by_number = invoke("category", "add", ACCOUNT, "3", "配电房")
    by_name = invoke("category", "add", ACCOUNT, "专项检查", "变压器")
    assert Path(by_number.stdout.strip()).parent.name == "违约用电检查"
    assert Path(by_name.stdout.strip()).parent.name == "专项检查"
    bad = invoke("category", "add", ACCOUNT, "4", "x")
    assert bad.exit_code == 2 and "1=周期检查" in bad.stderr
    unsafe = invoke("category", "add", ACCOUNT, "1", "../逃逸")
    assert unsafe.exit_code == 2 and not (tree.root / "逃逸").exists()


def test_visit_new_creates_yaml_and_photo_folders(tree, visit):
    data = read_yaml(visit / "visit.yaml")
    assert (visit / "外观").is_dir() and (visit / "铭牌").is_dir()
    assert data["account_no"] == ACCOUNT and data["business"] == "周期检查"
    assert data["inspector"] == "zhang.san" and data["device"] == "tablet-07"
    assert data["history"] == [] and data["appearance_note"] == ""
    assert "+" in data["created_at"] or "-" in data["created_at"][19:]


def test_same_minute_visits_get_distinct_names(tree, invoke, visit):
    second = Path(invoke("visit", "new", ACCOUNT, "1", "计量装置").stdout.strip())
    third = Path(invoke("visit", "new", ACCOUNT, "1", "计量装置").stdout.strip())
    assert len({visit, second, third}) == 3
    assert second.name.startswith(visit.name[:15])


def test_visit_new_with_name_and_notes(tree, invoke, visit):
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置", "--name", "首次检查",
                    "--appearance-note", "外观完好", "--nameplate-note", "铭牌清晰")
    data = read_yaml(Path(result.stdout.strip()) / "visit.yaml")
    assert (data["name"], data["appearance_note"], data["nameplate_note"]) == ("首次检查", "外观完好", "铭牌清晰")
    clash = invoke("visit", "new", ACCOUNT, "1", "计量装置", "--name", "首次检查")
    assert clash.exit_code == 2 and "already exists" in clash.stderr


def test_failed_visit_new_leaves_nothing(tree, invoke, visit):
    category = visit.parent
    before = sorted(p.name for p in category.iterdir())
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置", "--appearance-note", "bad\x07note")
    assert result.exit_code == 2
    assert sorted(p.name for p in category.iterdir()) == before
    missing = invoke("visit", "new", ACCOUNT, "1", "没有这个分类")
    assert missing.exit_code == 2 and "category add" in missing.stderr


def test_visit_edit_appends_history(tree, invoke, visit):
    invoke("visit", "edit", visit, "--appearance-note", "外观有锈蚀")
    invoke("visit", "edit", visit, "--appearance-note", "外观有锈蚀，已拍照")
    renamed = Path(invoke("visit", "edit", visit, "--name", "复查").stdout.strip())
    assert renamed.name == "复查" and not visit.exists()
    data = read_yaml(renamed / "visit.yaml")
    assert [(h["field"], h["old"], h["new"]) for h in data["history"]] == [
        ("appearance_note", "", "外观有锈蚀"),
        ("appearance_note", "外观有锈蚀", "外观有锈蚀，已拍照"),
        ("name", visit.name, "复查"),
    ]
    assert all(h["by"] == "zhang.san" and h["at"] for h in data["history"])


def test_visit_edit_relative_to_root(tree, invoke, visit):
    rel = visit.relative_to(tree.root)
    assert invoke("visit", "edit", str(rel), "--nameplate-note", "ok").exit_code == 0
    assert read_yaml(visit / "visit.yaml")["nameplate_note"] == "ok"


def test_add_copies_never_overwrites(tree, invoke, visit, tmp_path):
    first = make_photo(tmp_path / "a" / "IMG_1.jpg")
    other = make_photo(tmp_path / "b" / "IMG_1.jpg")
    Image.open(other).rotate(90).save(other)  # same name, different content
    assert invoke("add", first, "--visit", visit, "--kind", "appearance").exit_code == 0
    result = invoke("add", other, "--visit", visit, "--kind", "appearance")
    assert result.exit_code == 0
    names = sorted(p.name for p in (visit / "外观").iterdir())
    assert names == ["IMG_1-2.jpg", "IMG_1.jpg"]
    assert (visit / "外观" / "IMG_1.jpg").read_bytes() == first.read_bytes()
    again = invoke("add", first, "--visit", visit, "--kind", "appearance")
    assert "already in the visit" in again.stderr
    assert len(list((visit / "外观").iterdir())) == 2


def test_add_rejects_non_images_and_copies_nothing(tree, invoke, visit, tmp_path):
    good = make_photo(tmp_path / "ok.jpg")
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a photo")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    for bad in (fake, text):
        result = invoke("add", good, bad, "--visit", visit, "--kind", "nameplate")
        assert result.exit_code == 2 and str(bad) in result.stderr
    assert list((visit / "铭牌").iterdir()) == []


def test_add_heic(tree, invoke, visit, tmp_path):
    from fieldsync.media.imaging import register_heif
    register_heif()
    path = tmp_path / "IMG_0001.HEIC"
    Image.new("RGB", (320, 240), (10, 200, 30)).save(path, format="HEIF")
    assert invoke("add", path, "--visit", visit, "--kind", "appearance").exit_code == 0
    assert (visit / "外观" / "IMG_0001.HEIC").is_file()


def test_pages_are_regenerated_with_photos_and_remarks(tree, invoke, visit, tmp_path):
    invoke("add", make_photo(tmp_path / "p.jpg"), "--visit", visit, "--kind", "appearance")
    invoke("visit", "edit", visit, "--appearance-note", "变压器外观正常")
    page = (visit / "index.html").read_text(encoding="utf-8")
    assert "变压器外观正常" in page and "p.jpg" in page
    customer_page = (visit.parents[2] / "index.html").read_text(encoding="utf-8")
    assert visit.name in customer_page


def test_check_clean_tree(tree, invoke, visit):
    result = invoke("check")
    assert result.exit_code == 0 and "no problems" in result.output


def test_check_reports_what_is_wrong(tree, invoke, visit, tmp_path):
    customer = visit.parents[2]
    make_photo(visit / "stray.jpg")                       # photo outside 外观/铭牌
    (customer / "其他检查").mkdir()                         # unknown business folder
    by_hand = visit.parent / "2026-01-01_0900"
    (by_hand / "外观").mkdir(parents=True)                  # visit without visit.yaml
    (visit.parent / "bad name.").mkdir()                   # unsafe for Windows
    result = invoke("check")
    assert result.exit_code == 1
    out = result.output
    assert "stray.jpg: photo outside a visit's photo folder" in out
    assert "其他检查: unknown business folder" in out
    assert "2026-01-01_0900: visit without visit.yaml" in out
    assert "bad name.: the folder name is not safe" in out


def test_folders_made_by_hand_are_valid(tree, invoke):
    folder = Path(invoke("customer", "open", ACCOUNT).stdout.strip())
    category = folder / "专项检查" / "手工分类"
    category.mkdir()
    result = invoke("visit", "new", ACCOUNT, "2", "手工分类")
    assert result.exit_code == 0
    made = Path(result.stdout.strip())
    edited = invoke("visit", "edit", made, "--appearance-note", "手工")
    assert edited.exit_code == 0
    assert invoke("check").exit_code == 0


def test_errors_have_no_traceback_unless_verbose(tree, invoke):
    quiet = invoke("visit", "edit", "/nonexistent/visit", "--name", "x")
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.startswith("Error: ")


def test_check_reports_case_collisions_and_visit_pages_without_customer_yaml(tree, invoke):
    customer = Path(invoke("customer", "open", ACCOUNT).stdout.strip())
    (customer / "周期检查" / "Meter").mkdir()
    (customer / "周期检查" / "METER").mkdir()
    result = invoke("check")
    assert result.exit_code == 1 and "METER" in result.output
    by_hand = tree.root / "3300009999_手工客户" / "周期检查" / "配电房"
    by_hand.mkdir(parents=True)
    made = invoke("visit", "new", "3300009999", "1", "配电房")
    assert made.exit_code == 0, made.stderr
    assert "手工客户" in (Path(made.stdout.strip()) / "index.html").read_text(encoding="utf-8")
