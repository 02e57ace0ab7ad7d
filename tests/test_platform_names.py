"""Windows names, long paths, case-insensitive and NFC/NFD clashes: checked without Windows."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fieldsync.base.names import clean_component
from fieldsync.base.platform_names import (
    WINDOWS_MAX_PATH,
    casefold_collisions,
    find_platform_issues,
    fold_case,
    is_reserved_on_windows,
    windows_name_problems,
    windows_path_length,
)

VISIT = PurePosixPath("3300001234_杭州某某机械有限公司/周期检查/计量装置/2026-11-25_1430")


@pytest.mark.parametrize("name", ["CON", "con", "Nul.jpg", "AUX .txt", "com1", "LPT9.jpeg", "COM¹", "CONIN$"])
def test_device_names_are_reserved(name):
    assert is_reserved_on_windows(name)
    assert any("device name" in p for p in windows_name_problems(name))


@pytest.mark.parametrize("name", ["CONTRACT", "console.jpg", "COM10", "外观", "IMG_0001.jpg", "nul_"])
def test_ordinary_names_are_not_reserved(name):
    assert not is_reserved_on_windows(name)
    assert windows_name_problems(name) == []


@pytest.mark.parametrize("name,words", [
    ("a:b", "characters"), ('say "hi"', "characters"), ("x|y", "characters"), ("tab\there", "characters"),
    ("report.", "dot or space"), ("report ", "dot or space"), ("长" * 256, "longer than 255"),
])
def test_names_windows_refuses(name, words):
    assert any(words in p for p in windows_name_problems(name))


def test_path_length_counts_utf16_units_under_the_windows_root():
    rel = VISIT / "外观" / "IMG_1.jpg"
    expected = str(PureWindowsPath("C:\\fs", *rel.parts))
    assert windows_path_length(rel, "C:\\fs") == len(expected)  # CJK: one unit each
    assert windows_path_length(PurePosixPath("😀"), "C:\\") == len("C:\\") + 2  # outside the BMP: two


def test_a_path_over_max_path_is_reported_with_long_path_advice():
    long_visit = VISIT.parent / ("现场检查" * 60)
    issues = find_platform_issues([long_visit])
    assert [i.path for i in issues] == [long_visit]
    assert "limit 260" in issues[0].problem and "\\\\?\\" in issues[0].advice
    assert "LongPathsEnabled" in issues[0].advice
    assert windows_path_length(long_visit) > WINDOWS_MAX_PATH
    assert find_platform_issues([VISIT / "外观" / "IMG_1.jpg"]) == []


def test_names_differing_only_in_case_are_reported_not_merged():
    names = ["IMG_1.JPG", "img_1.jpg", "Img_1.jpg", "IMG_2.jpg", "外观"]
    assert casefold_collisions(names) == [["IMG_1.JPG", "Img_1.jpg", "img_1.jpg"]]
    rels = [VISIT / "外观" / n for n in names]
    lines = [str(issue) for issue in find_platform_issues(rels)]
    assert len(lines) == 1 and "differ only in case" in lines[0] and "never merges" in lines[0]


def test_same_names_in_different_folders_do_not_collide():
    rels = [VISIT / "外观" / "IMG_1.jpg", VISIT / "铭牌" / "img_1.JPG"]
    assert find_platform_issues(rels) == []


def test_sharp_s_is_not_folded_to_ss():
    # NTFS maps one character to one: 'Straße' and 'STRASSE' are two different files there.
    assert casefold_collisions(["Straße", "STRASSE"]) == []
    assert casefold_collisions(["straße", "STRAßE"]) == [["STRAßE", "straße"]]


def test_nfd_names_are_detected_and_an_nfc_twin_is_a_collision():
    nfc = "Café_外观"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    issues = find_platform_issues([VISIT / nfd])
    assert [i.problem for i in issues] == ["the name is in decomposed Unicode (NFD, as macOS writes it)"]
    assert repr(nfc) in issues[0].advice
    both = find_platform_issues([VISIT / nfc, VISIT / nfd])
    assert any("NFC and NFD form" in i.problem for i in both)


@given(st.text(min_size=1, max_size=80))
def test_every_cleaned_name_is_valid_on_windows(text):
    # names.clean_component (what fieldsync writes) and this checker (what check reports) agree.
    cleaned = clean_component(text)
    assume(cleaned)
    assert windows_name_problems(cleaned) == []
    assert unicodedata.is_normalized("NFC", cleaned)


@given(st.lists(st.text(alphabet=st.characters(categories=["Lu", "Ll", "Nd", "Lo"]), min_size=1, max_size=12),
                max_size=20))
def test_collision_groups_are_exactly_the_names_with_one_fold(names):
    groups = casefold_collisions(names)
    grouped = [n for g in groups for n in g]
    assert len(grouped) == len(set(grouped))  # a name is in one group at most
    for group in groups:
        assert len(group) >= 2 and len({fold_case(n) for n in group}) == 1
    for name in set(names) - set(grouped):
        assert sum(fold_case(other) == fold_case(name) for other in set(names)) == 1


@given(st.text(alphabet=st.characters(categories=["Ll"]), min_size=1, max_size=20))
def test_a_swapped_case_twin_always_collides(name):
    twin = name.upper()
    assume(twin != name and len(twin) == len(name) and fold_case(twin) == fold_case(name))
    assert casefold_collisions([name, twin]) == [sorted([name, twin])]
