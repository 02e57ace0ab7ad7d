"""Shrink speed: fieldsync's Pillow-with-draft vs Pillow without draft vs pyvips thumbnail.

    python -m bench.shrink            20 camera-like 4000x3000 JPEGs with EXIF (a minute)
    python -m bench.shrink --full     50 of them (the issue's size)

Every method turns the same files into <= 1600 px JPEGs at quality 85 with EXIF kept
(orientation applied), in its own worker process pinned to one CPU, so the figure is
"ms per photo on one core" and the worker's peak RSS is its own. The page cache is warm
(the files were just written) and each worker first shrinks 2 photos untimed. Writes
bench/results/shrink.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "shrink.md"
GOAL_MS = 110
GOAL_RSS_MB = 80
MAX_EDGE, QUALITY = 1600, 85
METHODS = ("fieldsync", "pillow-no-draft", "pyvips")
QUALITY_PHOTOS = 4  # photos per method whose PSNR against the reference is computed


def make_photos(folder: Path, count: int) -> list[Path]:
    """Camera-like JPEGs: 4000x3000, noise over a picture (so they compress like photos,
    ~3-5 MB), EXIF capture time, camera, GPS, and orientation 6 on every other one."""
    from PIL import Image, ImageDraw

    base = Image.blend(Image.effect_noise((4000, 3000), 40).convert("RGB"),
                       Image.linear_gradient("L").resize((4000, 3000)).convert("RGB"), 0.6)
    paths = []
    for n in range(count):
        image = base.copy()
        ImageDraw.Draw(image).rectangle((100 + n * 10, 100, 1600, 1200), outline=(200, 30, 30), width=30)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "HUAWEI", "MatePad 11", 6 if n % 2 else 1
        exif.get_ifd(0x8769)[0x9003] = "2026:11:25 09:30:00"
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", (30.0, 16.0, 26.0), "E", (120.0, 9.0, 18.0)
        path = folder / f"IMG_{n:04d}.jpg"
        image.save(path, "JPEG", quality=92, exif=exif.tobytes())
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- methods

def shrink_fieldsync(src: Path, dst: Path) -> None:
    from fieldsync.media.shrink import ShrinkSettings, shrink

    shrink(src, dst, ShrinkSettings(MAX_EDGE, QUALITY))


def shrink_pillow_no_draft(src: Path, dst: Path) -> None:
    # The obvious Pillow code: full decode, resize, transpose, save with the EXIF.
    from PIL import Image, ImageOps

    with Image.open(src) as image:
        exif = image.getexif()
        image.load()
        image = ImageOps.exif_transpose(image)
        image.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS, reducing_gap=None)
        exif[0x0112] = 1
        image.save(dst, "JPEG", quality=QUALITY, exif=exif.tobytes())


def shrink_pyvips(src: Path, dst: Path) -> None:
    import pyvips

    # thumbnail() uses libjpeg shrink-on-load and autorotates; metadata is kept by default.
    image = pyvips.Image.thumbnail(str(src), MAX_EDGE, height=MAX_EDGE, size="down")
    image.jpegsave(str(dst), Q=QUALITY)


def worker(method: str, folder: Path) -> dict:
    """Run in a child: one CPU, one method; returns ms per photo and peak RSS."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if method == "pyvips":
        os.environ["VIPS_CONCURRENCY"] = "1"
        import pyvips

        pyvips.cache_set_max(0)
        pyvips.concurrency_set(1)
    func = {"fieldsync": shrink_fieldsync, "pillow-no-draft": shrink_pillow_no_draft,
            "pyvips": shrink_pyvips}[method]
    photos = sorted(folder.glob("IMG_*.jpg"))
    out = folder / f"out-{method}"
    out.mkdir(exist_ok=True)
    for src in photos[:2]:  # warm-up: imports, codec tables
        func(src, out / src.name)
    times = []
    for src in photos:
        started = time.perf_counter()
        func(src, out / src.name)
        times.append((time.perf_counter() - started) * 1000)
    sizes = [(out / p.name).stat().st_size for p in photos]
    rss = _peak_rss_mb()  # before the quality check below decodes full-size references
    return {"ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "rss_mb": rss, "kb": statistics.fmean(sizes) / 1024,
            "check": _check(out / photos[1].name),
            "psnr": statistics.fmean(_psnr(src, out / src.name) for src in photos[:QUALITY_PHOTOS])}


def _psnr(src: Path, shrunk: Path) -> float:
    """PSNR (dB) of a shrunk photo against the best Pillow can do: full decode, upright,
    LANCZOS to the same size. It tells what a faster method gives up in quality."""
    import math

    from PIL import Image, ImageChops, ImageOps, ImageStat

    with Image.open(shrunk) as out:
        out = out.convert("RGB")
    with Image.open(src) as image:
        reference = ImageOps.exif_transpose(image.convert("RGB")).resize(out.size, Image.Resampling.LANCZOS)
    squared = ImageChops.difference(out, reference).point(lambda v: v * v)
    mse = statistics.fmean(ImageStat.Stat(squared).mean)
    return 10 * math.log10(255 * 255 / mse) if mse else float("inf")


def decode_floor(folder: Path) -> dict | None:
    """The anchor under every method: libjpeg-turbo's own djpeg decoding at 1/2 scale (what
    the draft step asks of it) to /dev/null, pinned to one CPU. None without djpeg."""
    import shutil

    djpeg = shutil.which("djpeg")
    if djpeg is None:
        return None
    photos = sorted(folder.glob("IMG_*.jpg"))
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    times = []
    for src in photos[:2] + photos:
        started = time.perf_counter()
        subprocess.run([*pin, djpeg, "-scale", "1/2", "-outfile", os.devnull, str(src)], check=True)
        times.append((time.perf_counter() - started) * 1000)
    times = times[2:]
    return {"ms": statistics.median(times), "mean_ms": statistics.fmean(times)}


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a worker
    # would report its parent's peak (the parent holds the 12 MP images it generated).
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check(path: Path) -> str:
    from PIL import Image

    from fieldsync.media.exif import photo_facts

    facts = photo_facts(path)
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
    ok = max(facts["width"], facts["height"]) <= MAX_EDGE and facts["gps"] and facts["taken_at"]
    return f"{facts['width']}x{facts['height']}, orientation {orientation}, EXIF {'kept' if ok else 'LOST'}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shrink")
    parser.add_argument("--full", action="store_true", help="50 photos (the issue's size)")
    parser.add_argument("-n", type=int, help="number of photos")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]))))
        return 0
    count = args.n or (50 if args.full else 20)
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-shrink-") as tmp:
        folder = Path(tmp)
        photos = make_photos(folder, count)
        mb = sum(p.stat().st_size for p in photos) / count / 1e6
        rows = {}
        for method in METHODS:
            done = subprocess.run([sys.executable, "-m", "bench.shrink", "--worker", method, str(folder)],
                                  capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
            if done.returncode != 0:
                print(f"{method}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[method] = json.loads(done.stdout.strip().splitlines()[-1])
            r = rows[method]
            print(f"{method:16s} {r['ms']:7.1f} ms/photo (median)  peak RSS {r['rss_mb']:5.0f} MB  "
                  f"{r['kb']:5.0f} KB out  {r['psnr']:.2f} dB  {r['check']}", flush=True)
        floor = decode_floor(folder)
    return write(rows, floor, count, mb, argv)


def write(rows: dict, floor: dict | None, count: int, mb: float, argv: list[str]) -> int:
    ours = rows.get("fieldsync")
    lines = [f"| {name} | {r['ms']:.1f} | {r['mean_ms']:.1f} | {r['rss_mb']:.0f} | {r['kb']:.0f} | "
             f"{r['psnr']:.2f} | {r['check']} |" for name, r in rows.items()]
    if floor:
        lines.append(f"| djpeg -scale 1/2 (decode only, the floor) | {floor['ms']:.1f} | {floor['mean_ms']:.1f} "
                     "| | | | no resize, no encode, no EXIF |")
    verdicts = []
    if ours:
        verdicts.append(f"fieldsync {ours['ms']:.1f} ms/photo (goal <= {GOAL_MS} ms: "
                        f"{'meets' if ours['ms'] <= GOAL_MS else 'misses'} it)")
        verdicts.append(f"peak RSS {ours['rss_mb']:.0f} MB (goal <= {GOAL_RSS_MB} MB: "
                        f"{'meets' if ours['rss_mb'] <= GOAL_RSS_MB else 'misses'} it)")
        for other in ("pillow-no-draft", "pyvips"):
            if other in rows:
                ratio = rows[other]["ms"] / ours["ms"]
                verdicts.append(f"{ratio:.2f}x the speed of {other}")
        if floor:
            verdicts.append(f"the whole fieldsync shrink (decode, resize, turn, encode, EXIF) takes "
                            f"{ours['ms'] / floor['ms']:.2f}x the time libjpeg-turbo's djpeg needs to decode "
                            "alone at 1/2 scale (its process start and output included)")
    command = "python -m bench.shrink" + " ".join([""] + argv)
    text = "\n".join([
        "## Shrink: ms per 12 MP JPEG -> 1600 px, EXIF kept (issue 3)",
        "",
        f"`{command}`: {count} camera-like 4000x3000 JPEGs ({mb:.1f} MB each, EXIF with GPS, half "
        f"with orientation 6) to <= {MAX_EDGE} px at quality {QUALITY}; each method in its own process "
        "pinned to one CPU, page cache warm, 2 untimed warm-up photos. PSNR: each output "
        f"against a full decode turned upright and LANCZOS-resized to the same size (mean of {QUALITY_PHOTOS} "
        "photos; higher is closer).",
        "",
        "| method | median ms/photo | mean ms/photo | peak RSS MB | output KB | PSNR dB | output check |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
        "; ".join(verdicts) + ".",
        "",
    ])
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0 if ours else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
