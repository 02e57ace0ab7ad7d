"""Safe names: properties over arbitrary text (hypothesis) and the cases the issue lists."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fieldsync.base.names import (
    MAX_COMPONENT_BYTES,
    clean_component,
    customer_folder_name,
    is_safe_component,
    normalize_account,
    require_safe,
)
from fieldsync.errors import BadName

TEMPLATE = "{account_no}_{name}"
FORBIDDEN = set('/\\:*?"<>|')
DEVICES = {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
accounts = st.from_regex(r"\A[0-9]{6,12}\Z")
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


def assert_one_safe_component(name: str) -> None:
    assert name and "/" not in name and "\\" not in name
    assert not FORBIDDEN & set(name)
    assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in name)
    assert name == unicodedata.normalize("NFC", name)
    assert not name.endswith((".", " ")) and not name.startswith((".", " "))
    assert name not in (".", "..")
    assert name.split(".")[0].upper().rstrip() not in DEVICES
    assert len(name.encode("utf-8")) <= MAX_COMPONENT_BYTES


@settings(max_examples=400)
@given(accounts, any_text)
def test_customer_folder_is_always_one_safe_component(account, name):
    folder = customer_folder_name(TEMPLATE, account, name)
    assert_one_safe_component(folder)
    assert folder.startswith(account)


@settings(max_examples=300)
@given(accounts, any_text)
def test_customer_folder_is_stable(account, name):
    once = customer_folder_name(TEMPLATE, account, name)
    assert customer_folder_name(TEMPLATE, account, name) == once
    # NFD input (macOS, some Android file managers) gives the same folder as NFC.
    assert customer_folder_name(TEMPLATE, account, unicodedata.normalize("NFD", name)) == once


@settings(max_examples=300)
@given(st.lists(accounts, min_size=2, max_size=5, unique=True), any_text)
def test_two_customers_never_share_a_folder(account_list, name):
    folders = {customer_folder_name(TEMPLATE, a, name) for a in account_list}
    assert len(folders) == len(account_list)


@settings(max_examples=300)
@given(any_text)
@example("0 \x1b\x850")  # NEL is both a control character and a space
def test_clean_component_is_idempotent_and_safe(text):
    cleaned = clean_component(text)
    assert clean_component(cleaned) == cleaned
    if cleaned:
        assert_one_safe_component(cleaned)
        assert is_safe_component(cleaned)


@pytest.mark.parametrize("name", [
    "a/b", "..", "../../etc", "C:\\x", "a*b?", "线路\x00名", "bell\x07", "trailing. . ",
    "CON", "con.txt", "nul", "LPT1", "\u200b\u202e隐藏", "杭" * 200, "  ",
])
def test_hostile_names_become_safe(name):
    folder = customer_folder_name(TEMPLATE, "3300001234", name)
    assert_one_safe_component(folder)


def test_long_chinese_name_is_cut_on_a_character_and_keeps_account():
    folder = customer_folder_name(TEMPLATE, "3300001234", "杭州" * 100)
    assert folder.startswith("3300001234_杭州")
    assert len(folder.encode()) <= MAX_COMPONENT_BYTES
    folder.encode("utf-8").decode("utf-8")


def test_slashes_keep_their_meaning_as_full_width():
    assert customer_folder_name(TEMPLATE, "1", "杭州/萧山") == "1_杭州／萧山"


def test_nfd_is_composed():
    nfd = unicodedata.normalize("NFD", "Café")
    assert clean_component(nfd) == "Café"


@pytest.mark.parametrize("typed", ["a/b", "..", "x.", "CON", "", "   ", "tab\there"])
def test_typed_names_are_refused_with_a_suggestion(typed):
    with pytest.raises(BadName):
        require_safe(typed, "category name")


def test_refusal_suggests_the_clean_form():
    with pytest.raises(BadName, match="计量／装置"):
        require_safe("计量/装置", "category name")


@pytest.mark.parametrize("raw,expected", [("３３００００１２３４", "3300001234"), (" ab-12 ", "AB-12")])
def test_accounts_are_normalised(raw, expected):
    assert normalize_account(raw) == expected


@pytest.mark.parametrize("raw", ["", "../1", "12 34", "1/2", "x" * 40])
def test_bad_accounts_are_refused(raw):
    with pytest.raises(BadName):
        normalize_account(raw)
