"""A long-running engine re-checks server folders each pass: a folder swapped for a symlink
between two passes on one SFTP connection is refused, nothing is written outside (issue 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fieldsync.sync import engine
from fieldsync.tree import folders as tree_mod
from fieldsync.tree import visits
from tests.fixtures.syncing import camera_photo, server_root


def a_visit(cfg) -> Path:
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    return visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_1000")


def swap_for_link(server_folder: Path, outside: Path) -> None:
    """What a hostile account on the share does between two passes."""
    shutil.rmtree(server_folder)
    server_folder.symlink_to(outside, target_is_directory=True)


def two_passes_with_a_link_planted_between(cfg, visit: Path, server: Path, outside: Path):
    camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600), seed=1)
    with engine.Engine(cfg) as running:  # one engine, one connection: as the daemon holds it
        first = running.run()
        assert first.exit_code == 0, str(first)
        connection = running.transport
        swap_for_link(server / (visit / "外观").relative_to(cfg.root), outside)
        camera_photo(visit / "外观" / "IMG_2.jpg", upright=(800, 600), seed=2)
        second = running.run()
        assert running.transport is connection
    return second


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.mark.usefixtures("sshd")
def test_sftp_engine_refuses_a_folder_swapped_for_a_link_between_passes(sftp_tree, remote_root, outside):
    visit = a_visit(sftp_tree)
    second = two_passes_with_a_link_planted_between(sftp_tree, visit, remote_root, outside)
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert second.exit_code == 2, str(second)
    reasons = dict(second.failed)
    assert any(key.endswith("外观/IMG_2.jpg") and "symlink" in reason for key, reason in reasons.items()), reasons
    assert second.error is None  # one refused folder stops nothing else: the pass went on


def test_file_server_refuses_the_same(sync_visit, outside):
    cfg, visit = sync_visit
    second = two_passes_with_a_link_planted_between(cfg, visit, server_root(cfg), outside)
    assert list(outside.iterdir()) == []
    assert any(key.endswith("外观/IMG_2.jpg") and "symlink" in reason for key, reason in second.failed), second
