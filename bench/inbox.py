"""Camera inbox costs, each beside its anchor measured in the same run.

    python -m bench.inbox            20 camera photos (3264x2448 JPEGs), a 1,000-photo camera roll
    python -m bench.inbox --full     200 photos, a 10,000-photo camera roll

Rows:
- completeness check per photo (draft-mode decode to the last byte) vs a full decode (anchor);
- filing N photos with file_inbox (move mode, no-clobber place_copy with fsync, memory file)
  vs shutil.copyfile + unlink of the same files (anchor: the bare filesystem work);
- one idle daemon cycle over a camera roll in copy mode (everything already there before
  fieldsync: listing and stat only) vs os.scandir + stat of the same folder (anchor).
Writes bench/results/inbox.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from fieldsync import config as config_mod
from fieldsync.demo import write_sample_photo
from fieldsync.tree import folders as tree
from fieldsync.tree import inbox, visits

RESULTS = Path(__file__).resolve().parent / "results" / "inbox.md"


def make_tree(base: Path, camera: Path, mode: str) -> tuple[config_mod.Config, Path]:
    root = base / f"tablet-{mode}"
    text = config_mod.render_default(root, "bench", "bench-tablet", None)
    cfg = config_mod.load(tree.init_root(root, text))
    cfg = config_mod.from_mapping({"root": str(root), "inspector": "bench", "device": "bench-tablet",
                                   "camera": {"inbox": str(camera), "mode": mode},
                                   "sync": {"settle_seconds": 0}}, cfg.path)
    # A visit folder made by hand, as the file manager would: fieldsync accepts it as it is.
    visit = root / "3300001234_bench" / cfg.layout.businesses[0] / "计量装置" / "2026-11-25_0930"
    for folder in cfg.layout.kind_folders.values():
        (visit / folder).mkdir(parents=True)
    return cfg, visit


def camera_shots(folder: Path, count: int, taken: datetime) -> list[Path]:
    """`count` distinct camera-sized JPEGs with EXIF: sensor noise makes them as large as a real
    phone's (3-5 MB), and a few bytes after the end marker make each one different."""
    base = write_sample_photo(folder / "base.jpg", taken, (30.28, 120.13))
    with Image.open(base) as image:
        exif = image.getexif()
        noisy = Image.blend(image.convert("RGB"), Image.effect_noise(image.size, 40).convert("RGB"), 0.35)
    noisy.save(base, "JPEG", quality=92, exif=exif)
    data = base.read_bytes()
    base.unlink()
    shots = []
    for i in range(count):
        path = folder / f"IMG_{i:05d}.jpg"
        path.write_bytes(data + f"fieldsync bench {i}".encode())
        shots.append(path)
    return shots


def copy_unlink(src: Path, dst: Path, fsync: bool) -> None:
    shutil.copyfile(src, dst)
    if fsync:
        with open(dst, "rb+") as handle:
            os.fsync(handle.fileno())
    src.unlink()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def full_decode(path: Path) -> None:
    with Image.open(path) as image:
        image.load()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="200 photos and a 10,000-photo camera roll")
    args = parser.parse_args(argv)
    photos_n, roll_n = (200, 10_000) if args.full else (20, 1_000)
    base = Path(tempfile.mkdtemp(prefix="fieldsync-bench-inbox-"))
    try:
        source = base / "shots"
        now = datetime.now()
        shots = camera_shots(source, photos_n, now)
        total_mb = sum(p.stat().st_size for p in shots) / 1e6
        for path in shots[:3]:  # warm the page cache and the decoders
            inbox.decodes_to_the_end(path)
            full_decode(path)

        # 1. completeness check vs full decode, per photo (median over the shots)
        draft = statistics.median(timed(lambda p=p: inbox.decodes_to_the_end(p)) for p in shots)
        full = statistics.median(timed(lambda p=p: full_decode(p)) for p in shots)

        # 2. filing: anchor first, on copies of the same bytes
        anchors = {}
        for fsync in (False, True):
            anchor_in, anchor_out = base / f"anchor-in-{fsync}", base / f"anchor-out-{fsync}"
            anchor_out.mkdir()
            shutil.copytree(source, anchor_in)
            anchors[fsync] = timed(lambda: [copy_unlink(p, anchor_out / p.name, fsync)
                                            for p in sorted(anchor_in.iterdir())])
        plain, synced = anchors[False], anchors[True]
        camera = base / "DCIM" / "Camera"
        shutil.copytree(source, camera)
        cfg, visit = make_tree(base, camera, "move")
        inbox.use_visit(cfg, visit, "appearance", at=visits.now() - timedelta(minutes=1))
        result = None

        def file_all():
            nonlocal result
            result = inbox.file_inbox(cfg, seen={name: (st.st_size, st.st_mtime_ns, 0.0) for name, st in
                                                 ((p.name, p.stat()) for p in camera.iterdir())},
                                      clock=lambda: 1.0)
        filing = timed(file_all)
        assert len(result.filed) == photos_n, result

        # 3. idle cycle over a camera roll from before fieldsync (copy mode)
        roll = base / "roll"
        roll.mkdir()
        tiny = source / "tiny.jpg"
        Image.new("RGB", (64, 48)).save(tiny, "JPEG")
        old = (now - timedelta(days=30)).timestamp()
        for i in range(roll_n):
            path = roll / f"IMG_{i:06d}.jpg"
            os.link(tiny, path) if i else shutil.copyfile(tiny, path)
        os.utime(tiny, (old, old))
        copy_cfg, copy_visit = make_tree(base, roll, "copy")
        inbox.use_visit(copy_cfg, copy_visit, "appearance")
        filer = inbox.InboxFiler(copy_cfg)
        filer.cycle()  # first sighting
        cycles = [timed(filer.cycle) for _ in range(5)]
        idle = statistics.median(cycles)

        def scan():
            with os.scandir(roll) as entries:
                for entry in entries:
                    entry.stat()
        scans = statistics.median(timed(scan) for _ in range(5))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    size = "--full" if args.full else "default"
    lines = [
        "## Camera inbox (issue 8)",
        "",
        f"`python -m bench.inbox{' --full' if args.full else ''}` ({size} size): {photos_n} camera photos "
        f"(3264x2448 JPEGs with EXIF, {total_mb:.0f} MB), a {roll_n:,}-photo camera roll; "
        f"{os.cpu_count()} CPUs; load average at the end {load:.1f}.",
        "",
        "| what | fieldsync | anchor | ratio |",
        "|---|---|---|---|",
        f"| completeness check, ms per photo (draft decode to the last byte vs full decode) | "
        f"{draft * 1000:.1f} | {full * 1000:.1f} | {draft / full:.2f}x |",
        f"| filing {photos_n} photos, s (file_inbox move vs copyfile+fsync+unlink) | {filing:.2f} | "
        f"{synced:.2f} | {filing / synced:.2f}x |",
        f"| filing {photos_n} photos, s (file_inbox move vs copyfile+unlink, no fsync) | {filing:.2f} | "
        f"{plain:.2f} | {filing / plain:.2f}x |",
        f"| filing, photos/s (vs copyfile+fsync+unlink) | {photos_n / filing:.0f} | {photos_n / synced:.0f} | |",
        f"| idle daemon cycle over {roll_n:,} old photos, ms (InboxFiler.cycle vs scandir+stat) | "
        f"{idle * 1000:.1f} | {scans * 1000:.1f} | {idle / scans:.2f}x |",
        "",
        "Filing includes the completeness check (draft decode), place_copy's fsync, and the "
        "crash-safe memory file (.fieldsync/inbox-filed.json, atomic write with fsync) once per photo; "
        "a tablet camera takes at most a few photos per second.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
