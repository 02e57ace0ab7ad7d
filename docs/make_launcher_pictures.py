"""Photograph the Linux desktop launchers at work, for the Pictures part of docs/platforms/linux.md.

    .venv/bin/python docs/make_launcher_pictures.py [--keep DIR]

A sandbox tablet tree is made with the installed `fieldsync`, contrib/launchers/linux is
installed into the sandbox HOME as docs/platforms/linux.md tells a user to, and a small desktop
runs on a private X display: Xvfb, a D-Bus session, dunst (notifications) and pcmanfm (desktop
icons and a folder window). Launchers are double-clicked with xdotool and the screen is grabbed
with Pillow, so every notification in the pictures is the real answer of the real command.
Nothing is installed here; missing Debian packages are named with an apt-get line (exit 2).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT))

# After the path insert, so the checkout's fieldsync is the one imported.
from fieldsync.demo import sample_csv_path, write_sample_photo  # noqa: E402

FIELDSYNC = Path(sys.executable).parent / "fieldsync"
LAUNCHERS = PROJECT / "contrib" / "launchers" / "linux"
IMG = HERE / "img"
ACCOUNT = "3300001234"
SCREEN = (1024, 700)
FONT = "WenQuanYi Micro Hei"

# program -> Debian package that provides it
NEEDED = {
    "Xvfb": "xvfb",
    "dbus-daemon": "dbus",
    "dunst": "dunst",
    "dunstctl": "dunst",
    "notify-send": "libnotify-bin",
    "pcmanfm": "pcmanfm",
    "xdotool": "xdotool",
    "fc-list": "fontconfig",
}

# The order docs/platforms/linux.md lists the buttons in; pcmanfm is told to put the desktop
# icons in this column so the script knows where to double-click.
ICONS = ["pick", "shoot", "appearance", "nameplate", "remark", "status"]
ICON_X, ICON_TOP, ICON_STEP = 8, 8, 112


def missing_packages() -> list[str]:
    missing = {pkg for prog, pkg in NEEDED.items() if shutil.which(prog) is None}
    if shutil.which("fc-list") and FONT not in _output(["fc-list", ":lang=zh", "family"]):
        missing.add("fonts-wqy-microhei")     # without a CJK font the Chinese labels are boxes
    return sorted(missing)


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout


class Sandbox:
    """The tablet's HOME: a fieldsync tree, the launchers installed, and the environment to use."""

    def __init__(self, base: Path):
        self.home = base / "home"
        self.server = base / "server"
        self.tree = self.home / "fieldsync"
        self.bin = self.home / ".local" / "bin"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")},
            "HOME": str(self.home),
            "FIELDSYNC_CONFIG": str(self.tree / "config.yaml"),
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(base / "run"),
        }
        (base / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.visit: Path | None = None

    def fieldsync(self, *args: str) -> str:
        done = subprocess.run([str(FIELDSYNC), *args], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise SystemExit(f"fieldsync {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout}{done.stderr}")
        return done.stdout

    def build_tree(self) -> None:
        """The steps of an inspector's morning, up to choosing the visit the camera fills."""
        self.fieldsync("init", str(self.tree), "--inspector", "zhang.san", "--device", "tablet-07",
                       "--server", self.server.as_uri())
        self._set_camera_inbox("~/Pictures/Camera")
        (self.home / "Pictures" / "Camera").mkdir(parents=True)
        self.fieldsync("customers", "import", str(sample_csv_path()))
        self.fieldsync("customer", "open", ACCOUNT)
        self.fieldsync("category", "add", ACCOUNT, "1", "计量装置")
        self.visit = Path(self.fieldsync("visit", "new", ACCOUNT, "1", "计量装置").strip().splitlines()[-1])
        self.fieldsync("visit", "use", str(self.visit))

    def _set_camera_inbox(self, inbox: str) -> None:
        # what linux.md's "The camera folder" asks the user to edit by hand
        config = self.tree / "config.yaml"
        text, count = re.subn(r"^(\s*inbox:)\s*null\b", rf"\1 {inbox}", config.read_text(encoding="utf-8"),
                              count=1, flags=re.MULTILINE)
        if count != 1:
            raise SystemExit(f"{config}: no 'inbox: null' line to set; has the template changed?")
        config.write_text(text, encoding="utf-8")

    def install_launchers(self) -> None:
        """linux.md's Install and "The five buttons" steps, with ~ being the sandbox HOME."""
        applications = self.home / ".local" / "share" / "applications"
        desktop = self.home / "Desktop"
        for folder in (self.bin, applications, desktop):
            folder.mkdir(parents=True, exist_ok=True)
        (self.bin / "fieldsync").symlink_to(FIELDSYNC)
        desktop_files = sorted(LAUNCHERS.glob("fieldsync-*.desktop"))
        self._run(["install", "-m", "755", "fieldsync-button", "fieldsync-remark", str(self.bin)])
        self._run(["install", "-m", "644", *[p.name for p in desktop_files], str(applications)])
        if shutil.which("update-desktop-database"):    # only for "Open With"; not in the pictures
            self._run(["update-desktop-database", str(applications)])
        # The desktop shows the same files, so the file manager can show and start them.
        self._run(["install", "-m", "644", *[p.name for p in desktop_files], str(desktop)])

    def _run(self, argv: list[str]) -> None:
        subprocess.run(argv, cwd=LAUNCHERS, env=self.env, check=True)

    def camera_takes_photo(self) -> Path:
        """The camera app saves a photo into the inbox, named the way camera apps name them."""
        now = datetime.now()
        photo = self.home / "Pictures" / "Camera" / f"IMG_{now:%Y%m%d_%H%M%S}.jpg"
        return write_sample_photo(photo, now, (30.2799, 120.1290), size=(2448, 1836))

    def configure_desktop(self) -> None:
        """dunst and pcmanfm settings: readable Chinese, notifications that stay until closed."""
        config = self.home / ".config"
        (config / "dunst").mkdir(parents=True, exist_ok=True)
        (config / "dunst" / "dunstrc").write_text(
            "[global]\n"
            f"font = {FONT} 11\n"
            "width = 560\n"
            "origin = top-right\n"
            "offset = 16x16\n"
            "frame_width = 2\n"
            "padding = 10\n"
            "horizontal_padding = 12\n"
            "word_wrap = yes\n"
            "[urgency_normal]\n"
            "background = \"#1f3b57\"\n"
            "foreground = \"#ffffff\"\n"
            "frame_color = \"#9cc3e6\"\n"
            "timeout = 0\n", encoding="utf-8")
        pcmanfm = config / "pcmanfm" / "default"
        pcmanfm.mkdir(parents=True, exist_ok=True)
        items = ["[*]", "wallpaper_mode=color", "desktop_bg=#35607f", "desktop_fg=#ffffff",
                 "desktop_shadow=#000000", f"desktop_font={FONT} 10", "show_wm_menu=0",
                 "show_documents=0", "show_trash=0", "show_mounts=0", ""]
        for row, button in enumerate(ICONS):
            items += [f"[fieldsync-{button}.desktop]", f"x={ICON_X}", f"y={ICON_TOP + row * ICON_STEP}", ""]
        (pcmanfm / "desktop-items-0.conf").write_text("\n".join(items), encoding="utf-8")
        (pcmanfm / "pcmanfm.conf").write_text(
            "[ui]\nwin_width=700\nwin_height=430\nshow_statusbar=1\nside_pane_mode=hidden\n"
            "view_mode=icon\nshow_hidden=0\n", encoding="utf-8")
        (config / "libfm").mkdir(parents=True, exist_ok=True)
        (config / "libfm" / "libfm.conf").write_text(
            "[config]\nsingle_click=0\nquick_exec=0\nshow_thumbnail=1\nthumbnail_local=1\n"
            "[ui]\nbig_icon_size=48\nthumbnail_size=96\n", encoding="utf-8")


class Desktop:
    """Xvfb, a D-Bus session bus, dunst and pcmanfm --desktop; `close()` stops every one of them."""

    def __init__(self, env: dict[str, str]):
        self.env = dict(env)
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        read_end, write_end = os.pipe()
        # -displayfd lets Xvfb choose a free display number and tell us which one it took
        self._spawn("Xvfb", ["Xvfb", "-displayfd", str(write_end), "-screen", "0",
                             f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"], pass_fds=(write_end,))
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise SystemExit(f"Xvfb did not start; see {self.logs[-1]}")
        self.env["DISPLAY"] = f":{number}"
        bus = self._spawn("dbus-daemon", ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                          stdout=subprocess.PIPE)
        self.env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
        self._spawn("dunst", ["dunst"])
        self._spawn("pcmanfm", ["pcmanfm", "--desktop"])
        self.wait_for_window("^pcmanfm$")

    def _spawn(self, name: str, argv: list[str], stdout=None, **kwargs) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as sink:
            process = subprocess.Popen(argv, env=self.env, stdout=stdout or sink, stderr=sink,
                                       stdin=subprocess.DEVNULL, **kwargs)
        self.processes.append(process)
        return process

    def close(self) -> None:
        # newest first, so clients go before the X server and the bus they talk to
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout:
                process.stdout.close()
        self.processes.clear()

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise SystemExit(f"xdotool {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def wait_for_window(self, name: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=self.env,
                                   capture_output=True, text=True).stdout.split()
            if found:
                return found[-1]
            time.sleep(0.2)
        raise SystemExit(f"no window named {name!r} appeared within {timeout:.0f} s")

    def window_gone(self, window: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            visible = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "."], env=self.env,
                                     capture_output=True, text=True).stdout.split()
            if window not in visible:
                return
            time.sleep(0.2)
        raise SystemExit(f"window {window} did not close within {timeout:.0f} s")

    def click(self, x: int, y: int, double: bool = False) -> None:
        # Without a window manager nothing moves the pointer or focus for us; press and release
        # separately, because GTK ignores a click that arrives before it saw the pointer enter.
        self.xdotool("mousemove", str(x), str(y))
        time.sleep(0.3)
        for _ in range(2 if double else 1):
            self.xdotool("mousedown", "1")
            time.sleep(0.05)
            self.xdotool("mouseup", "1")
            time.sleep(0.08)

    def open_folder(self, folder: Path, x: int, y: int) -> str:
        """Show `folder` in pcmanfm's window, placed at x, y (no window manager places it for us)."""
        subprocess.run(["pcmanfm", str(folder)], env=self.env, check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        window = self.wait_for_window(f"^{re.escape(folder.name)}$")
        self.xdotool("windowmove", window, str(x), str(y))
        return window

    def double_click_launcher(self, button: str) -> None:
        """Start a desktop launcher as a user does: double-click, then Execute in pcmanfm's question."""
        row = ICONS.index(button)
        self.click(ICON_X + 52, ICON_TOP + row * ICON_STEP + 30, double=True)
        # pcmanfm asks before it runs a .desktop file from the desktop the first time
        question = self.wait_for_window("^Execute File$")
        self.xdotool("windowfocus", question)
        x, y = _geometry(self.xdotool("getwindowgeometry", question))
        self.click(x + 90, y + 77)          # the dialog's first button, "Execute"
        self.window_gone(question)

    def wait_for_notification(self, timeout: float = 30) -> None:
        self.wait_for_window("^Dunst$", timeout)
        time.sleep(1.0)                      # let dunst finish drawing the text

    def close_notifications(self) -> None:
        subprocess.run(["dunstctl", "close-all"], env=self.env, check=True)
        time.sleep(0.5)

    def screenshot(self, name: str) -> Path:
        from PIL import ImageGrab

        image = ImageGrab.grab(xdisplay=self.env["DISPLAY"])
        path = IMG / name
        # a palette PNG keeps these flat desktop pictures small without visible loss
        image.convert("RGB").quantize(colors=256, dither=0).save(path, optimize=True)
        print(f"wrote {path.relative_to(PROJECT)} ({path.stat().st_size // 1024} KiB)")
        return path


def _geometry(text: str) -> tuple[int, int]:
    match = re.search(r"Position:\s*(\d+),(\d+)", text)
    if not match:
        raise SystemExit(f"cannot read a window position from: {text!r}")
    return int(match.group(1)), int(match.group(2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the sandbox in DIR (new or empty) and leave it there")
    args = parser.parse_args(argv)

    missing = missing_packages()
    if missing:
        print("missing Debian packages; install them with:\n"
              f"  sudo apt-get install --no-install-recommends {' '.join(missing)}", file=sys.stderr)
        return 2
    from PIL import features
    if not features.check("xcb"):
        print("this Pillow was built without XCB, so it cannot grab an X screen", file=sys.stderr)
        return 2

    if args.keep:
        base = args.keep.expanduser().resolve()
        if base.exists() and any(base.iterdir()):
            parser.error(f"{base} is not empty")
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="fieldsync-launchers-"))
    IMG.mkdir(exist_ok=True)

    sandbox = Sandbox(base)
    desktop = Desktop(sandbox.env)
    try:
        sandbox.build_tree()
        sandbox.install_launchers()
        sandbox.configure_desktop()
        desktop.start(base)

        desktop.open_folder(sandbox.home / ".local" / "share" / "applications", 300, 250)
        time.sleep(1.5)                      # icons are loaded after the window maps
        desktop.screenshot("launchers-linux-installed.png")

        desktop.double_click_launcher("appearance")
        desktop.wait_for_notification()
        desktop.screenshot("launchers-linux-appearance.png")
        desktop.close_notifications()

        sandbox.camera_takes_photo()
        desktop.double_click_launcher("shoot")
        desktop.wait_for_notification()
        assert sandbox.visit is not None
        # pcmanfm opens the folder as a second tab of the window already shown
        desktop.open_folder(sandbox.visit / "外观", 300, 250)
        time.sleep(1.5)
        desktop.screenshot("launchers-linux-shoot.png")
    finally:
        desktop.close()
        if args.keep:
            print(f"sandbox kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
