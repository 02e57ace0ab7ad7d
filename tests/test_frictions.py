"""The frictions a new user hit (issue 19, Deliver 4), each fixed and held by a test:
the demo's printed commands run as printed in a new shell; `./run fieldsync` keeps the caller's
folder; tablet-aware `init`; `category list` / `visit list`; `visit new --create-category`;
help without requirement numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from fieldsync.cli import COMMAND_MODULES
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
