"""The frictions a new user hit (issue 19, Deliver 4), each fixed and held by a test:
the demo's printed commands run as printed in a new shell; `./run fieldsync` keeps the caller's
folder; tablet-aware `init`; `category list` / `visit list`; `visit new --create-category`;
help without requirement numbers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import unicodedata
import venv
from pathlib import Path

import pytest

from fieldsync.cli import COMMAND_MODULES
from fieldsync.demo import write_sample_photo
from fieldsync.tree.visits import now
from tests.test_i18n import every_command

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "run"


def fake_run_venv(where: Path) -> Path:
    """A real venv as ./run makes it, without pip or the network: its python sees this test's
    packages (and this checkout) through a .pth file, its bin/fieldsync is a console script,
    and ./run's install stamp says it is up to date."""
    venv.create(where, with_pip=False, symlinks=True)
    python = where / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [str(REPO)]  # this checkout first, as an editable install would have it
    lines += [f"import site; site.addsitedir({p!r})" for p in {sysconfig.get_paths()["purelib"], *sys.path}
              if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(purelib) / "this-test.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = where / "bin" / "fieldsync"
    script.write_text(f"#!{python}\nimport sys\nfrom fieldsync.cli import main\nsys.exit(main())\n", encoding="utf-8")
    script.chmod(0o755)
    (where / ".fieldsync-installed").touch()
    return where


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a new login shell has: no venv on PATH, no PYTHONPATH, no FIELDSYNC_CONFIG, and a
    HOME of its own (so nothing falls back to a config of the tester's)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "FIELDSYNC_CONFIG", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(home)
    env["LANG"] = "C.UTF-8"
    env.pop("LC_ALL", None)
    return {**env, **extra}


@pytest.fixture
def run_venv(tmp_path_factory) -> Path:
    return fake_run_venv(tmp_path_factory.mktemp("run-venv") / ".venv")


# --------------------------------------------------------------------------- the demo's guide

def guide(output: str) -> tuple[list[str], list[str]]:
    """(setup lines, commands) of the demo's "try it" block: setup is what makes the shell
    ready (source, export, a function), commands are the `fieldsync ...` lines."""
    block = output.split("try it", 1)[1].splitlines()[1:]
    lines = [line.strip() for line in block if line.startswith("  ") and line.strip()]
    setup = [line for line in lines if not line.startswith("fieldsync ")]
    return setup, [line for line in lines if line.startswith("fieldsync ")]


def test_the_demos_printed_commands_run_as_printed_in_a_new_shell(run_venv, tmp_path):
    elsewhere = tmp_path / "somewhere else"
    elsewhere.mkdir()
    env = fresh_env(tmp_path, FIELDSYNC_VENV=str(run_venv))
    demo = subprocess.run([RUN, "demo", "--dir", "sandbox"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr
    assert (elsewhere / "sandbox" / "tablet" / "config.yaml").is_file()  # --dir from the caller's folder
    setup, commands = guide(demo.stdout)
    assert setup[0] == f"source {run_venv / 'bin' / 'activate'}"
    assert any("visit new 3300009999" in c for c in commands) and "fieldsync customers show 3300001234" in commands
    other = tmp_path / "another folder"
    other.mkdir()
    for command in commands:  # each in a new shell, in order, from another folder
        done = subprocess.run(["bash", "-c", "\n".join([*setup, command])], cwd=other,
                              env=fresh_env(tmp_path), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    visits = sorted((elsewhere / "sandbox" / "tablet").glob("3300009999_*/专项检查/计量装置/*/visit.yaml"))
    assert len(visits) == 1


def test_without_a_venv_the_guide_defines_fieldsync_for_this_python(invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = invoke("demo", "--dir", tmp_path / "demo")
    setup, commands = guide(result.stdout)
    assert setup[0].startswith("fieldsync() {") or setup[0].startswith("source ")
    assert setup[-1].startswith("export FIELDSYNC_CONFIG=")
    done = subprocess.run(["bash", "-c", "\n".join([*setup, commands[0]])], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "杭州某某机械有限公司" in done.stdout


# --------------------------------------------------------------------------- ./run fieldsync

def test_run_fieldsync_keeps_the_callers_folder_and_config_discovery(run_venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "rel.csv").write_text("户号,户名\n3300000042,测试户\n", encoding="utf-8")
    env = fresh_env(tmp_path, FIELDSYNC_VENV=str(run_venv))
    made = subprocess.run([RUN, "fieldsync", "init", "tree", "--server", (tmp_path / "srv").as_uri()],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert (work / "tree" / "config.yaml").is_file()  # ROOT relative to the caller's folder
    imported = subprocess.run([RUN, "fieldsync", "customers", "import", "../rel.csv"],
                              cwd=work / "tree", env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    shown = subprocess.run([RUN, "fieldsync", "customers", "show", "3300000042"],
                           cwd=work / "tree", env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "测试户" in shown.stdout
    # Not the repository's example config.yaml (root ~/fieldsync) nor a default under HOME.
    assert not (Path(env["HOME"]) / "fieldsync").exists()
    assert (work / "tree" / ".fieldsync").is_dir()


# --------------------------------------------------------------------------- init on a tablet

def test_init_advises_pull_on_a_tablet_and_import_on_a_local_tree(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tablet = invoke("init", tmp_path / "tablet", "--server", "sftp://zhang@files.example/fieldsync")
    assert tablet.exit_code == 0, tablet.output
    assert "fieldsync customers pull" in tablet.stdout and "customers import" not in tablet.stdout
    assert "fieldsync trust-host" in tablet.stdout
    local = invoke("init", tmp_path / "office", "--server", (tmp_path / "share").as_uri())
    assert "fieldsync customers import" in local.stdout and "customers pull" not in local.stdout


# --------------------------------------------------------------------------- lists

def test_category_and_visit_list_with_json(tree, invoke):
    assert invoke("customer", "open", "3300001234").exit_code == 0
    assert invoke("customer", "open", "3300005678").exit_code == 0
    invoke("category", "add", "3300001234", "1", "计量装置")
    invoke("category", "add", "3300005678", "3", "配电房")
    first = invoke("visit", "new", "3300001234", "1", "计量装置", "--name", "2026-12-01_0900").stdout.strip()
    invoke("visit", "new", "3300001234", "1", "计量装置", "--name", "2026-12-02_1000")
    categories = json.loads(invoke("category", "list", "--json").stdout)
    assert [(c["account_no"], c["business"], c["category"], c["visits"]) for c in categories] == [
        ("3300001234", "周期检查", "计量装置", 2), ("3300005678", "违约用电检查", "配电房", 0)]
    assert json.loads(invoke("category", "list", "3300005678", "--json").stdout) == categories[1:]
    text = invoke("category", "list").stdout
    assert "3300001234_杭州某某机械有限公司/周期检查/计量装置" in text and "2 categor" in text
    visits = json.loads(invoke("visit", "list", "3300001234", "--json").stdout)
    assert [v["name"] for v in visits] == ["2026-12-01_0900", "2026-12-02_1000"]
    assert visits[0]["path"] == Path(first).relative_to(tree.root).as_posix()
    assert visits[0]["photos"] == {"appearance": 0, "nameplate": 0} and visits[0]["inspector"] == "zhang.san"
    assert json.loads(invoke("visit", "list", "3300005678", "--json").stdout) == []
    assert "2 visit(s)" in invoke("visit", "list").stdout
    missing = invoke("visit", "list", "3300009999")
    assert missing.exit_code == 2 and "customer open 3300009999" in missing.stderr


def test_visit_new_creates_a_missing_category_when_asked(tree, invoke):
    invoke("customer", "open", "3300001234")
    refused = invoke("visit", "new", "3300001234", "2", "新类别")
    assert refused.exit_code == 2 and "category add" in refused.stderr
    made = invoke("visit", "new", "3300001234", "2", "新类别", "--create-category")
    assert made.exit_code == 0, made.output
    visit = Path(made.stdout.strip())
    assert visit.parent.name == "新类别" and (visit / "visit.yaml").is_file()
    again = invoke("visit", "new", "3300001234", "2", "新类别", "--create-category")  # existing is fine
    assert again.exit_code == 0


# --------------------------------------------------------------------------- help

def test_help_has_no_requirement_numbers(invoke):
    for name in COMMAND_MODULES:
        result = invoke(name, "--help")
        assert not re.search(r"\bP\d{1,2}\b", result.stdout), (name, result.stdout)
    for command in every_command():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        assert not any(re.search(r"\(P\d", t) for t in texts), command.name


# --------------------------------------------------------------------------- check's fixes

HOSTILE = "3300000002"


def hostile_tree(tree, invoke, tmp_path) -> dict[str, Path]:
    """A tree with every finding a command can fix, under names with spaces, full-width slashes
    and quotes; returns the paths that carry each kind."""
    from fieldsync.base.yamlfile import read_yaml, write_yaml

    csv = tmp_path / "more.csv"
    csv.write_text("户号,户名,表计局号\n3300000002,杭州/萧山 宏达纺织有限公司,5100000000002\n", encoding="utf-8")
    assert invoke("customers", "import", csv).exit_code == 0
    customer = Path(invoke("customer", "open", HOSTILE).stdout.strip())
    assert "／" in customer.name and " " in customer.name
    visit = Path(invoke("visit", "new", HOSTILE, "1", "计量 '装置'", "--create-category",
                        "--name", "2026-12-02 上午").stdout.strip())
    good = write_sample_photo(tmp_path / "good.jpg", now(), None, size=(64, 48))
    paths = {"visit": visit}
    data = read_yaml(customer / "customer.yaml")
    write_yaml(customer / "customer.yaml", {**data, "meter_no": "0000"})
    paths["stale"] = customer / "customer.yaml"
    paths["no customer.yaml"] = tree.root / "3300005678_宁波港口物流有限公司"
    paths["no customer.yaml"].mkdir()
    paths["stray"] = tree.root / "9999_stray 文件夹"
    (paths["stray"] / "周期检查").mkdir(parents=True)
    paths["no account"] = tree.root / "随便 的 文件夹"
    paths["no account"].mkdir()
    paths["business"] = customer / "其他 资料"
    paths["business"].mkdir()
    paths["in visit"] = visit / "草稿 (1)"
    paths["in visit"].mkdir()
    paths["no visit.yaml"] = visit.parent / "2026-12-03 下午"
    (paths["no visit.yaml"] / "外观").mkdir(parents=True)
    renamed = visit.parent / "2026-12-04 改名"
    Path(invoke("visit", "new", HOSTILE, "1", "计量 '装置'", "--name", "2026-12-04").stdout.strip()).rename(renamed)
    paths["renamed"] = renamed
    paths["backslash"] = shutil.copy(good, visit / "外观" / "a\\b 照片.jpg")
    paths["unsafe"] = shutil.copy(good, visit / "外观" / "IMG 0001.jpg ")
    paths["loose in visit"] = shutil.copy(good, visit / "IMG_9 (copy).jpg")
    paths["loose in customer"] = shutil.copy(good, customer / "散落 照片.jpg")
    paths["note"] = visit / "铭牌" / "备注 1.txt"
    paths["note"].write_text("铭牌被遮挡", encoding="utf-8")
    paths["misplaced"] = customer / "周期检查" / "说明 书.txt"
    paths["misplaced"].write_text("?", encoding="utf-8")
    paths["symlink"] = visit / "外观" / "link 1.jpg"
    paths["symlink"].symlink_to(good)
    paths["empty"] = visit / "外观" / "空 照片.jpg"
    paths["empty"].write_bytes(b"")
    paths["nfd"] = Path(shutil.copy(good, visit / "铭牌" / unicodedata.normalize("NFD", "café.jpg")))
    paths["case"] = Path(shutil.copy(good, visit / "铭牌" / "IMG_1.jpg"))
    shutil.copy(good, visit / "铭牌" / "img_1.jpg")
    past = time.time() - 3600
    for path in visit.rglob("*"):
        os.utime(path, (past, past), follow_symlinks=False)
    return paths


def fixes(output: str) -> list[tuple[str, str]]:
    """(finding line, fix command) pairs from `check`'s output."""
    lines = output.splitlines()
    return [(lines[i - 1], line.removeprefix("  fix: ")) for i, line in enumerate(lines) if line.startswith("  fix: ")]


def test_every_fix_check_suggests_runs_as_pasted_and_fixes_its_finding(tree, invoke, tmp_path):
    from fieldsync.tree.check import check_tree

    paths = hostile_tree(tree, invoke, tmp_path)
    before = check_tree(tree)
    with_fix = {(str(f.path), f.problem) for f in before if f.fix}
    rels = {kind: (p.relative_to(tree.root).as_posix()) for kind, p in paths.items() if kind != "visit"}
    # Every kind planted has a fix (the visit folder itself only holds them).
    assert {kind for kind, rel in rels.items() if not any(path == rel for path, _ in with_fix)} == set(), before
    result = invoke("check")
    assert result.exit_code == 1
    suggested = fixes(result.stdout)
    assert len(suggested) == len(with_fix)
    assert all("customer open 9999" not in command for _, command in suggested)
    shell = f'fieldsync() {{ {shlex.quote(sys.executable)} -m fieldsync "$@"; }}'
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The passes last: they push the tree, so they are clean once the other fixes are in.
    ordered = sorted(suggested, key=lambda pair: pair[1].endswith("fieldsync sync"))
    for finding, command in ordered:
        done = subprocess.run(["bash", "-c", f"{shell}\n{command}"], cwd=elsewhere, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (finding, command, done.stdout, done.stderr)
        left = {f"{f.path}: {f.problem}" for f in check_tree(tree)}
        assert not any(finding.startswith(f"{key}; ") or finding == key for key in left), (finding, command)
    assert check_tree(tree) == []
    assert invoke("check").exit_code == 0


def test_findings_no_command_fixes_carry_none(tree, invoke, tmp_path):
    from fieldsync.tree.check import check_tree

    invoke("customer", "open", "3300001234")
    visit = Path(invoke("visit", "new", "3300001234", "1", "计量装置", "--create-category").stdout.strip())
    fake = visit / "外观" / "fake photo.jpg"
    fake.write_bytes(b"not a jpeg at all" * 10)
    past = time.time() - 3600
    os.utime(fake, (past, past))
    [found] = [f for f in check_tree(tree) if f.path.name == "fake photo.jpg"]
    assert "not a readable photo" in found.problem and found.fix == ()
    assert "fix:" not in invoke("check").stdout


def test_check_speaks_chinese(tree, invoke, tmp_path, monkeypatch):
    from fieldsync.base import i18n

    paths = hostile_tree(tree, invoke, tmp_path)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    try:
        result = invoke("check")
    finally:
        i18n.choose()
    stray = paths["stray"].relative_to(tree.root).as_posix()
    [line] = [x for x in result.stdout.splitlines() if x.startswith(f"{stray}：")]
    assert "客户档案" in line and "9999" in line, line
    assert "  修复：" in result.stdout and "  fix:" not in result.stdout
    assert "visit without" not in result.stdout and "unknown business folder" not in result.stdout


# --------------------------------------------------------------------------- status while offline

def test_status_offline_counts_each_file_once_and_keeps_the_done_count(tree, invoke, tmp_path):
    from fieldsync.errors import TransportError
    from fieldsync.sync import daemon as daemon_mod
    from fieldsync.sync.engine import Engine
    from fieldsync.transport import open_transport

    assert invoke("customer", "open", "3300001234").exit_code == 0
    visit = Path(invoke("visit", "new", "3300001234", "1", "计量装置", "--create-category").stdout.strip())
    first = [write_sample_photo(tmp_path / f"a{i}.jpg", now(), None, size=(64 + i, 48)) for i in range(2)]
    assert invoke("add", *first, "--visit", visit, "--kind", "appearance").exit_code == 0
    assert invoke("sync").exit_code == 0
    done = json.loads(invoke("status", "--json").stdout)["counts"]["done"]
    assert done > 0
    more = [write_sample_photo(tmp_path / f"b{i}.jpg", now(), None, size=(80 + i, 48)) for i in range(3)]
    assert invoke("add", *more, "--visit", visit, "--kind", "nameplate").exit_code == 0  # pages change too

    def unplugged(local, rel, progress=None):  # the network goes away at the first upload
        raise TransportError("connection lost")

    transport = open_transport(tree)
    transport.upload = unplugged
    with Engine(tree, transport=transport) as eng:
        result = eng.run()
        daemon_mod.write_pass_status(tree, eng, result)
    assert result.error and result.failed  # the engine marked the files in flight as failed
    status = json.loads(invoke("status", "--json").stdout)
    counts = status["counts"]
    waiting = {item["path"] for item in status["pending"]}
    assert counts["failed"] == 0 and status["failed"] == []  # offline is not a failure
    assert counts["pending"] == len(waiting) >= 3 + 1  # the photos, the manifest, pages: each once
    assert {rel for rel, _ in result.failed} <= waiting
    assert counts["done"] == done  # re-rendered pages are still on the server (an older version)
    text = invoke("status").stdout
    assert "offline, waiting" in text and "failed 0" in text and f"pending {counts['pending']} " in text
    assert not any(line.strip().startswith("failed ") for line in text.splitlines())
    with_zh = subprocess.run([sys.executable, "-m", "fieldsync", "status"], capture_output=True, text=True,
                             env={**os.environ, "LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""})
    assert "离线，等待" in with_zh.stdout and "失败 0" in with_zh.stdout, with_zh.stdout
    assert "failed" not in with_zh.stdout and "pending" not in with_zh.stdout
