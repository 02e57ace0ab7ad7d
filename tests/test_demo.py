"""`fieldsync demo` builds a complete sandbox on local folders."""

from __future__ import annotations

from PIL import Image

from fieldsync.base.yamlfile import read_yaml


def test_demo_builds_the_whole_tree(invoke, tmp_path):
    sandbox = tmp_path / "demo"
    result = invoke("demo", "--dir", sandbox)
    assert result.exit_code == 0, result.output
    root = sandbox / "tablet"
    assert str(root) in result.output and "index.html" in result.output
    customer = root / "3300001234_杭州某某机械有限公司"
    visits = sorted(customer.glob("*/*/*/visit.yaml"))
    assert len(visits) == 2
    first = read_yaml(visits[0])
    assert first["history"] and first["history"][0]["field"] == "nameplate_note"
    photos = sorted(root.glob("*/*/*/*/外观/*.jpg")) + sorted(root.glob("*/*/*/*/铭牌/*.jpg"))
    assert len(photos) == 9
    with Image.open(photos[0]) as image:
        exif = image.getexif()
        assert exif[0x010F] == "Xiaomi" and exif.get_ifd(0x8825)  # camera make and GPS
    assert (root / "index.html").is_file() and (customer / "index.html").is_file()


def test_demo_refuses_a_non_empty_folder(invoke, tmp_path):
    (tmp_path / "x").write_text("keep me")
    result = invoke("demo", "--dir", tmp_path)
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (tmp_path / "x").read_text() == "keep me"
