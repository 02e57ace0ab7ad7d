"""Peak memory of one `fieldsync sync` over images built to hurt, with and without the decode budget.

    python -m bench.memory            8 x 9999x9999 RGBA PNGs + 4 12 MP camera JPEGs
    python -m bench.memory --full     the same with 8 camera JPEGs

Each run is a child `python -m fieldsync sync` on a fresh tree with a file:// server; its
peak RSS is the child's own VmHWM (polled from /proc until it ends), its time the wall clock
of the whole pass. The anchor, from the same run: the same images with photos.decode_budget_mb
0 (no budget: all server.parallel workers decode at once). Writes bench/results/memory.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sync import camera_jpeg, make_tree, old, unique

RESULTS = Path(__file__).resolve().parent / "results" / "memory.md"
ROOT = Path(__file__).resolve().parent.parent
GOAL_MB = 1024
BIG_PNGS = 8
BIG_EDGE = 9999


def make_images(folder: Path, jpegs: int) -> list[Path]:
    """The review's eight 9999x9999 RGBA PNGs (400 MB each decoded, a couple of MB on disk)
    and `jpegs` camera-like 12 MP JPEGs, written once and copied into each run's tree."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", (BIG_EDGE, BIG_EDGE), (30, 120, 200, 255))
    image.paste((200, 40, 40, 255), (0, 0, 3000, 3000))
    first = folder / "IMG_9000.png"
    image.save(first, "PNG", compress_level=1)
    del image
    made = [first]
    for n in range(1, BIG_PNGS):
        made.append(folder / f"IMG_{9000 + n}.png")
        shutil.copyfile(first, made[-1])
    base = camera_jpeg(0)
    for n in range(jpegs):
        made.append(folder / f"IMG_{n:04d}.jpg")
        made[-1].write_bytes(unique(base, n))
    return made


def run_sync(images: list[Path], budget_mb: int) -> dict:
    """One child `fieldsync sync` of `images` with photos.decode_budget_mb = budget_mb."""
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-memory-") as tmp:
        server = Path(tmp) / "server"
        server.mkdir()
        cfg, visit, _ = make_tree(Path(tmp), server.as_uri())
        text = cfg.path.read_text(encoding="utf-8")
        cfg.path.write_text(text.replace("photos:\n", f"photos:\n  decode_budget_mb: {budget_mb}\n", 1),
                            encoding="utf-8")
        for image in images:
            copy = visit / "外观" / image.name
            shutil.copyfile(image, copy)
            old(copy)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "fieldsync", "--config", str(cfg.path), "sync"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak_kb = 0
        while child.poll() is None:
            try:
                for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass  # the child ended between poll() and the read
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        stderr = child.stderr.read().decode(errors="replace")
        pushed = sum(1 for image in images if (server / visit.relative_to(cfg.root) / "外观" / image.name).is_file())
        return {"budget": budget_mb, "peak_mb": peak_kb / 1024, "seconds": seconds, "exit": child.returncode,
                "pushed": pushed, "stderr": stderr.strip().splitlines()[-1:]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--full", action="store_true", help="8 camera JPEGs instead of 4")
    args = parser.parse_args(argv)
    from fieldsync.config import Photos, Server

    jpegs = 8 if args.full else 4
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-images-") as tmp:
        images = make_images(Path(tmp), jpegs)
        png_mb = sum(p.stat().st_size for p in images if p.suffix == ".png") / 2**20
        runs = [run_sync(images, Photos.decode_budget_mb), run_sync(images, 0)]
    for run in runs:
        if run["exit"] != 0 or run["pushed"] != len(images):
            print(f"budget {run['budget']}: exit {run['exit']}, {run['pushed']}/{len(images)} pushed "
                  f"{run['stderr']}", file=sys.stderr)
    return write(runs, len(images), jpegs, png_mb, Server.parallel, argv)


def write(runs: list[dict], count: int, jpegs: int, png_mb: float, parallel: int, argv: list[str]) -> int:
    ours, anchor = runs
    lines = [f"| {'decode_budget_mb: ' + str(r['budget']) + (' (default)' if r is ours else ' (no budget)')} "
             f"| {r['peak_mb']:.0f} | {r['seconds']:.1f} | {r['pushed']}/{count} | {r['exit']} |" for r in runs]
    verdict = (f"With the default budget the sync peaks at {ours['peak_mb']:.0f} MB (goal < {GOAL_MB} MB: "
               f"{'meets' if ours['peak_mb'] < GOAL_MB else 'misses'} it), "
               f"{anchor['peak_mb'] / ours['peak_mb']:.1f}x less than without a budget; "
               f"the pass takes {ours['seconds'] / anchor['seconds']:.2f}x the time of the unbudgeted one")
    command = "python -m bench.memory" + " ".join([""] + argv)
    text = "\n".join([
        "## Memory: peak RSS of one sync over decompression-heavy images (issue 15)",
        "",
        f"`{command}`: one child `fieldsync sync` (server.parallel {parallel}, file:// server) of "
        f"{BIG_PNGS} {BIG_EDGE}x{BIG_EDGE} RGBA PNGs ({png_mb:.0f} MB on disk in all, 400 MB each decoded) "
        f"and {jpegs} 12 MP camera JPEGs, on a fresh tree per row; peak RSS is the child's VmHWM, "
        "time the whole pass. The anchor is the same run with no decode budget.",
        "",
        "| run | peak RSS MB | pass s | pushed | exit |",
        "|---|---|---|---|---|",
        *lines,
        "",
        verdict + ".",
        "",
    ])
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    ok = all(r["exit"] == 0 and r["pushed"] == count for r in runs)
    return 0 if ok and ours["peak_mb"] < GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
