"""Push throughput: SFTPTransport vs OpenSSH `sftp -b` (put + rename) to the same loopback sshd.

    python -m bench.transport            200 photos at 0 ms, 60 at 50 ms round trip
    python -m bench.transport --full     200 photos at both (the issue's size)
    python -m bench.transport -n 500 --rtt-n 100 --runs 3

A real OpenSSH sshd is started on 127.0.0.1 (tests/fixtures/sshd.py), and for the 50 ms rows
our delay proxy (tests/fixtures/tcpproxy.py, a delay line that keeps throughput) sits in front
of it for both tools. The files are JPEG-like random bytes of 350-450 KB in visit folders of
20. Both tools connect, make the folders, upload to a hidden temp name and rename it into place;
connection set-up is included for both. fieldsync runs with 1/2/4/8 files in flight (a pool
of SFTP channels on one connection), plus 8 threads sharing one channel (the lock variant),
to choose the default `server.parallel`. Writes bench/results/transport.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from fieldsync.config import Server
from fieldsync.transport.sftp import SFTPTransport
from tests.fixtures.sshd import SshServer, sshd_available
from tests.fixtures.tcpproxy import FaultProxy

RESULTS = Path(__file__).resolve().parent / "results" / "transport.md"
PER_VISIT = 20
GOAL = 1.0
IN_FLIGHT = tuple(sorted({1, 2, 4, 8, Server().parallel}))  # the configured default is always measured


def make_photos(folder: Path, count: int) -> list[tuple[Path, PurePosixPath]]:
    """(local file, remote rel) pairs: random bodies between JPEG markers, 350-450 KB."""
    rng = random.Random(7)
    items = []
    for i in range(count):
        rel = PurePosixPath(f"3300000{i // PER_VISIT:03d}_客户/周期检查/计量装置/2026-11-25_{i // PER_VISIT:04d}/外观/"
                            f"IMG_{i:04d}.jpg")
        local = folder / f"{i:04d}.jpg"
        local.write_bytes(b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randint(350_000, 450_000)) + b"\xff\xd9")
        items.append((local, rel))
    return items


def clear(remote: Path) -> None:
    for child in remote.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def check(remote: Path, items) -> None:
    for local, rel in items:
        if (remote / rel).stat().st_size != local.stat().st_size:
            raise SystemExit(f"bench upload incomplete: {rel}")
    leftovers = [p for p in remote.rglob(".*") if p.is_file()]
    if leftovers:
        raise SystemExit(f"temp files left on the server: {leftovers[:3]}")


def run_fieldsync(sshd: SshServer, remote: Path, items, port: int, in_flight: int, channels: int) -> float:
    cfg = sshd.config(remote, port=port, parallel=channels)
    start = time.perf_counter()
    with SFTPTransport.from_config(cfg) as transport, ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(lambda item: transport.upload(*item), items))
    return time.perf_counter() - start


def run_openssh(sshd: SshServer, remote: Path, items, port: int, work: Path) -> float:
    """OpenSSH's sftp in batch mode: mkdir, put to the hidden temp name, rename, per file."""
    lines, made = [], set()
    for local, rel in items:
        for depth in range(1, len(rel.parts)):
            folder = PurePosixPath(*rel.parts[:depth])
            if folder not in made:
                made.add(folder)
                lines.append(f'-mkdir "{remote}/{folder}"')
        part = rel.parent / f".{rel.name}.fieldsync-part"
        lines.append(f'put "{local}" "{remote}/{part}"')
        lines.append(f'rename "{remote}/{part}" "{remote}/{rel}"')
    batch = work / "batch.txt"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    known = sshd.write_known_hosts(work / f"known_hosts_{port}", port)
    command = ["sftp", "-q", "-b", str(batch), "-P", str(port), "-i", str(sshd.key_path),
               "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
               "-o", "IdentitiesOnly=yes", f"{sshd.user}@{sshd.host}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(sshd, remote, items, port, work, runs) -> dict[str, float]:
    """Median seconds per variant; the variants alternate within each run."""
    variants = {"OpenSSH sftp -b (anchor)": lambda: run_openssh(sshd, remote, items, port, work)}
    for n in IN_FLIGHT:
        variants[f"fieldsync, {n} in flight ({n} channel{'s' if n > 1 else ''})"] = \
            (lambda n=n: run_fieldsync(sshd, remote, items, port, n, n))
    variants["fieldsync, 8 threads sharing 1 channel"] = lambda: run_fieldsync(sshd, remote, items, port, 8, 1)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, run in variants.items():
            clear(remote)
            times[name].append(run())
            check(remote, items)
            print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    return {name: statistics.median(values) for name, values in times.items()}


def table(results: dict[str, float], count: int, megabytes: float, default: int) -> tuple[list[str], float, str]:
    """Markdown rows, and fieldsync's ratio to OpenSSH at the configured default."""
    anchor = next(v for k, v in results.items() if "anchor" in k)
    lines = ["| run | seconds | files/s | MB/s | vs OpenSSH |", "|---|---|---|---|---|"]
    for name, seconds in results.items():
        lines.append(f"| {name} | {seconds:.2f} | {count / seconds:,.1f} | {megabytes / seconds:,.1f} | "
                     f"{anchor / seconds:.2f}x |")
    chosen = next(k for k in results if k.startswith(f"fieldsync, {default} in flight"))
    best = min((k for k in results if k.startswith("fieldsync") and "sharing" not in k), key=results.get)
    return lines, anchor / results[chosen], best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="photos at 0 ms (default 200)")
    parser.add_argument("--rtt-n", type=int, default=60, help="photos at 50 ms round trip (default 60)")
    parser.add_argument("--rtt-ms", type=float, default=50.0, help="round trip added by the proxy")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs at 0 ms (median; 1 at 50 ms)")
    parser.add_argument("--full", action="store_true", help="200 photos at both round trips")
    args = parser.parse_args(argv)
    if args.full:
        args.n = args.rtt_n = 200
    if not sshd_available() or not shutil.which("sftp"):
        raise SystemExit("needs OpenSSH (Debian openssh-server and openssh-client): ./run bench installs them")
    work = Path(tempfile.mkdtemp(prefix="fieldsync-bench-transport."))
    sections = []
    try:
        sshd = SshServer(work / "sshd")
        sshd.start()
        remote = work / "remote"
        remote.mkdir()
        photos = work / "photos"
        photos.mkdir()
        items = make_photos(photos, max(args.n, args.rtt_n))
        for count, rtt, runs in ((args.n, 0.0, args.runs), (args.rtt_n, args.rtt_ms, 1)):
            chosen = items[:count]
            megabytes = sum(local.stat().st_size for local, _ in chosen) / 1e6
            proxy = FaultProxy(sshd.port, delay_ms=rtt) if rtt else None
            port = proxy.port if proxy else sshd.port
            print(f"== {count} photos ({megabytes:.0f} MB), {rtt:.0f} ms round trip", flush=True)
            try:
                results = measure(sshd, remote, chosen, port, work, runs)
            finally:
                if proxy:
                    proxy.close()
            sections.append((count, rtt, runs, megabytes, results))
        sshd.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    command = "python -m bench.transport" + " ".join([""] + argv)
    text = [
        "## Push throughput (issue 3)",
        "",
        f"`{command}`: JPEG-like files of 350-450 KB in visit folders of {PER_VISIT}, uploaded to a real "
        f"OpenSSH sshd on 127.0.0.1 (hidden temp name, then rename; connection set-up included). "
        f"The {args.rtt_ms:.0f} ms rows go through the test suite's delay proxy, for both tools. "
        f"{os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.1f}.",
    ]
    verdicts = []
    default = Server().parallel
    for count, rtt, runs, megabytes, results in sections:
        lines, ratio, best = table(results, count, megabytes, default)
        text += ["", f"**{rtt:.0f} ms round trip**, {count} photos ({megabytes:.0f} MB), median of {runs} run(s):",
                 "", *lines]
        verdicts.append(f"{rtt:.0f} ms: fieldsync at the default server.parallel = {default} / OpenSSH = "
                        f"**{ratio:.2f}x** (goal >= {GOAL}x: {'meets' if ratio >= GOAL else 'misses'} it); "
                        f"fastest here: {best.removeprefix('fieldsync, ')}")
    text += ["", *[f"- {v}" for v in verdicts], ""]
    output = "\n".join(text)
    print(output)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(output, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
