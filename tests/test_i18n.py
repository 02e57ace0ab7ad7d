"""The CLI speaks the inspector's language (issue 19): Chinese under a zh_* locale or
ui.language: zh, English otherwise, from the gettext catalog shipped in fieldsync/locale/.

The catalog is checked against the source (every marked message and every click help text has a
Chinese translation; the committed .mo matches the .po), and a few commands run in both
languages: help, an error, a warning and a summary.
"""

from __future__ import annotations

import ast
import gettext
import inspect
import re
import string
from pathlib import Path

import click
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from click.testing import CliRunner

from fieldsync.base import i18n
from fieldsync.cli import COMMAND_MODULES, cli
from fieldsync.cli.base import CLICK_MESSAGES, CLICK_PLURALS

REPO = Path(__file__).resolve().parent.parent
PO_FILE = i18n.LOCALE_DIR / "zh" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
MO_FILE = PO_FILE.with_suffix(".mo")

ZH = {"LANG": "zh_CN.UTF-8", "LC_ALL": None, "LC_MESSAGES": None}
EN = {"LANG": "en_US.UTF-8", "LC_ALL": None, "LC_MESSAGES": None}


@pytest.fixture(autouse=True)
def _back_to_the_locale():
    """The language is process state: later tests (in-process) get the locale's again."""
    yield
    i18n.choose()


def po_messages() -> dict:
    """msgid -> msgstr; a plural entry (click's own) is (singular, plural) -> (forms...)."""
    with PO_FILE.open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale="zh") if m.id}


def extracted() -> set[str]:
    """What `pybabel extract -F babel.cfg -k N_ .` finds in the source now."""
    with (REPO / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
    return {message for _file, _line, message, _comments, _context in
            extract_from_dir(str(REPO), method_map, options_map, keywords=keywords)}


def every_command() -> list[click.Command]:
    commands, todo = [], [cli, *(cli.get_command(None, name) for name in COMMAND_MODULES)]
    while todo:
        command = todo.pop()
        commands.append(command)
        todo.extend(getattr(command, "commands", {}).values())
    return commands


def english_help_texts() -> set[str]:
    i18n.choose("en")
    texts = set()
    for command in every_command():
        english_help, _short = command.__dict__.get("_english_help", (command.help, None))
        if english_help:
            texts.add(inspect.cleandoc(english_help))
        for param in command.params:
            help_text = param.__dict__.get("_english_help", getattr(param, "help", None))
            if help_text:
                texts.add(help_text)
    return texts


def placeholders(text: str) -> set[str]:
    try:
        return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}
    except ValueError:  # help texts with literal braces (JSON shapes) are never formatted
        return set()


# --------------------------------------------------------------------------- the catalog

def test_every_marked_message_has_a_chinese_translation():
    catalog = po_messages()
    found = extracted()
    missing = sorted(map(str, (m for m in found if not _translated(catalog.get(m)))))
    assert not missing, f"untranslated (run pybabel update, then translate): {missing}"
    stale = sorted(map(str, set(catalog) - found))
    assert not stale, f"in the .po but no longer in the source: {stale}"


def _translated(string) -> bool:
    return bool(string) and all(string) if isinstance(string, tuple) else bool(string)


def test_translations_keep_every_placeholder():
    for english, chinese in po_messages().items():
        if isinstance(english, tuple):  # plural: Chinese has one form, for any count
            given = set().union(*map(placeholders, english))  # click fills in all of them
            assert all(placeholders(form) <= given for form in chinese), english
        else:
            assert placeholders(chinese) == placeholders(english), english


def test_the_committed_mo_is_compiled_from_the_po():
    with MO_FILE.open("rb") as f:
        compiled = {k: v for k, v in gettext.GNUTranslations(f)._catalog.items() if k}
    expected = {}
    for key, value in po_messages().items():
        if isinstance(key, tuple):
            expected.update({(key[0], i): form for i, form in enumerate(value)})
        elif value:
            expected[key] = value
    assert compiled == expected, \
        "run: pybabel compile -D fieldsync -d fieldsync/locale -l zh"


def test_every_click_help_text_is_in_the_catalog():
    catalog = po_messages()
    missing = sorted(text for text in english_help_texts() if not catalog.get(text))
    assert not missing, f"help texts babel.cfg's extractor did not find or nobody translated: {missing}"


def test_click_own_words_are_translated():
    catalog = po_messages()
    assert all(catalog.get(message) for message in CLICK_MESSAGES)
    assert all(_translated(catalog.get(pair)) for pair in CLICK_PLURALS)


def test_the_catalog_ships_in_the_package():
    setup = (REPO / "setup.cfg").read_text(encoding="utf-8")
    assert "locale/*/LC_MESSAGES/*.mo" in setup


def test_language_follows_the_posix_locale_order():
    assert i18n.locale_language({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert i18n.locale_language({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}) == "en"
    assert i18n.locale_language({"LANG": "en_US.UTF-8", "LC_ALL": "zh_TW.UTF-8"}) == "zh"
    assert i18n.locale_language({"LANG": "C.UTF-8"}) == "en"
    assert i18n.locale_language({}) == "en"
    # Windows sets none of the variables: its locale name decides (zh-CN, zh-Hans-CN -> zh).
    assert i18n.locale_language({}, system_locale=lambda: "zh-CN") == "zh"
    assert i18n.locale_language({}, system_locale=lambda: "en-US") == "en"
    assert i18n.locale_language({"LANG": "en_US.UTF-8"}, system_locale=lambda: "zh-CN") == "en"
    assert i18n.locale_language({}, system_locale=lambda: None) == "en"
    assert i18n.choose("zh", {"LANG": "en_US.UTF-8"}) == "zh"
    assert i18n.choose("auto", {"LANG": "zh_CN.GB18030"}) == "zh"


# --------------------------------------------------------------------------- the CLI in both languages

def run(args, env, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False, **kwargs)


def test_help_in_chinese_and_english():
    zh = run(["sync", "--help"], ZH)
    assert zh.exit_code == 0
    assert "推送一次：把所有新增或改动的文件推送到服务器。" in zh.stdout
    assert "用法:" in zh.stdout and "显示此帮助并退出。" in zh.stdout
    assert "One pass" not in zh.stdout
    en = run(["sync", "--help"], EN)
    assert "One pass: push everything new or changed to the server." in en.stdout
    assert "Usage:" in en.stdout and "推送" not in en.stdout


def test_every_command_help_is_chinese_under_a_chinese_locale():
    for name in COMMAND_MODULES:
        result = run([name, "--help"], ZH)
        assert result.exit_code == 0, result.output
        assert "Show this message" not in result.stdout, name
        command = cli.get_command(None, name)
        english = inspect.cleandoc(command.__dict__["_english_help"][0] or "")
        assert not english or english.splitlines()[0] not in result.stdout, name


def test_an_error_with_its_advice(tree):
    zh = run(["customers", "show", "3300000000"], ZH)
    assert zh.exit_code == 2
    assert "错误：客户档案中没有户号 3300000000；请用 'fieldsync find' 核对户号" in zh.stderr
    en = run(["customers", "show", "3300000000"], EN)
    assert "Error: customer 3300000000 is not in master data" in en.stderr


def test_no_config_error_in_chinese(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**ZH, "FIELDSYNC_CONFIG": str(tmp_path / "missing.yaml")}
    result = run(["status"], env)
    assert result.exit_code == 2
    assert "missing.yaml：文件不存在；请运行 'fieldsync init ROOT' 创建" in result.stderr


def test_a_warning_and_a_summary(tree):
    run(["customer", "open", "3300001234"], EN)
    stray = tree.root / "3300001234_杭州某某机械有限公司" / "周期检查" / "stray.txt"
    stray.write_text("not a photo", encoding="utf-8")
    zh = run(["check"], ZH)
    assert zh.exit_code == 1
    assert f"警告：{tree.root} 中有 1 个问题" in zh.stderr
    en = run(["check"], EN)
    assert f"Warning: 1 problem(s) in {tree.root}" in en.stderr
    stray.unlink()
    zh = run(["sync"], ZH)
    assert zh.exit_code == 0, zh.output
    assert "已上传" in zh.stdout and "未变" in zh.stdout and "uploaded" not in zh.stdout
    en = run(["sync"], EN)
    assert "0 uploaded" in en.stdout


def test_ui_language_in_config_overrides_the_locale(tree):
    text = tree.path.read_text(encoding="utf-8").replace("language: auto", "language: zh")
    tree.path.write_text(text, encoding="utf-8")
    result = run(["customers", "show", "3300000000"], EN)
    assert "客户档案中没有户号 3300000000" in result.stderr
    result = run(["--config", str(tree.path), "check", "--help"], EN)
    assert "检查目录" in result.stdout
    assert "用法:" in result.stdout  # click's own words follow ui.language too


def test_a_bad_ui_language_is_refused(tree):
    from fieldsync import config as config_mod
    from fieldsync.errors import ConfigError

    tree.path.write_text(tree.path.read_text(encoding="utf-8").replace("language: auto", "language: fr"),
                         encoding="utf-8")
    with pytest.raises(ConfigError, match="ui.language"):
        config_mod.load(tree.path)


# --------------------------------------------------------------------------- nothing escapes marking

# What a cli module prints or raises: calls whose English literal must go through _().
SHOWN_BY = {"echo", "warn", "finish_with_warnings", "confirm", "prompt", "UsageError"}


def shape(node: ast.expr) -> str:
    """A literal as a person reads it, placeholders as {}: 'skipped {}'."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def unmarked_literals() -> set[tuple[str, str]]:
    found = set()
    for module in sorted((REPO / "fieldsync" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in SHOWN_BY and not name.endswith(("Error", "Rejected", "Refused", "Customer", "Input")):
                continue
            for arg in node.args:
                literal = isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.Constant) and isinstance(arg.value, str))
                if literal and re.search(r"[A-Za-z]{2}", shape(arg)):
                    found.add((module.stem, shape(arg)[:40]))
    return found


# Every literal the CLI prints is marked; anything new must be marked too.
NOT_MARKED: set[tuple[str, str]] = set()


def test_no_new_cli_message_escapes_marking():
    found = unmarked_literals()
    escaped = found - NOT_MARKED
    assert not escaped, f"wrap these in _() and translate them (fieldsync/locale): {sorted(escaped)}"
    assert not NOT_MARKED - found, f"marked now, take them off NOT_MARKED: {sorted(NOT_MARKED - found)}"
