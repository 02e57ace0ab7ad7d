"""The field's network: one shared 4G-like link (8 Mbit/s up, 20 down, 80 ms round trip).

    python -m bench.link            burst of 24 photos, 12 latency photos, 40 photos over a flapping link
    python -m bench.link --full     the issue's sizes: 24 photos, 30 latency photos, 100 photos
                                    while the link flaps (20 s up, 10 s down) for 2 minutes
    python -m bench.link --only burst|latency|flap

Every connection goes through tests/fixtures/linkmodel.py (a shared uplink and downlink, the
delay pipelined per byte's departure) to Debian's OpenSSH sshd on 127.0.0.1. Figures:

- uplink utilisation on an evening burst (24 photos of ~0.9 MB, already 1600 px, in a new
  visit): the floor is the link alone (photo bytes / uplink rate); `fieldsync sync` (the CLI,
  process start to exit) and `rclone copy --transfers 8` of the same visit folder over sftp,
  in the same run, alternating;
- daemon latency: the daemon idle and warm, one photo closed in a visit folder -> its final
  name on the server, minus the photo's own bytes' time on the uplink, in round trips;
- flapping link: photos taken at a steady pace while the link goes down and up, the daemon
  pushing: every photo on the server exactly once, the bytes sent up beyond an anchor run of
  the same photos and pace on a steady link (resends, reconnections), and how long after the
  link came back the first byte went up again.
Writes bench/results/link.md.
"""

from __future__ import annotations

import argparse
import compileall
import io
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sync import make_tree, old  # noqa: E402
from tests.fixtures.linkmodel import LinkModel  # noqa: E402
from tests.fixtures.sshd import SshServer, sshd_available  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "link.md"
UP_MBIT, DOWN_MBIT, RTT_MS = 8.0, 20.0, 80.0
GOAL_UTILISATION = 0.90
GOAL_RTTS = 4.0


def photo_bytes(n: int, size=(1600, 1200)) -> bytes:
    """A ~0.9 MB JPEG, already at the shrink size (so the burst measures the push)."""
    from PIL import Image, ImageDraw

    noise = Image.merge("RGB", [Image.effect_noise(size, 34) for _ in range(3)])
    image = Image.blend(noise, Image.linear_gradient("L").resize(size).convert("RGB"), 0.5)
    ImageDraw.Draw(image).text((40, 40), f"link bench {n}", fill="white")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "MatePad 11"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:26 09:30:00"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=91, exif=exif.tobytes())
    return out.getvalue()


def photo_set(count: int) -> list[bytes]:
    base = [photo_bytes(n) for n in range(min(count, 6))]
    # A JPEG comment makes each one another file (another SHA-256) with the same bytes' cost.
    return [b[:2] + b"\xff\xfe\x00\x12" + f"photo {n:010d}".encode()[:16] + b[2:]
            for n, b in ((n, base[n % len(base)]) for n in range(count))]


class Setup:
    """sshd + the link model in front of it + a tablet tree whose server is reached through it."""

    def __init__(self, tmp: Path, sshd: SshServer, name: str, **link_options):
        self.tmp = tmp / name
        self.tmp.mkdir()
        self.sshd = sshd
        self.link = LinkModel(sshd.port, up_mbit=UP_MBIT, down_mbit=DOWN_MBIT, rtt_ms=RTT_MS, **link_options)
        self.remote = self.tmp / "server"
        self.remote.mkdir()
        self.cfg, self.visit, self.account = make_tree(self.tmp, sshd.url(self.remote, port=self.link.port))
        sshd.write_config_yaml(self.cfg.path, self.remote, port=self.link.port)
        from fieldsync import config as config_mod

        self.cfg = config_mod.load(self.cfg.path)

    def new_visit(self, name: str) -> Path:
        from fieldsync.tree import visits

        return visits.new_visit(self.cfg, self.account, "1", "计量装置", name=name)

    def close(self) -> None:
        self.link.close()


def fieldsync_cli(cfg_path: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fieldsync", "--config", str(cfg_path), "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"fieldsync {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return seconds


# --------------------------------------------------------------------------- burst

def burst(tmp: Path, sshd: SshServer, count: int, runs: int) -> dict:
    """Evening sync: a new visit with `count` photos (half 外观, half 铭牌), one `fieldsync sync`;
    rclone copies the same visit folder to another folder of the same server."""
    photos = photo_set(count)
    total = sum(len(p) for p in photos)
    ours, theirs, sent = [], [], []
    for run in range(runs):
        setup = Setup(tmp, sshd, f"burst-{run}")
        try:
            fieldsync_cli(setup.cfg.path, "sync")  # the tree as it was in the morning
            visit = setup.new_visit(f"2026-11-26_{run:04d}")
            for n, data in enumerate(photos):
                path = visit / ("外观" if n % 2 else "铭牌") / f"IMG_{n:04d}.jpg"
                path.write_bytes(data)
                old(path)
            rel = visit.relative_to(setup.cfg.root)
            theirs.append(rclone_copy(setup, visit, setup.tmp / "rclone-server" / rel))
            before = setup.link.up.sent
            ours.append(fieldsync_cli(setup.cfg.path, "sync"))
            sent.append(setup.link.up.sent - before)
            for n in range(count):
                name = f"IMG_{n:04d}.jpg"
                folder = "外观" if n % 2 else "铭牌"
                assert (setup.remote / rel / folder / name).stat().st_size == len(photos[n])
                assert (setup.tmp / "rclone-server" / rel / folder / name).stat().st_size == len(photos[n])
        finally:
            setup.close()
    floor = total / (UP_MBIT * 1_000_000 / 8)
    # What the CLI costs before any byte moves (interpreter and imports), for the reader of the
    # figure above: the same process start is in every `fieldsync sync`.
    start = statistics.median(fieldsync_cli_start() for _ in range(3))
    return {"count": count, "bytes": total, "floor": floor, "fieldsync": ours, "rclone": theirs, "sent": sent,
            "start": start}


def fieldsync_cli_start() -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fieldsync", "--help"], cwd=ROOT, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def rclone_copy(setup: Setup, local: Path, remote: Path) -> float:
    remote.parent.mkdir(parents=True, exist_ok=True)
    known = setup.sshd.write_known_hosts(setup.tmp / "rclone_known_hosts", setup.link.port)
    env = {**os.environ, "RCLONE_CONFIG": str(setup.tmp / "rclone.conf"),
           "RCLONE_CONFIG_FIELD_TYPE": "sftp", "RCLONE_CONFIG_FIELD_HOST": "127.0.0.1",
           "RCLONE_CONFIG_FIELD_PORT": str(setup.link.port), "RCLONE_CONFIG_FIELD_USER": setup.sshd.user,
           "RCLONE_CONFIG_FIELD_KEY_FILE": str(setup.sshd.key_path),
           "RCLONE_CONFIG_FIELD_KNOWN_HOSTS_FILE": str(known)}
    started = time.perf_counter()
    subprocess.run(["rclone", "copy", str(local), f"field:{remote}", "--transfers", "8"],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- daemon

class RunningDaemon:
    def __init__(self, cfg):
        from fieldsync.sync.daemon import Daemon

        self.daemon = Daemon(cfg)
        self.thread = threading.Thread(target=self.daemon.run, name="bench-daemon", daemon=True)
        self.thread.start()
        self.wait_idle()

    def wait_idle(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (self.daemon.passes and self.daemon.idle.is_set()):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not become idle")
            time.sleep(0.02)

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(timeout=120)


def latency(tmp: Path, sshd: SshServer, count: int) -> dict:
    """Photo closed -> final name on the server, daemon idle and warm; minus the bytes' time."""
    photos = photo_set(count)
    setup = Setup(tmp, sshd, "latency")
    try:
        fieldsync_cli(setup.cfg.path, "sync")
        folder = setup.visit / "外观"
        target = setup.remote / folder.relative_to(setup.cfg.root)
        running = RunningDaemon(setup.cfg)
        beyond, seconds = [], []
        try:
            for n, data in enumerate(photos):
                time.sleep(1.0)  # idle between photos: an inspector walks to the next meter
                running.wait_idle()
                name = f"IMG_{n:04d}.jpg"
                started = time.perf_counter()
                with open(folder / name, "wb") as handle:  # as a camera app does: write, close
                    handle.write(data)
                while not (target / name).exists():
                    time.sleep(0.002)
                took = time.perf_counter() - started
                seconds.append(took)
                beyond.append((took - setup.link.seconds_for(len(data))) / setup.link.rtt)
        finally:
            running.stop()
    finally:
        setup.close()
    return {"count": count, "seconds": seconds, "rtts": beyond, "bytes": sum(map(len, photos)) / count}


# --------------------------------------------------------------------------- flapping

def paced_push(tmp: Path, sshd: SshServer, name: str, photos: list[bytes], pace: float,
               flap: tuple[float, float, float] | None) -> dict:
    """The daemon running; one photo every `pace` seconds; the link flapping (up, down, total)
    or steady. Waits until every photo is on the server, then counts."""
    setup = Setup(tmp, sshd, name)
    try:
        fieldsync_cli(setup.cfg.path, "sync")
        visit = setup.new_visit("2026-11-26_1400")
        rel = visit.relative_to(setup.cfg.root)
        running = RunningDaemon(setup.cfg)
        came_back: list[float] = []
        try:
            sent_before = setup.link.up.sent
            started = time.monotonic()
            flapper = setup.link.flap(*flap) if flap else None
            watcher = threading.Thread(target=_watch_recovery, args=(setup.link, came_back, flap), daemon=True)
            if flap:
                watcher.start()
            for n, data in enumerate(photos):
                path = visit / ("外观" if n % 2 else "铭牌") / f"IMG_{n:04d}.jpg"
                path.write_bytes(data)
                time.sleep(max(0.0, started + (n + 1) * pace - time.monotonic()))
            if flapper is not None:
                flapper.join()
            deadline = time.monotonic() + 600
            while not _all_there(setup.remote / rel, photos):
                if time.monotonic() > deadline:
                    raise RuntimeError("photos still missing on the server after 10 minutes")
                time.sleep(0.2)
            running.wait_idle()
            seconds = time.monotonic() - started
            sent = setup.link.up.sent - sent_before
        finally:
            running.stop()
        names = [p.name for p in (setup.remote / rel).rglob("*") if p.is_file() and p.parent.name in ("外观", "铭牌")]
        photos_there = [n for n in names if n.startswith("IMG_") and n.endswith(".jpg")]
        return {"sent": sent, "seconds": seconds, "lost": len(photos) - len(set(photos_there)),
                "duplicated": len(names) - len(set(photos_there)), "drops": setup.link.drops,
                "came_back": came_back, "leftovers": sorted(set(names) - set(photos_there))}
    finally:
        setup.close()


def _all_there(folder: Path, photos: list[bytes]) -> bool:
    for n, data in enumerate(photos):
        path = folder / ("外观" if n % 2 else "铭牌") / f"IMG_{n:04d}.jpg"
        try:
            if path.stat().st_size != len(data):
                return False
        except FileNotFoundError:
            return False
    return True


def _watch_recovery(link: LinkModel, came_back: list[float], flap) -> None:
    """Seconds from each time the link came up to the first bytes going up again."""
    end = time.monotonic() + flap[2] + 60
    was_down = False
    while time.monotonic() < end:
        if link.is_down:
            was_down = True
        elif was_down:
            was_down = False
            up_at, sent = link.up_since, link.up.sent
            while link.up.sent == sent and not link.is_down and time.monotonic() < end:
                time.sleep(0.01)
            if not link.is_down and link.up.sent != sent:
                came_back.append(time.monotonic() - up_at)
        time.sleep(0.01)


def flapping(tmp: Path, sshd: SshServer, count: int, flap: tuple[float, float, float]) -> dict:
    photos = photo_set(count)
    pace = flap[2] / count
    steady = paced_push(tmp, sshd, "steady", photos, pace, None)
    flapped = paced_push(tmp, sshd, "flapping", photos, pace, flap)
    extra = (flapped["sent"] - steady["sent"]) / sum(map(len, photos))
    return {"count": count, "flap": flap, "steady": steady, "flapped": flapped, "extra": extra,
            "bytes": sum(map(len, photos))}


# --------------------------------------------------------------------------- report

def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.link")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", choices=("burst", "latency", "flap"))
    parser.add_argument("--runs", type=int, default=None, help="burst runs (alternating)")
    args = parser.parse_args(argv)
    logging.disable(logging.ERROR)  # the daemon's "retrying" and paramiko's resets while the link is down
    if not sshd_available() or not shutil.which("rclone"):
        print("bench.link needs Debian's openssh-server and rclone (./run bench installs them)", file=sys.stderr)
        return 1
    runs = args.runs or (3 if args.full else 1)
    # The CLI starts from bytecode, as an installed package does (pip compiles it at install,
    # Python caches it at first import). This machine sets PYTHONDONTWRITEBYTECODE=1: without
    # this, every `fieldsync sync` measured here recompiled the package (~0.1 s of each start).
    compileall.compile_dir(ROOT / "fieldsync", quiet=1)
    latency_n = 30 if args.full else 12
    flap_n, flap = (100, (20.0, 10.0, 120.0)) if args.full else (40, (10.0, 5.0, 45.0))
    rows, notes = [], []

    def row(name: str, value: str, anchor: str = "") -> None:
        rows.append(f"| {name} | {value} | {anchor} |")
        print(f"{name:60s} {value:>22s}   {anchor}", flush=True)

    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-link-") as tmp:
        tmp = Path(tmp)
        sshd = SshServer(tmp / "sshd")
        sshd.start()
        try:
            if args.only in (None, "burst"):
                b = burst(tmp, sshd, 24, runs)
                ours, theirs = statistics.median(b["fieldsync"]), statistics.median(b["rclone"])
                row(f"burst: {b['count']} photos, {b['bytes'] / 1e6:.1f} MB, link alone (the floor)",
                    f"{b['floor']:.1f} s", "100 %")
                row(f"burst: `fieldsync sync` (median of {runs})", f"{ours:.1f} s = {b['floor'] / ours:.0%} of uplink",
                    f"goal >= {GOAL_UTILISATION:.0%}; runs {', '.join(f'{v:.1f}' for v in b['fieldsync'])} s; "
                    f"{statistics.median(b['sent']) / b['bytes'] - 1:+.1%} bytes on the link beyond the photos "
                    "(SSH, manifests, pages, ledger)")
                row("burst: `fieldsync --help` (interpreter + imports, in every run above)", f"{b['start']:.1f} s",
                    f"the pass itself: {ours - b['start']:.1f} s = {b['floor'] / (ours - b['start']):.0%} of uplink")
                row(f"burst: `rclone copy --transfers 8`, sftp (median of {runs})",
                    f"{theirs:.1f} s = {b['floor'] / theirs:.0%} of uplink",
                    f"fieldsync / rclone time: {ours / theirs:.2f}; runs {', '.join(f'{v:.1f}' for v in b['rclone'])} s")
            if args.only in (None, "latency"):
                lat = latency(tmp, sshd, latency_n)
                row(f"daemon latency: {lat['count']} photos of {lat['bytes'] / 1e6:.2f} MB, idle daemon",
                    f"p50 {statistics.median(lat['seconds']):.2f} s, p99 {p(lat['seconds'], 0.99):.2f} s",
                    f"the photo's bytes alone: {lat['bytes'] / (UP_MBIT * 125_000):.2f} s")
                row("daemon latency beyond the bytes, in round trips (80 ms)",
                    f"p50 {statistics.median(lat['rtts']):.1f}, p99 {p(lat['rtts'], 0.99):.1f}",
                    f"goal p50 <= {GOAL_RTTS:.0f}")
            if args.only in (None, "flap"):
                f = flapping(tmp, sshd, flap_n, flap)
                up, down, total = f["flap"]
                fl = f["flapped"]
                row(f"flapping link: {f['count']} photos ({f['bytes'] / 1e6:.0f} MB) while {up:.0f} s up / "
                    f"{down:.0f} s down for {total:.0f} s ({fl['drops']} drops)",
                    f"lost {fl['lost']}, duplicated {fl['duplicated']}",
                    f"all there after {fl['seconds']:.0f} s (steady link: {f['steady']['seconds']:.0f} s)")
                row("flapping link: bytes sent up beyond the steady run", f"{f['extra']:+.1%} of the photos' bytes",
                    "goal <= 10 %")
                back = fl["came_back"]
                row("flapping link: link up -> first bytes going up again",
                    f"median {statistics.median(back):.1f} s, max {max(back):.1f} s" if back else "never seen",
                    "the daemon's retry after a drop")
                notes.append("Flapping-link waste is the bytes the link carried beyond a steady run of the same "
                             "photos at the same pace: resends after a drop, reconnections, and whatever else "
                             "differs between the runs (each pass pushes the visit's manifest and pages again, "
                             "and the runs batch photos into passes differently), so a figure near zero, even "
                             "below it, means the drops cost nothing measurable beside that noise.")
                if fl["leftovers"]:
                    notes.append(f"Files other than the photos in the photo folders: {', '.join(fl['leftovers'])}")
        finally:
            sshd.stop()

    command = "python -m bench.link" + " ".join([""] + argv)
    text = "\n".join([
        "## The field's network: one shared 4G-like link (issue 20)",
        "",
        f"`{command}` on {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}. "
        f"Every connection through tests/fixtures/linkmodel.py: {UP_MBIT:.0f} Mbit/s up and {DOWN_MBIT:.0f} "
        f"down shared by all connections, {RTT_MS:.0f} ms round trip pipelined per byte, 64 KB bottleneck "
        "buffer; Debian's OpenSSH sshd behind it. rclone is Debian's, sftp backend, default options. "
        "`fieldsync` starts from bytecode compiled before the runs, as an installed package does (this "
        "machine sets PYTHONDONTWRITEBYTECODE=1, which made every start recompile the package: ~0.1 s).",
        "",
        "| figure | value | anchor / goal (same run) |",
        "|---|---|---|",
        *rows,
        "",
        *notes,
        "",
    ])
    print(text)
    if args.only is None:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
