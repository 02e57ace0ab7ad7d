"""Write docs/walkthrough.md and its screenshots by living an inspector's day on a sandbox tree.

    .venv/bin/python docs/make_walkthrough.py [--keep DIR]

Every command shown in the walkthrough is run here, through the installed `fieldsync` command,
and its real output is pasted under it (the sandbox folder is shown as ~). Camera shots are
real JPEGs with EXIF written into the camera inbox, as the tablet's camera app would. The
generated pages are photographed with Debian chromium through Playwright, with the same
network guard as the tests (tests/fixtures/browser.py). A command this build does not have
yet is listed as such instead of being invented; run the script again once it exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))

# After the path insert, so the checkout's fieldsync is the one imported.
from fieldsync.demo import sample_csv_path, write_sample_photo  # noqa: E402

FIELDSYNC = Path(sys.executable).parent / "fieldsync"
IMG = HERE / "img"
ACCOUNT = "3300001234"
GPS = (30.2799, 120.1290)


class Day:
    """Runs commands in the sandbox and collects the walkthrough's markdown."""

    def __init__(self, home: Path):
        self.home = home
        self.cwd = home
        self.parts: list[str] = []
        self.missing: list[str] = []
        self.shots = 0
        self.env = {**os.environ, "HOME": str(home), "FIELDSYNC_CONFIG": str(home / "fieldsync" / "config.yaml"),
                    "COLUMNS": "100", "LANG": "C.UTF-8"}

    def say(self, text: str) -> None:
        self.parts.append(text.strip("\n") + "\n")

    def shown(self, text: str) -> str:
        return text.replace(str(self.home), "~")

    def run(self, *args: str, note: str = "", cwd: Path | None = None,
            config: Path | None = None) -> subprocess.CompletedProcess:
        cwd = cwd or self.cwd
        env = self.env if config is None else {**self.env, "FIELDSYNC_CONFIG": str(config)}
        done = subprocess.run([str(FIELDSYNC), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        command = "fieldsync " + " ".join(_quote(self.shown(a)) for a in args)
        if "No such command" in done.stderr:
            self.missing.append(command)
            name = " ".join(a for a in args[:2] if not a.startswith("-"))
            self.say(f"```console\n$ {command}\n```\n*(`fieldsync {name}` is not in this build yet: "
                     "re-run docs/make_walkthrough.py once it is.)*\n")
            return done
        prompt = "$ " if cwd == self.home else f"…/{cwd.name}$ "
        output = self.shown((done.stdout + done.stderr).rstrip())
        code = f"\n(exit {done.returncode})" if done.returncode else ""
        self.say(f"```console\n{prompt}{command}\n{output}{code}\n```" + (f"\n{note}" if note else ""))
        return done

    def shoot(self, size=(2448, 1836)) -> None:
        """The camera app saves a photo into the inbox, named the way Android cameras name them."""
        now = datetime.now()
        self.shots += 1
        name = f"IMG_{now:%Y%m%d_%H%M%S}{self.shots:02d}.jpg"
        write_sample_photo(self.home / "DCIM" / "Camera" / name, now, GPS, size=size)


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def back_office(day: Day) -> None:
    """The back office imports the marketing system's export and publishes it on the server."""
    home = day.home
    office = home / "back-office"
    day.say("""
## Before the day: the back office publishes the customer master data

On the server (or any machine that reaches it), the marketing system's export is imported and
published into the server tree's `.fieldsync/` for every tablet to pull (here the export is GBK,
as the marketing system writes it):
""")
    day.run("init", str(office), "--inspector", "back.office", "--device", "office",
            "--server", (home / "server").as_uri())
    csv = home / "客户档案.csv"
    shutil.copyfile(sample_csv_path(), csv)
    day.run("customers", "import", str(csv), config=office / "config.yaml")
    day.run("customers", "publish", str(home / "server"), config=office / "config.yaml")


def live_the_day(day: Day) -> Path:
    home = day.home
    (home / "DCIM" / "Camera").mkdir(parents=True)
    (home / "server").mkdir()
    day.say("""
# An inspector's day with fieldsync

Zhang San (张三) inspects customers' metering with a tablet. Everything below was run on a
sandbox tablet by `docs/make_walkthrough.py`, which pastes each command's real output under it
(the sandbox is shown as `~`; the "server" is a local folder standing in for the SFTP share).
The tablet's camera app saves into `~/DCIM/Camera`; fieldsync files each photo into the right
folder of the right visit.
""")
    back_office(day)
    day.say("""
## Once: set up the tablet
""")
    day.run("init", str(home / "fieldsync"), "--inspector", "zhang.san", "--device", "tablet-07",
            "--server", (home / "server").as_uri())
    config = home / "fieldsync" / "config.yaml"
    text = config.read_text(encoding="utf-8")
    start = text.index("camera:")
    end = text.index("\n\n", start)
    config.write_text(text[:start] + "camera:\n  inbox: ~/DCIM/Camera   # the camera app's folder\n"
                      "  mode: move\n  idle_minutes: 240" + text[end:], encoding="utf-8")
    day.say("""
Then, in `~/fieldsync/config.yaml`, the camera section names the folder the camera app writes
to (on Android with Termux `~/storage/dcim/Camera`, on Windows `~\\Pictures\\Camera Roll`):

```yaml
camera:
  inbox: ~/DCIM/Camera   # the camera app's folder
  mode: move             # move: the inbox is emptied | copy: the camera roll keeps its photos
  idle_minutes: 240      # the active visit expires after 4 hours without use
```

## Morning, still on Wi-Fi: today's customer data

The tablet fetches the customer master data the back office published on the server (the
daemon also does this with each full rescan); it is fetched only when it changed:
""")
    day.run("customers", "pull")
    day.run("customers", "show", ACCOUNT)

    day.say("\n## At the factory's meter room\n\nOpen the customer, add a category once, "
            "and start a dated visit with what is seen at first glance (the folder name is the "
            "date and time; `--name` or a later `visit edit --name` changes it):")
    day.run("customer", "open", ACCOUNT)
    day.run("category", "add", ACCOUNT, "1", "计量装置")
    visit = Path(day.run("visit", "new", ACCOUNT, "1", "计量装置",
                         "--appearance-note", "计量柜外观完好，封印齐全").stdout.strip())
    day.cwd = visit
    day.say("""
`visit new` prints the new folder; the inspector changes into it (`cd "$(fieldsync visit new ...)"`
does both at once) and points the camera at it. From anywhere else the visit's path relative to
`~/fieldsync` works too. This is the only typing before shooting (the prompt shows `…/` and the
current folder's name):
""")
    day.run("visit", "use", ".")

    day.say("""
## Shooting

The inspector now only uses the tablet's camera app. The daemon (`fieldsync daemon`, started at
boot, see docs/platforms/) files each photo as soon as the camera has finished writing it; the
`shoot` button (拍照) does the same at once:
""")
    day.shoot()
    day.shoot()
    day.run("shoot")
    day.say("\nClose-ups of the nameplate: one tap on 铭牌, then shoot again:")
    day.run("nameplate")
    day.shoot()
    day.run("shoot")
    day.say("\nA photo the customer's electrician sent earlier, chosen in the gallery (本地选择):")
    download = home / "Download"
    write_sample_photo(download / "电工发来的铭牌照片.jpg", datetime.now(), None, size=(1600, 1200))
    day.run("pick", str(download / "电工发来的铭牌照片.jpg"))
    day.say("\n## Remarks (编辑), during or after the upload\n")
    day.run("remark", "--nameplate", "铭牌清晰，型号 DTZY341，表号与档案一致")
    day.say("\nBack to overall shots (外观) for the cabinet's left side; the active target shows what "
            "the next photo will do:")
    day.run("appearance")
    day.shoot()
    day.run("shoot")

    day.say("""
## Photos with no visit chosen stay where they are

After lunch the target is cleared on purpose; a photo taken now stays in the camera folder and
fieldsync says so instead of guessing a visit (the same happens after `idle_minutes` without
use, so tomorrow's photos never land in today's visit):
""")
    day.run("visit", "use", "--clear")
    day.shoot(size=(1600, 1200))
    day.run("shoot")

    day.run("visit", "use")

    day.say("""
## What has reached the server? (no signal in the meter room)

The meter room has no signal: here the sandbox's server folder is moved away, so the push
fails exactly as an unreachable server does. Nothing is lost; `status` says what is waiting
and why:
""")
    offline = home / "server.unreachable"
    (home / "server").rename(offline)
    day.run("sync")
    day.run("status")
    offline.rename(home / "server")
    day.say("\n## Evening, back on Wi-Fi: the last upload\n")
    day.run("sync")
    day.run("status")
    day.run("check")
    return visit


def screenshots(day: Day, visit: Path) -> list[tuple[str, str]]:
    """Photograph the tablet's generated pages; returns (file, caption) pairs."""
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import CHROMIUM_ARGS, LOCAL_HOSTS, chromium_path

    path = chromium_path()
    if path is None:
        print("no Debian chromium: screenshots skipped (apt-get install chromium)", file=sys.stderr)
        return []
    subprocess.run([str(FIELDSYNC), "customer", "open", ACCOUNT], env=day.env, cwd=day.home,
                   capture_output=True, check=True)  # refresh the customer page
    root = day.home / "fieldsync"
    shots = [("walkthrough-root.png", root / "index.html", "机械",
              "The query page (`~/fieldsync/index.html`): customers found by any field, offline"),
             ("walkthrough-customer.png", visit.parent.parent.parent / "index.html", None,
              "The customer's page: basic info, business types, today's visit"),
             ("walkthrough-visit.png", visit / "index.html", None,
              "The visit's page: remarks, their history, and the photos filed from the camera")]
    IMG.mkdir(exist_ok=True)
    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})

        def guard(route):
            url = urlsplit(route.request.url)
            if url.scheme in ("file", "data", "blob", "about") or url.hostname in LOCAL_HOSTS:
                return route.continue_()
            return route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        for name, file, query, caption in shots:
            page.goto(file.as_uri())
            page.wait_for_load_state("load")
            if query and page.locator("#search").count():
                page.fill("#search", query)
                page.wait_for_timeout(300)  # the page filters on input
            page.screenshot(path=str(IMG / name), full_page=True)
            taken.append((name, caption))
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the sandbox in this (new) folder and keep it")
    args = parser.parse_args()
    home = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="fieldsync-day-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        day = Day(home)
        visit = live_the_day(day)
        taken = screenshots(day, visit)
        if taken:
            day.say("\n## The pages on the tablet\n\nEvery folder has an `index.html` that any browser "
                    "on the tablet opens offline; the same pages are mirrored to the server.\n")
            for name, caption in taken:
                day.say(f"![{caption}](img/{name})\n\n*{caption}.*\n")
        day.say("""
## The five buttons, and where to find them

| patent button | command | Linux | Windows | Android (Termux:Widget) |
|---|---|---|---|---|
| 本地选择 local select | `fieldsync pick FILE...` | fieldsync-pick.desktop ("Open with") | drop on fieldsync-pick.cmd, or Send to | Share → Termux (termux-file-editor) |
| 拍照 take photo | `fieldsync shoot` (the daemon does it by itself) | fieldsync-shoot.desktop | fieldsync-shoot.cmd | 2-拍照 |
| 外观 appearance | `fieldsync appearance` | fieldsync-appearance.desktop | fieldsync-appearance.cmd | 3-外观 |
| 铭牌 nameplate | `fieldsync nameplate` | fieldsync-nameplate.desktop | fieldsync-nameplate.cmd | 4-铭牌 |
| 编辑 edit | `fieldsync remark` | fieldsync-remark.desktop | fieldsync-remark.cmd | 5-编辑 |

Choosing the visit is `fieldsync visit use VISIT` (Termux: 1-选择访问 offers the latest visits).
The launchers are in `contrib/launchers/`; docs/platforms/ says how to install them and how to
start the daemon at boot on each system.
""")
        (HERE / "walkthrough.md").write_text("\n".join(day.parts), encoding="utf-8")
        print(f"wrote {HERE / 'walkthrough.md'} and {len(taken)} screenshot(s) in {IMG}")
        if day.missing:
            print("not in this build yet: " + "; ".join(day.missing), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
