"""Burst and crash: many photos dropped at once, and kill -9 of the daemon in the middle of a push.

    python -m bench.burst                 5,000 photos burst, 20 kills during a 500-photo push
    python -m bench.burst --photos 1000 --kill-photos 200 --kills 5     (a quicker run)

The daemon runs as a real process (`fieldsync daemon`, file:// server). Photos are small real
JPEGs (640x480, EXIF capture time, make/model, GPS; each with its own SHA-256), spread over
visit folders (50 a visit) and moved in with rename, as a file manager drops them. Checks,
computed from the server tree after the run: every photo there exactly once and byte for byte,
none missing, no conflict copies, no temp files (.*.fieldsync-part), and for the kill run
`fieldsync verify --server` on the server tree. Writes bench/results/burst.md.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sync import make_tree, unique

RESULTS = Path(__file__).resolve().parent / "results" / "burst.md"
ROOT = Path(__file__).resolve().parent.parent
PER_VISIT = 50
SIZE = (640, 480)
TIMEOUT = 1800.0


def small_jpeg() -> bytes:
    """A 640x480 camera-like JPEG with capture time, make/model and GPS (near Hangzhou)."""
    from PIL import Image, ImageDraw

    image = Image.blend(Image.effect_noise(SIZE, 40).convert("RGB"),
                        Image.linear_gradient("L").resize(SIZE).convert("RGB"), 0.6)
    ImageDraw.Draw(image).text((20, 20), "burst", fill="white")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "HUAWEI", "MatePad 11", 1
    # Taken now: verify warns about photos filed long after their capture time.
    exif.get_ifd(0x8769)[0x9003] = datetime.datetime.now().strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (30.0, 16.0, 26.76)
    gps[3], gps[4] = "E", (120.0, 9.0, 18.36)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()


def make_visits(cfg, account: str, count: int, tag: str) -> list[Path]:
    from fieldsync.tree import visits

    return [visits.new_visit(cfg, account, "1", "计量装置", name=f"2026-11-25_{tag}{n:04d}")
            for n in range(count)]


def stage_photos(staging: Path, visits: list[Path], count: int, offset: int) -> list[tuple[Path, Path]]:
    """Write the photos beside the tree (same disk), return (staged, final) pairs."""
    staging.mkdir(parents=True, exist_ok=True)
    base = small_jpeg()
    pairs = []
    for n in range(count):
        visit = visits[n // PER_VISIT]
        folder = visit / ("外观" if n % 2 else "铭牌")
        name = f"IMG_{offset + n:06d}.jpg"
        staged = staging / name
        staged.write_bytes(unique(base, offset + n))
        pairs.append((staged, folder / name))
    return pairs


def drop(pairs: list[tuple[Path, Path]]) -> None:
    for staged, final in pairs:
        os.rename(staged, final)


def daemon_process(cfg) -> subprocess.Popen:
    env = dict(os.environ, FIELDSYNC_CONFIG=str(cfg.path))
    return subprocess.Popen([sys.executable, "-c", "from fieldsync.cli import main; main()", "daemon"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def status(cfg) -> dict:
    try:
        return json.loads((cfg.state_dir / "status.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def wait_for(check, what: str, timeout: float = TIMEOUT, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def on_server(server: Path, cfg, photos: list[Path]) -> int:
    return sum((server / p.relative_to(cfg.root)).is_file() for p in photos)


def wait_idle(cfg, process: subprocess.Popen) -> None:
    wait_for(lambda: status(cfg).get("pid") == process.pid and status(cfg).get("activity") == "idle",
             "the daemon to be idle")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def check(cfg, server: Path, photos: list[Path]) -> dict:
    """The figures that matter, from the server tree itself."""
    expected = {p.relative_to(cfg.root).as_posix() for p in photos}
    server_photos = [p for p in server.rglob("*.jpg") if not p.name.startswith(".")]
    names: dict[str, int] = {}
    for path in server_photos:
        names[path.name] = names.get(path.name, 0) + 1
    held = {p.relative_to(server).as_posix() for p in server_photos}
    wanted_names = {Path(rel).name for rel in expected}
    missing = sorted(expected - held)
    # A photo twice: the same name in two places, a conflict copy, or any extra photo file.
    duplicates = sum(n - 1 for n in names.values() if n > 1) + len(set(names) - wanted_names)
    differs = sum((server / rel).read_bytes() != (cfg.root / rel).read_bytes() for rel in expected & held)
    temp = [p for p in server.rglob(".*") if p.name.endswith(".fieldsync-part")]
    local_temp = [p for p in cfg.root.rglob(".*.shrink*")]
    return {"photos": len(expected), "on_server": len(expected & held), "missing": len(missing),
            "duplicates": duplicates, "differs": differs, "temp_files": len(temp) + len(local_temp)}


def verify_server(server: Path, cfg) -> tuple[int, dict]:
    env = dict(os.environ, FIELDSYNC_CONFIG=str(cfg.path))
    done = subprocess.run([sys.executable, "-c", "from fieldsync.cli import main; main()", "verify",
                           "--server", str(server), "--json", "--full", "--max-distance", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {"problems": [done.stdout[-500:] + done.stderr[-500:]]}
    return done.returncode, report


def prepare(tmp: Path, count: int, tag: str):
    """A tree with a file:// server, visits for `count` photos and the photos staged beside it:
    (server, cfg, (staged, final) pairs, final paths)."""
    server = tmp / "server"
    server.mkdir()
    cfg, _visit, account = make_tree(tmp, server.as_uri())
    visits = make_visits(cfg, account, (count + PER_VISIT - 1) // PER_VISIT, tag)
    pairs = stage_photos(tmp / "staging", visits, count, 0)
    return server, cfg, pairs, [final for _, final in pairs]


def burst(count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-burst-") as tmp:
        server, cfg, pairs, photos = prepare(Path(tmp), count, "b")
        process = daemon_process(cfg)
        try:
            wait_idle(cfg, process)
            started = time.perf_counter()
            drop(pairs)
            wait_for(lambda: on_server(server, cfg, photos) == count, "every burst photo", every=0.25)
            seconds = time.perf_counter() - started
            wait_idle(cfg, process)  # manifests and ledger after the photos
        finally:
            stop(process)
        return {"seconds": seconds, **check(cfg, server, photos)}


def kills(count: int, kill_count: int, seed: int = 3) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-kill-") as tmp:
        server, cfg, pairs, photos = prepare(Path(tmp), count, "k")
        process = daemon_process(cfg)
        mid_push = 0
        started = time.perf_counter()
        try:
            wait_idle(cfg, process)
            drop(pairs)
            for _ in range(kill_count):
                before = on_server(server, cfg, photos)
                # Kill once this run of the daemon has put at least one more photo on the
                # server, a random moment later: mid-push, not while it is still starting.
                wait_for(lambda: on_server(server, cfg, photos) > before or process.poll() is not None
                         or before == count, "progress before a kill", timeout=120, every=0.01)
                time.sleep(rng.uniform(0, 0.3))
                if on_server(server, cfg, photos) < count:
                    mid_push += 1
                process.kill()
                process.wait()
                process = daemon_process(cfg)
            wait_for(lambda: on_server(server, cfg, photos) == count, "every photo after the kills",
                     every=0.25)
            wait_idle(cfg, process)
            seconds = time.perf_counter() - started
        finally:
            stop(process)
        code, report = verify_server(server, cfg)
        return {"seconds": seconds, "kills": kill_count, "mid_push": mid_push,
                **check(cfg, server, photos), "verify_exit": code,
                "verify_problems": report.get("problems", []), "verify_photos": report.get("photos"),
                "verify_warnings": len(report.get("warnings", []))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst")
    parser.add_argument("--photos", type=int, default=5000, help="photos in the burst (default 5000)")
    parser.add_argument("--kill-photos", type=int, default=500, help="photos in the kill run (default 500)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of the daemon (default 20)")
    args = parser.parse_args(argv)
    lines = []

    def say(text: str) -> None:
        lines.append(text)
        print(text, flush=True)

    b = burst(args.photos)
    ok_b = b["missing"] == 0 and b["duplicates"] == 0 and b["differs"] == 0 and b["temp_files"] == 0
    say(f"| burst: {args.photos:,} photos dropped at once, daemon running | {b['seconds']:.1f} s, "
        f"{args.photos / b['seconds']:.1f} photos/s | on server {b['on_server']:,}, missing {b['missing']}, "
        f"duplicates {b['duplicates']}, differ {b['differs']}, temp files {b['temp_files']} -> "
        f"{'PASS' if ok_b else 'FAIL'} |")
    k = kills(args.kill_photos, args.kills)
    ok_k = (k["missing"] == 0 and k["duplicates"] == 0 and k["differs"] == 0 and k["temp_files"] == 0
            and not k["verify_problems"])
    say(f"| {k['kills']} x kill -9 during a {args.kill_photos}-photo push ({k['mid_push']} with photos "
        f"still missing), restart each time | {k['seconds']:.1f} s in all | on server {k['on_server']}, "
        f"missing {k['missing']}, duplicates {k['duplicates']}, differ {k['differs']}, temp files "
        f"{k['temp_files']}; `fieldsync verify --server`: exit {k['verify_exit']}, "
        f"{k['verify_photos']} photos, {len(k['verify_problems'])} problems, {k['verify_warnings']} warnings "
        f"-> {'PASS' if ok_k else 'FAIL'} |")
    for problem in k["verify_problems"][:10]:
        say(f"  verify problem: {problem}")
    command = "python -m bench.burst" + " ".join([""] + argv)
    text = "\n".join([
        "## Burst and kill -9 (issue 3)", "",
        f"`{command}` on {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}. "
        f"Daemon as a real process (`fieldsync daemon`), file:// server; photos are {SIZE[0]}x{SIZE[1]} "
        f"JPEGs with EXIF (time, make/model, GPS), {PER_VISIT} a visit, moved in by rename. "
        "Checks read the server tree; verify runs with --full --max-distance 0.", "",
        "| run | time | checks |", "|---|---|---|", *[line for line in lines if line.startswith("|")], "",
        *[line for line in lines if not line.startswith("|")], ""])
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0 if ok_b and ok_k else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
