"""50 tablets pushing to one OpenSSH sshd at once: aggregate throughput, p99 photo latency,
and nothing lost or duplicated.

    python -m bench.load              50 tablets × 20 photos each (a few minutes)
    python -m bench.load --full       50 tablets × 100 photos each
    python -m bench.load --tablets 10 --photos 40

Every tablet is a separate process with its own initialised tree (config.yaml, customer master
data, a customer, a category, visits made by fieldsync's own functions) holding 1600×1200 JPEGs
of ~400 KB (already within photos.max_edge, so nothing is re-encoded: this measures the push,
not the shrink). All tablets share three customers, so they write into the same customer folders
on the server. The processes get ready, wait at a barrier, then each runs one
`fieldsync.engine.sync_once` against the same real sshd (tests/fixtures/sshd.py) on 127.0.0.1.
A photo's latency is from the barrier (every photo is ready by then: a burst, like everyone
coming back into coverage at once) to the engine reporting it in place on the server.

The anchor, from the same run: one tablet alone pushing the same number of photos to the same
sshd. Afterwards every tablet's tree is compared with the server byte for byte, and the server
is searched for extra photos and left-over temp files. Writes bench/results/load.md.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "load.md"
ACCOUNTS = ("3300001234", "3300005678", "3300009999")
PER_VISIT = 20
MAX_PASSES = 5
RETRY_PAUSE = 2.0  # seconds; the daemon's backoff starts about there


def photo_bytes(seed: int, count: int) -> list[bytes]:
    """`count` distinct 1600×1200 JPEGs of ~400 KB (noise, so they compress like photos)."""
    from PIL import Image, ImageDraw, ImageFilter

    base = Image.merge("RGB", [Image.effect_noise((1600, 1200), 60).filter(ImageFilter.GaussianBlur(1.2))
                               for _ in range(3)])
    out = []
    for i in range(count):
        image = base.copy()
        ImageDraw.Draw(image).rectangle((20, 20, 220, 80), fill=((seed * 37) % 256, i % 256, 90))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def make_tablet(index: int, work: Path, url: str, key_file: Path, known_hosts: Path, photos: int,
                csv_path: Path):
    """An initialised tablet tree with `photos` photos in visits of 20; returns its Config."""
    import yaml

    from fieldsync import config as config_mod
    from fieldsync.masterdata import importer
    from fieldsync.masterdata.catalog import IndexedStore
    from fieldsync.tree import folders as tree
    from fieldsync.tree import visits

    device = f"tablet-{index:02d}" if index >= 0 else "tablet-solo"
    root = work / "tablets" / device
    config_path = tree.init_root(root, config_mod.render_default(root, f"inspector.{device}", device, url))
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data["server"] = {**(data.get("server") or {}), "url": url, "key_file": str(key_file),
                      "known_hosts": str(known_hosts)}
    config_path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cfg = config_mod.load(config_path)
    IndexedStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    account = ACCOUNTS[index % len(ACCOUNTS)]
    tree.open_customer(cfg, account)
    tree.add_category(cfg, account, "1", "计量装置")
    bodies = photo_bytes(index, photos)
    for v in range((photos + PER_VISIT - 1) // PER_VISIT):
        # Visit names unique per tablet: two tablets never write the same visit folder.
        visit = visits.new_visit(cfg, account, "1", "计量装置", name=f"2026-11-25_{device}_{v:03d}",
                                 appearance_note=f"{device} 第{v + 1}次")
        for i in range(v * PER_VISIT, min(photos, (v + 1) * PER_VISIT)):
            (visit / cfg.layout.kind_folders["appearance" if i % 2 == 0 else "nameplate"] /
             f"IMG_{i:04d}.jpg").write_bytes(bodies[i])
    return cfg


def tablet_process(index, work, url, key_file, known_hosts, photos, csv_path, barrier, results) -> None:
    """One tablet: build its tree, wait for the others, push once, report timings."""
    from fieldsync.sync import engine
    from fieldsync.sync.result import Progress

    try:
        cfg = make_tablet(index, Path(work), url, Path(key_file), Path(known_hosts), photos, Path(csv_path))
        time.sleep(max(0.0, cfg.sync.settle_seconds))  # files older than the settle time are ready

        class Timing(Progress):
            def __init__(self):
                self.done: list[tuple[str, float, str]] = []

            def finished(self, rel, outcome, reason=""):
                self.done.append((str(rel), time.monotonic(), outcome))

        timing = Timing()
        barrier.wait()
        start = time.monotonic()  # CLOCK_MONOTONIC is system-wide on Linux: comparable across processes
        # Like the daemon: a pass that stopped on a server error is retried (after a pause),
        # and a photo's latency runs until the pass that finally put it in place.
        passes, errors = 0, []
        while True:
            passes += 1
            result = engine.sync_once(cfg, progress=timing)
            if result.exit_code != 2 or passes >= MAX_PASSES:
                break
            errors.append(str(result))
            time.sleep(RETRY_PAUSE)
        results.put({"index": index, "start": start, "end": time.monotonic(), "done": timing.done,
                     "exit_code": result.exit_code, "summary": str(result), "root": str(cfg.root),
                     "passes": passes, "errors": errors})
    except BaseException as exc:  # the parent must hear about it, not wait forever
        results.put({"index": index, "error": f"{type(exc).__name__}: {exc}"})
        try:
            barrier.abort()
        except Exception:
            pass


def run_fleet(tablets: int, indexes: list[int], work: Path, sshd, remote: Path, photos: int,
              csv_path: Path) -> dict:
    ctx = mp.get_context("spawn")  # fresh interpreters, like separate tablets
    barrier = ctx.Barrier(len(indexes) + 1)
    results = ctx.Queue()
    url = sshd.url(remote)
    procs = [ctx.Process(target=tablet_process, args=(i, str(work), url, str(sshd.key_path),
                                                      str(sshd.known_hosts), photos, str(csv_path),
                                                      barrier, results)) for i in indexes]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=600)
    released = time.monotonic()
    reports = [results.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise SystemExit(f"tablet failed: {errors[0]}")
    end = max(r["end"] for r in reports)
    latencies = [t - r["start"] for r in reports for rel, t, outcome in r["done"]
                 if outcome == "uploaded" and rel.lower().endswith(".jpg")]
    return {"tablets": tablets, "released": released, "seconds": end - released, "latencies": sorted(latencies),
            "reports": reports}


def check_mirror(reports: list[dict], remote: Path) -> dict:
    """Every tablet photo on the server byte for byte, no extra photos, no temp files left."""
    from fieldsync.transport.paths import PART_SUFFIX

    expected: dict[str, Path] = {}
    for report in reports:
        root = Path(report["root"])
        for photo in root.glob("*/*/*/*/*/*.jpg"):
            expected[photo.relative_to(root).as_posix()] = photo
    on_server = {p.relative_to(remote).as_posix(): p for p in remote.glob("*/*/*/*/*/*.jpg")}
    missing = sorted(set(expected) - set(on_server))
    extra = sorted(set(on_server) - set(expected))
    different = [rel for rel in sorted(set(expected) & set(on_server))
                 if expected[rel].read_bytes() != on_server[rel].read_bytes()]
    temps = [p for p in remote.rglob("*") if p.name.startswith(".") and p.name.endswith(PART_SUFFIX)]
    return {"expected": len(expected), "on_server": len(on_server), "missing": missing, "extra": extra,
            "different": different, "temps": temps,
            "bytes": sum(p.stat().st_size for p in on_server.values())}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100 photos a tablet")
    parser.add_argument("--tablets", type=int, default=50)
    parser.add_argument("--photos", type=int, default=None, help="photos a tablet (default 20, --full 100)")
    args = parser.parse_args(argv)
    photos = args.photos or (100 if args.full else 20)

    from tests.conftest import SAMPLE_CSV
    from tests.fixtures.sshd import SshServer, sshd_available

    if not sshd_available():
        print("OpenSSH sshd is not installed (apt-get install openssh-server); nothing measured", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fieldsync-load-"))
    sshd = SshServer(work / "sshd", max_sessions=64)
    # MaxStartups 64 in the fixture: all tablets may be mid-handshake at once.
    sshd.start()
    try:
        csv_path = work / "customers.csv"
        csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
        print(f"load benchmark: {args.tablets} tablets × {photos} photos, sshd on 127.0.0.1:{sshd.port}", flush=True)
        solo_remote = work / "server-solo"
        solo_remote.mkdir()
        solo = run_fleet(1, [-1], work, sshd, solo_remote, photos, csv_path)
        solo_check = check_mirror(solo["reports"], solo_remote)
        print(f"  1 tablet alone: {solo['seconds']:.2f} s", flush=True)
        remote = work / "server"
        remote.mkdir()
        fleet = run_fleet(args.tablets, list(range(args.tablets)), work, sshd, remote, photos, csv_path)
        fleet_check = check_mirror(fleet["reports"], remote)
        print(f"  {args.tablets} tablets at once: {fleet['seconds']:.2f} s", flush=True)
        exit_codes = sorted({r["exit_code"] for r in fleet["reports"]})
        retried = [r for r in fleet["reports"] if r["passes"] > 1]
        first_errors = sorted({e.split("; stopped: ", 1)[-1][:160] for r in retried for e in r["errors"]})
        sessions_log = sshd.log_text().count("Accepted publickey")
    finally:
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)

    def row(label: str, run: dict, check: dict) -> str:
        lat = run["latencies"]
        mb = check["bytes"] / 1e6
        return (f"| {label} | {check['on_server']:,} | {mb:,.0f} | {run['seconds']:.2f} | "
                f"{check['on_server'] / run['seconds']:.1f} | {mb / run['seconds']:.1f} | "
                f"{percentile(lat, 50):.2f} | {percentile(lat, 99):.2f} | {max(lat):.2f} |")

    ok = not (fleet_check["missing"] or fleet_check["extra"] or fleet_check["different"] or fleet_check["temps"])
    lines = [
        f"## Load: {args.tablets} tablets pushing to one sshd at once",
        "",
        f"{args.tablets} tablet processes × {photos} photos (1600×1200 JPEG, ~400 KB, visits of {PER_VISIT}), "
        "each one `engine.sync_once` over SFTP to one OpenSSH sshd on 127.0.0.1, all released together "
        "from a barrier (a burst). Latency: barrier → the engine reports the photo in place on the server. "
        f"Command: `.venv/bin/python -m bench.load{''.join(' ' + a for a in argv)}`"
        f"{'' if args.full else ' (--full is 100 photos a tablet)'}. "
        "Client and server share this machine's CPUs, so the figures are a floor for a real server.",
        f"Load average when the run ended: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} "
        f"(1/5/15 min) on {os.cpu_count()} CPUs; other work on the machine slows every row alike.",
        "",
        "| run | photos | MB | seconds | photos/s | MB/s | p50 latency s | p99 latency s | max s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("1 tablet alone (anchor)", solo, solo_check),
        row(f"**{args.tablets} tablets at once**", fleet, fleet_check),
        "",
        f"Aggregate throughput: {fleet_check['on_server'] / fleet['seconds']:.1f} photos/s with {args.tablets} tablets "
        f"against {solo_check['on_server'] / solo['seconds']:.1f} photos/s for one tablet alone "
        f"({(fleet_check['on_server'] / fleet['seconds']) / (solo_check['on_server'] / solo['seconds']):.1f}×).",
        f"Integrity: {fleet_check['expected']:,} photos in the tablets' trees, {fleet_check['on_server']:,} on the "
        f"server; missing {len(fleet_check['missing'])}, extra or duplicated {len(fleet_check['extra'])}, "
        f"different content {len(fleet_check['different'])}, temp files left {len(fleet_check['temps'])} — "
        f"{'nothing lost or duplicated' if ok else 'PROBLEMS FOUND'}. Engine exit codes: {exit_codes}; "
        f"SSH logins accepted: {sessions_log}.",
        f"Passes: {len(retried)} of {args.tablets} tablets needed more than one pass (at most "
        f"{max(r['passes'] for r in fleet['reports'])}; a pass that stops on a server error is retried after "
        f"{RETRY_PAUSE:.0f} s, as the daemon does)" + (f"; first-pass errors: {'; '.join(first_errors[:3])}."
                                                     if first_errors else "."),
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
