"""Times people read: local time in the display zone (ui.timezone / --timezone), YYYY-MM-DD HH:MM,
on the tablet's pages, the server's pages, the back-office report and the evidence report;
stored times keep their ISO form with the writing tablet's offset, and visits from tablets in
different offsets are ordered by the instant, not by the text.

The two tablets: tablet-a writes +08:00, tablet-b +00:00. tablet-a's visit at 11:40+08:00
(03:40 UTC) happened five minutes before tablet-b's at 03:45+00:00, although as text it sorts
after it; in Asia/Shanghai they read 11:40 and 11:45.
"""

from __future__ import annotations

import re
import sqlite3
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from fieldsync import config as config_mod
from fieldsync.base import clock
from fieldsync.base.rendering import environment, time_tag
from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.errors import ConfigError
from fieldsync.evidence import pdf as pdf_mod
from fieldsync.server.site import SITE, customer_page, visit_page
from fieldsync.server.state import IndexState
from fieldsync.sync.derive import derive
from fieldsync.tree import folders as tree_mod
from fieldsync.tree import visits as visits_mod
from fieldsync.tree.layout import CUSTOMER_FILE, PAGE_FILE, VISIT_FILE
from fieldsync.views import pages
from tests.conftest import require_real_part
from tests.fixtures.server_tree import customer_folder, sections, write_customer, write_visit

SHANGHAI = "Asia/Shanghai"
PLUS8, UTC = timezone(timedelta(hours=8)), timezone.utc
CUSTOMER = ("3300001234", "杭州某某机械有限公司")
EARLIER = datetime(2026, 3, 2, 11, 40, tzinfo=PLUS8)  # tablet-a: 03:40 UTC
LATER = datetime(2026, 3, 2, 3, 45, tzinfo=UTC)  # tablet-b: 03:45 UTC, five minutes after
# tablet-b late in the evening: 17:30 UTC is 01:30 the next day in Shanghai
NEXT_DAY_IN_SHANGHAI = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_tablet_config(monkeypatch):
    monkeypatch.delenv(config_mod.ENV_VAR, raising=False)


def two_tablets(share: Path) -> dict[str, Path]:
    """A share of two tablet trees (server index --tablets) with one customer visited from both."""
    trees = {}
    for account in ("tablet-a", "tablet-b"):
        trees[account] = share / "tablets" / account / "fieldsync"
        trees[account].mkdir(parents=True)
    a = write_customer(trees["tablet-a"], CUSTOMER)
    b = write_customer(trees["tablet-b"], CUSTOMER)
    return {
        "earlier": write_visit(a, "周期检查", "计量装置", EARLIER, inspector="li.si", device="tablet-a"),
        "later": write_visit(b, "周期检查", "计量装置", LATER, inspector="wang.wu", device="tablet-b",
                             history=[{"at": "2026-03-02T03:50:00+00:00", "by": "wang.wu",
                                       "field": "appearance_note", "old": "", "new": "外观正常"}]),
        "night": write_visit(b, "专项检查", "配电房", NEXT_DAY_IN_SHANGHAI, inspector="wang.wu",
                             device="tablet-b"),
    }


def shown(html: str, stored: str, text: str) -> bool:
    """`html` shows `text` in a <time> element that keeps the stored ISO time."""
    return f'<time datetime="{stored}">{text}</time>' in html


def rel(share: Path, path: Path) -> str:
    return path.relative_to(share).as_posix()


# --------------------------------------------------------------------------- the formatting


@pytest.mark.parametrize(("value", "text"), [
    ("2026-03-02T03:45:00+00:00", "2026-03-02 11:45"),
    ("2026-03-02T11:40:00+08:00", "2026-03-02 11:40"),
    ("2026-03-02T03:45:00Z", "2026-03-02 11:45"),
    (datetime(2026, 3, 2, 17, 30, tzinfo=UTC), "2026-03-03 01:30"),  # YAML reads unquoted times so
    ("2026-03-02T11:40:00", "2026-03-02T11:40:00"),  # naive: no instant, shown as it is
    ("2026-03-02", "2026-03-02"),
    ("yesterday", "yesterday"),
    ("", ""),
    (None, ""),
    (42, "42"),
    (["2026-03-02T03:45:00+00:00"], "['2026-03-02T03:45:00+00:00']"),
    ("9999-12-31T23:00:00-12:00", "9999-12-31T23:00:00-12:00"),  # beyond year 9999 in Shanghai
])
def test_local_time_never_fails(value, text):
    clock.use_zone(SHANGHAI)
    assert clock.local_time(value) == text


def test_filters_escape_bad_values_and_keep_the_iso_time():
    clock.use_zone(SHANGHAI)
    assert time_tag("2026-03-02T17:30:00+00:00") == \
        '<time datetime="2026-03-02T17:30:00+00:00">2026-03-03 01:30</time>'
    hostile = '<script>alert(1)</script>"'
    assert "<script>" not in str(time_tag(hostile)) and "&lt;script&gt;" in str(time_tag(hostile))
    for bad in (None, "", "garbage", "2026-13-45T99:00:00+08:00", 3.5, {"at": 1}):
        time_tag(bad)  # no exception, whatever a hand-edited visit.yaml holds
        assert clock.utc_key(bad) == ""
    template = environment().from_string(
        "{% autoescape true %}{{ v|time_tag }}|{{ v|local_time }}|{{ v|local_day }}{% endautoescape %}")
    assert "<script>" not in template.render(v=hostile)
    assert template.render(v="2026-03-02T17:30:00+00:00").endswith("|2026-03-03 01:30|2026-03-03")


def test_utc_key_orders_instants_not_texts():
    texts = ["2026-03-02T11:40:00+08:00", "2026-03-02T03:45:00+00:00", "2026-03-01T23:59:00-05:00"]
    assert sorted(texts) != sorted(texts, key=clock.utc_key)
    assert sorted(texts, key=clock.utc_key) == [texts[0], texts[1], texts[2]]


def test_config_timezone_key(tmp_path):
    base = {"root": str(tmp_path / "tree")}
    assert config_mod.from_mapping(base, None).ui.timezone == "auto"
    assert config_mod.from_mapping({**base, "ui": {"timezone": "Europe/London"}}, None).ui.timezone == "Europe/London"
    for bad in ("Mars/Olympus", "", "../../etc/passwd", 8, True):
        with pytest.raises(ConfigError, match=r"ui\.timezone.*Asia/Shanghai"):
            config_mod.from_mapping({**base, "ui": {"timezone": bad}}, Path("config.yaml"))
    # The example and what `init` writes both name the zone, and both load.
    example = Path(__file__).resolve().parent.parent / "config.yaml"
    assert yaml.safe_load(example.read_text("utf-8"))["ui"]["timezone"] == SHANGHAI
    written = yaml.safe_load(config_mod.render_default(tmp_path, "zhang.san", "tablet-07", None))
    assert written["ui"]["timezone"] == SHANGHAI
    assert config_mod.from_mapping(written, None).ui.timezone == SHANGHAI


# --------------------------------------------------------------------------- server pages


def test_server_pages_order_two_tablets_by_instant_in_one_zone(tmp_path, invoke):
    share = tmp_path / "share"
    visits = two_tablets(share)
    result = invoke("server", "index", "--tablets", "--timezone", SHANGHAI, share)
    assert result.exit_code == 0, result.output

    root = (share / SITE / "index.html").read_text("utf-8")
    latest = root.split('id="latest"', 1)[1].split("</table>", 1)[0]
    # Latest first, by the instant: the night visit, then tablet-b's 11:45, then tablet-a's 11:40.
    order = [latest.index(f'datetime="{at.isoformat()}"') for at in (NEXT_DAY_IN_SHANGHAI, LATER, EARLIER)]
    assert order == sorted(order), latest
    assert shown(latest, "2026-03-02T03:45:00+00:00", "2026-03-02 11:45")
    assert shown(latest, "2026-03-02T11:40:00+08:00", "2026-03-02 11:40")
    assert shown(latest, "2026-03-02T17:30:00+00:00", "2026-03-03 01:30")
    inspectors = root.split('id="inspectors"', 1)[1].split("</table>", 1)[0]
    # wang.wu's last visit is the latest of all, so that row comes first; first and last in Shanghai
    assert inspectors.index("wang.wu") < inspectors.index("li.si")
    assert "<td>2026-03-02</td>" in inspectors and "2026-03-03 01:30</time>" in inspectors

    page = (share / customer_page(customer_folder(*CUSTOMER))).read_text("utf-8")
    periodic = page.split("<h3>周期检查</h3>", 1)[1].split("<h3>", 1)[0]
    assert periodic.index("2026-03-02 11:45") < periodic.index("2026-03-02 11:40")  # newest first
    assert shown(periodic, "2026-03-02T11:40:00+08:00", "2026-03-02 11:40")

    later = (share / visit_page(rel(share, visits["later"]))).read_text("utf-8")
    assert shown(later, "2026-03-02T03:45:00+00:00", "2026-03-02 11:45")
    assert shown(later, "2026-03-02T03:50:00+00:00", "2026-03-02 11:50")  # remark history

    # Another zone rewrites every page (they show times in it), with the same order.
    result = invoke("server", "index", "--tablets", "--timezone", "UTC", share)
    assert result.exit_code == 0, result.output
    root = (share / SITE / "index.html").read_text("utf-8")
    assert shown(root, "2026-03-02T11:40:00+08:00", "2026-03-02 03:40")
    assert shown(root, "2026-03-02T03:45:00+00:00", "2026-03-02 03:45")


def test_server_zone_from_config_and_bad_option(tmp_path, invoke):
    share = tmp_path / "share"
    two_tablets(share)
    config = tmp_path / "server-config.yaml"
    config.write_text(f"root: {tmp_path}\nui:\n  timezone: America/New_York\n", "utf-8")
    result = invoke("--config", config, "server", "index", "--tablets", share)
    assert result.exit_code == 0, result.output
    root = (share / SITE / "index.html").read_text("utf-8")
    assert shown(root, "2026-03-02T11:40:00+08:00", "2026-03-01 22:40")  # EST, UTC-5

    result = invoke("server", "index", "--tablets", "--timezone", "Mars/Olympus", share)
    assert result.exit_code == 2 and "Asia/Shanghai" in result.output


def test_cache_from_before_created_utc_is_migrated(tmp_path):
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE visits (rel TEXT PRIMARY KEY, customer TEXT NOT NULL, stamp TEXT NOT NULL,
            created_at TEXT NOT NULL, inspector TEXT NOT NULL, device TEXT NOT NULL,
            photos INTEGER NOT NULL, summary TEXT NOT NULL);
        CREATE INDEX visits_created ON visits (created_at);""")
    for name, at in (("a", EARLIER), ("b", LATER)):
        old.execute("INSERT INTO visits VALUES (?, 'c', 's', ?, ?, 'd', 1, ?)",
                    (name, at.isoformat(), f"inspector-{name}", f'{{"rel": "{name}"}}'))
    old.commit()
    old.close()
    with IndexState(path) as state:
        assert [v["rel"] for v in state.latest_visits(10)] == ["b", "a"]  # by the instant
        assert state.inspector_activity()[0]["last"] == "2026-03-02T03:45:00+00:00"
    with IndexState(path) as state:  # opening it again changes nothing
        assert [v["rel"] for v in state.latest_visits(10)] == ["b", "a"]


# --------------------------------------------------------------------------- the report


def test_report_days_and_times_in_one_zone(tmp_path, invoke):
    share = tmp_path / "share"
    two_tablets(share)
    out = tmp_path / "r.csv"
    result = invoke("server", "report", "--tablets", "--timezone", SHANGHAI, "--from", "2026-03-02",
                    "--to", "2026-03-03", "--out", out, share)
    assert result.exit_code == 0, result.output
    tables = sections(out.read_text('utf-8-sig'))
    detail = [(row[0], row[1], row[3]) for row in tables["检查明细"][1:]]
    assert detail == [("2026-03-02", "2026-03-02 11:40", "tablet-a"),  # in the order they happened
                      ("2026-03-02", "2026-03-02 11:45", "tablet-b"),
                      ("2026-03-03", "2026-03-03 01:30", "tablet-b")]
    assert [row[:2] for row in tables["按日期"][1:]] == [["2026-03-02", "2"], ["2026-03-03", "1"]]

    # The day is Shanghai's: the 17:30 UTC visit is on March 3rd, not in a March 2nd report.
    result = invoke("server", "report", "--tablets", "--timezone", SHANGHAI, "--from", "2026-03-02",
                    "--to", "2026-03-02", "--out", out, share)
    assert result.exit_code == 0, result.output
    assert [row[1] for row in sections(out.read_text('utf-8-sig'))["检查明细"][1:]] == ["2026-03-02 11:40", "2026-03-02 11:45"]
    result = invoke("server", "report", "--tablets", "--timezone", "UTC", "--from", "2026-03-02",
                    "--to", "2026-03-02", "--out", out, share)
    assert [row[1] for row in sections(out.read_text('utf-8-sig'))["检查明细"][1:]] == \
        ["2026-03-02 03:40", "2026-03-02 03:45", "2026-03-02 17:30"]


# --------------------------------------------------------------------------- tablet pages


def test_tablet_pages_show_times_in_the_configured_zone(tree, invoke):
    cfg = tree
    assert cfg.ui.timezone == SHANGHAI  # what `init` wrote
    assert invoke("customer", "open", "3300001234").exit_code == 0
    result = invoke("locate", "3300001234", "--lat", "30.2741", "--lon", "120.1551", "--accuracy", "8")
    assert result.exit_code == 0, result.output
    folder = tree_mod.customer_dir(cfg, "3300001234")
    located = read_yaml(folder / CUSTOMER_FILE)["location"]["at"]
    clock.use_zone(SHANGHAI)
    expected = clock.local_time(located)
    assert shown((folder / PAGE_FILE).read_text("utf-8"), located, expected)

    # A visit whose record was written by a tablet in +08:00, a remark then edited on one in +00:00.
    tree_mod.add_category(cfg, "3300001234", "周期检查", "计量装置")
    visit = visits_mod.new_visit(cfg, "3300001234", "周期检查", "计量装置", name="v1")
    data = read_yaml(visit / VISIT_FILE)
    data["created_at"] = EARLIER.isoformat()
    data["history"] = [{"at": LATER.isoformat(), "by": "wang.wu", "field": "appearance_note", "old": "",
                        "new": "外观正常"}]
    write_yaml(visit / VISIT_FILE, data)
    pages.render_visit(cfg, visit)
    html = (visit / PAGE_FILE).read_text("utf-8")
    assert shown(html, "2026-03-02T11:40:00+08:00", "2026-03-02 11:40")
    assert shown(html, "2026-03-02T03:45:00+00:00", "2026-03-02 11:45")
    assert read_yaml(visit / VISIT_FILE)["created_at"] == "2026-03-02T11:40:00+08:00"  # stored as it was


def test_tablet_pages_follow_the_config_whoever_renders_them(tree):
    """A library caller (a sync pass run without the CLI) renders in ui.timezone too, whatever
    zone the process shows: the same tree never gives two pages, so nothing is pushed twice."""
    cfg = tree
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "周期检查", "计量装置")
    visit = visits_mod.new_visit(cfg, "3300001234", "周期检查", "计量装置", name="v1")
    data = read_yaml(visit / VISIT_FILE)
    data["created_at"] = EARLIER.isoformat()
    write_yaml(visit / VISIT_FILE, data)
    rendered = {}
    for process_zone in ("UTC", "America/New_York", clock.AUTO):
        clock.use_zone(process_zone)
        derive(cfg, [visit.relative_to(cfg.root) / VISIT_FILE])
        rendered[process_zone] = (visit / PAGE_FILE).read_bytes()
        assert clock.zone_key().startswith(process_zone)  # put back after the pass
    assert len(set(rendered.values())) == 1
    assert shown(rendered["UTC"].decode("utf-8"), "2026-03-02T11:40:00+08:00", "2026-03-02 11:40")


# --------------------------------------------------------------------------- evidence report


def test_evidence_report_html_and_pdf_show_local_times(filed_visit, tmp_path, invoke, monkeypatch):
    cfg, visit = filed_visit
    created = read_yaml(visit / VISIT_FILE)["created_at"]
    clock.use_zone(SHANGHAI)
    expected = clock.local_time(created)
    clock.use_zone(clock.AUTO)
    pdf_texts: list[str] = []
    have_font = pdf_mod.find_font() is not None
    if have_font:
        from fpdf import FPDF
        from fpdf.table import Row

        cell, multi_cell = Row.cell, FPDF.multi_cell
        monkeypatch.setattr(Row, "cell", lambda self, text="", *a, **k: (pdf_texts.append(text),
                                                                         cell(self, text, *a, **k))[1])
        monkeypatch.setattr(FPDF, "multi_cell", lambda self, w, h=None, text="", *a, **k: (
            pdf_texts.append(text), multi_cell(self, w, h, text, *a, **k))[1])

    out = tmp_path / "bundle.zip"
    result = invoke("evidence", "3300001234", "--out", out)  # the tablet's config: Asia/Shanghai
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        report = next(n for n in archive.namelist() if n.endswith("/report.html"))
        html = archive.read(report).decode("utf-8")
    assert shown(html, created, expected)
    filed = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', html)
    assert filed and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", text) for _, text in filed)
    require_real_part(have_font, "a Chinese TrueType font (fonts-wqy-microhei) for report.pdf")
    assert any(expected in text for text in pdf_texts), pdf_texts[:20]
    assert not any(created in text for text in pdf_texts)
