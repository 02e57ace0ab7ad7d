"""The sync state describes one server (URL, host key, the id in .fieldsync/server-id): pointed
at another one, `sync` reconciles afresh and pushes everything it lacks (issue 15)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from fieldsync import config as config_mod
from fieldsync.sync import engine
from fieldsync.sync.state import SyncState
from fieldsync.transport.base import SERVER_ID
from tests.fixtures.syncing import camera_photo, mirror_problems, server_root


def point_at(cfg, url: str):
    """Change server.url in config.yaml, as an inspector (or a new deployment) would."""
    data = yaml.safe_load(cfg.path.read_text(encoding="utf-8"))
    data["server"]["url"] = url
    cfg.path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config_mod.load(cfg.path)


def stamps(server: Path) -> dict[str, int]:
    return {p.relative_to(server).as_posix(): p.stat().st_mtime_ns for p in server.rglob("*")
            if p.is_file() and not p.relative_to(server).as_posix().startswith(".fieldsync/")}


def with_photos(sync_visit, count: int = 3):
    cfg, visit = sync_visit
    for i in range(count):
        camera_photo(visit / "外观" / f"IMG_{i}.jpg", upright=(800, 600), seed=i)
    return cfg, visit


def test_a_new_empty_server_gets_everything_and_the_old_one_nothing_twice(sync_visit, tmp_path, invoke):
    cfg_a, _ = with_photos(sync_visit)
    first = engine.sync_once(cfg_a)
    assert first.exit_code == 0 and first.uploaded > 0, str(first)
    server_a = server_root(cfg_a)
    before = stamps(server_a)

    server_b = tmp_path / "server-b"
    server_b.mkdir()
    cfg_b = point_at(cfg_a, server_b.as_uri())
    shown = json.loads(invoke("status", "--json").output)
    assert shown["server"]["same"] is False
    assert shown["server"]["state_describes"]["url"] == server_a.as_uri()
    assert shown["counts"]["pending"] == first.uploaded  # not "pending 0": B holds nothing
    assert "the sync state describes" in invoke("status").output

    to_b = engine.sync_once(cfg_b)
    assert to_b.exit_code == 0, str(to_b)
    assert to_b.uploaded >= first.uploaded
    assert mirror_problems(cfg_b) == []
    shown = json.loads(invoke("status", "--json").output)
    assert shown["server"]["same"] is True and shown["counts"]["pending"] == 0

    back = engine.sync_once(point_at(cfg_b, server_a.as_uri()))
    assert back.exit_code == 0 and back.uploaded == 0, str(back)
    assert stamps(server_a) == before  # nothing uploaded twice
    assert not list(server_a.rglob("*conflict*"))


def test_a_new_empty_server_at_the_same_url_gets_everything(sync_visit, tmp_path):
    cfg, _ = with_photos(sync_visit)
    assert engine.sync_once(cfg).exit_code == 0
    server = server_root(cfg)
    # The share is replaced by a new, empty one mounted at the same place.
    shutil.move(server, tmp_path / "old-share")
    server.mkdir()
    again = engine.sync_once(cfg)
    assert again.exit_code == 0 and again.uploaded > 0, str(again)
    assert mirror_problems(cfg) == []
    assert (server / SERVER_ID).read_text() != (tmp_path / "old-share" / SERVER_ID).read_text()


def test_exit_0_only_when_the_new_server_holds_everything(sync_visit, tmp_path):
    cfg_a, visit = with_photos(sync_visit)
    assert engine.sync_once(cfg_a).exit_code == 0
    server_b = tmp_path / "server-b"
    server_b.mkdir()
    # On B, a file stands where the tablet needs the visit's photo folder.
    (server_b / visit.relative_to(cfg_a.root) / "外观").parent.mkdir(parents=True)
    (server_b / visit.relative_to(cfg_a.root) / "外观").write_text("in the way")
    cfg_b = point_at(cfg_a, server_b.as_uri())
    blocked = engine.sync_once(cfg_b)
    assert blocked.exit_code != 0, str(blocked)
    (server_b / visit.relative_to(cfg_a.root) / "外观").unlink()
    done = engine.sync_once(cfg_b)
    assert done.exit_code == 0, str(done)
    assert mirror_problems(cfg_b) == []


def test_the_state_records_the_server_identity(sync_visit):
    cfg, _ = with_photos(sync_visit, 1)
    assert engine.sync_once(cfg).exit_code == 0
    server = server_root(cfg)
    with SyncState(cfg.state_dir) as state:
        described = state.server()
    assert described == {"url": server.as_uri(), "host_key": None,
                         "server_id": (server / SERVER_ID).read_text().strip()}


def test_a_planted_server_id_link_is_refused(sync_visit, tmp_path):
    cfg, _ = with_photos(sync_visit, 1)
    secret = tmp_path / "secret"
    secret.write_text("admin's file")
    server = server_root(cfg)
    (server / ".fieldsync").mkdir()
    (server / SERVER_ID).symlink_to(secret)
    result = engine.sync_once(cfg)
    assert result.exit_code == 2 and "server-id" in (result.error or ""), str(result)
    assert secret.read_text() == "admin's file"


def test_sftp_another_remote_root_gets_everything(sftp_tree, sshd, tmp_path):
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits

    cfg = sftp_tree
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    visit = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_1000")
    for i in range(2):
        camera_photo(visit / "外观" / f"IMG_{i}.jpg", upright=(800, 600), seed=i)
    first = engine.sync_once(cfg)
    assert first.exit_code == 0, str(first)
    with SyncState(cfg.state_dir) as state:
        assert state.server()["host_key"] == sshd.host_fingerprint
    other = tmp_path / "sftp-other"
    other.mkdir()
    sshd.write_config_yaml(cfg.path, other)
    cfg_b = config_mod.load(cfg.path)
    to_b = engine.sync_once(cfg_b)
    assert to_b.exit_code == 0 and to_b.uploaded >= first.uploaded, str(to_b)
    tablet = {p.relative_to(cfg.root) for p in cfg.root.rglob("*") if p.is_file()
              and not p.relative_to(cfg.root).parts[0].startswith(".") and p.name != "config.yaml"}
    assert tablet <= {p.relative_to(other) for p in other.rglob("*") if p.is_file()}
