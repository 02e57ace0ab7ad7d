"""50 tablets pushing at once: to one OpenSSH sshd alone, then to two sshd behind HAProxy on one
shared tree, in the same run.

    python -m bench.servers              50 tablets × 20 photos each: alone, pair, pair, alone
    python -m bench.servers --full       50 tablets × 100 photos each
    python -m bench.servers --rounds 1   alone, pair only

Rounds alternate the order (alone, pair, then pair, alone) so a machine whose load drifts
during the run does not favour one setup.

The tablets are bench/load.py's (a process each, its own initialised tree of ~400 KB photos, the
sync engine, released together from a barrier). The two sshd present the same host key and
accept the same client key; HAProxy (Debian's package) runs the deployment guide's own file,
docs/deploy/haproxy-fieldsync.cfg (tests/fixtures/haproxy.py). "Alone" is the first of the two
sshd reached directly, same configuration, same machine. After each burst the server tree is
compared with every tablet byte for byte (nothing missing, extra or left as a temp file) and
`fieldsync verify --server` must pass. Writes bench/results/servers.md.

Both sshd, HAProxy and the 50 tablets share this machine's CPUs, so a second sshd adds no CPU:
what this shows is what the balancer costs and that nothing is lost through it, not the gain of
a second host.
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
from pathlib import Path

from bench import load

RESULTS = Path(__file__).resolve().parent / "results" / "servers.md"


def loadavg() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def accepted(server) -> int:
    return len(re.findall(r"Accepted publickey", server.log_text()))


def verify(remote: Path) -> tuple[int, str, float]:
    """`fieldsync verify --server` on the tree, as an admin runs it: (exit code, its summary, seconds)."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fieldsync", "verify", "--server", str(remote), "--no-gps-warning"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    summary = next((line.split(": ", 1)[1] for line in done.stdout.splitlines() if "photos checked" in line),
                   (done.stdout + done.stderr).strip()[-300:])
    if ", ledgers: " in summary:  # one "DEVICE (N records, head …)" per tablet: count them instead
        head, ledgers = summary.split(", ledgers: ", 1)
        summary = f"{head}, {ledgers.count(' records, head ')} ledgers"
    return done.returncode, summary, time.monotonic() - start


def burst(label: str, target, work: Path, tablets: int, photos: int, csv_path: Path) -> dict:
    """One burst of `tablets` at `target` (an SshServer or the SftpPair) on a fresh tree."""
    remote = work / f"tree-{label}"
    remote.mkdir()
    load_before = loadavg()
    run = load.run_fleet(tablets, list(range(tablets)), work / label, target, remote, photos, csv_path)
    check = load.check_mirror(run["reports"], remote)
    code, last, verify_seconds = verify(remote)
    return {"label": label, "run": run, "check": check, "verify": (code, last, verify_seconds),
            "load_before": load_before, "load_after": loadavg(),
            "retried": sum(r["passes"] > 1 for r in run["reports"]),
            "exit_codes": sorted({r["exit_code"] for r in run["reports"]})}


def clean(result: dict) -> bool:
    check = result["check"]
    return (not (check["missing"] or check["extra"] or check["different"] or check["temps"])
            and check["on_server"] == check["expected"] and result["verify"][0] == 0
            and result["exit_codes"] == [0])


def row(result: dict) -> str:
    run, check = result["run"], result["check"]
    lat, seconds = run["latencies"], run["seconds"]
    mb = check["bytes"] / 1e6
    return (f"| {result['label']} | {check['on_server']:,} | {mb:,.0f} | {seconds:.2f} | "
            f"{check['on_server'] / seconds:.1f} | {mb / seconds:.1f} | {load.percentile(lat, 50):.2f} | "
            f"{load.percentile(lat, 99):.2f} | {result['retried']} | "
            f"{'yes' if clean(result) else 'NO'} | {result['load_before']} → {result['load_after']} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="100 photos a tablet")
    parser.add_argument("--tablets", type=int, default=50)
    parser.add_argument("--photos", type=int, default=None, help="photos a tablet (default 20, --full 100)")
    parser.add_argument("--rounds", type=int, default=2, help="alone/pair rounds, order alternating")
    args = parser.parse_args(argv)
    photos = args.photos or (100 if args.full else 20)

    from tests.conftest import SAMPLE_CSV
    from tests.fixtures.haproxy import SftpPair, haproxy_available
    from tests.fixtures.sshd import sshd_available

    if not (sshd_available() and haproxy_available()):
        print("needs OpenSSH sshd and HAProxy (apt-get install openssh-server haproxy); nothing measured",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fieldsync-servers-"))
    pair = SftpPair(work / "pair")
    pair.start()
    results = []
    try:
        csv_path = work / "customers.csv"
        csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
        alone = pair.servers[0]
        print(f"servers benchmark: {args.tablets} tablets × {photos} photos; sshd alone on 127.0.0.1:{alone.port}, "
              f"HAProxy on 127.0.0.1:{pair.port} in front of :{pair.servers[0].port} and :{pair.servers[1].port}",
              flush=True)
        order = []
        for n in range(args.rounds):
            order += [("alone", "pair"), ("pair", "alone")][n % 2]
        for n, which in enumerate(order, 1):
            sessions_before = pair.sessions()
            logins_before = [accepted(s) for s in pair.servers]
            if which == "alone":
                result = burst(f"{n}. one sshd alone", alone, work, args.tablets, photos, csv_path)
            else:
                result = burst(f"{n}. **two sshd behind HAProxy**", pair, work, args.tablets, photos, csv_path)
                result["split"] = {name: count - sessions_before[name] for name, count in pair.sessions().items()}
            result["logins"] = [accepted(s) - before for s, before in zip(pair.servers, logins_before, strict=True)]
            results.append(result)
            print(f"  {result['label']}: {result['run']['seconds']:.2f} s, verify exit {result['verify'][0]}, "
                  f"clean: {clean(result)}", flush=True)
    finally:
        pair.stop()
        shutil.rmtree(work, ignore_errors=True)

    def mean_rate(kind: str) -> float:
        rates = [r["check"]["on_server"] / r["run"]["seconds"] for r in results if ("HAProxy" in r["label"]) == kind]
        return sum(rates) / len(rates)

    alone_rate, pair_rate = mean_rate(False), mean_rate(True)
    splits = "; ".join(" / ".join(f"{name} {count}" for name, count in r["split"].items())
                       for r in results if "split" in r)
    logins = "; ".join(f"{r['label'].split('.')[0]}: {r['logins'][0]} / {r['logins'][1]}" for r in results)
    ok = all(clean(r) for r in results)
    verify_line = results[-1]["verify"][1]
    lines = [
        f"## Two sshd behind HAProxy (issue 20): {args.tablets} tablets at once, beside one sshd alone",
        "",
        f"{args.tablets} tablet processes × {photos} photos (bench/load.py's tablets: 1600×1200 JPEG, ~400 KB, "
        "one `engine.sync_once` each, released together), pushed once to one OpenSSH sshd alone and once "
        "through HAProxy (Debian's 2.6, the guide's docs/deploy/haproxy-fieldsync.cfg: TCP mode, leastconn, "
        "health checks on the SSH banner) to two sshd with the same host key serving one shared tree; each "
        "burst onto a fresh tree. Command: "
        f"`.venv/bin/python -m bench.servers{''.join(' ' + a for a in argv)}`. Tablets, both sshd and HAProxy "
        f"share this machine's {os.cpu_count()} CPUs: a second sshd adds no CPU here, so this measures what "
        "the balancer costs and that nothing is lost through it, not what a second host gains.",
        f"Load average (1/5/15 min) when the run ended: {loadavg()}; the last column is the 1/5/15-minute "
        "figures before → after each burst (other work on the machine slows every row alike).",
        "",
        "| run | photos | MB | seconds | photos/s | MB/s | p50 latency s | p99 latency s | tablets retried | "
        "exactly once, verify clean | load before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *[row(r) for r in results],
        "",
        f"Aggregate: {pair_rate:.1f} photos/s through HAProxy to two sshd against {alone_rate:.1f} photos/s "
        f"to one sshd alone ({pair_rate / alone_rate:.2f}×).",
        f"Sessions HAProxy sent to sftp1 / sftp2 (leastconn): {splits}. SSH logins each sshd accepted "
        f"(its log), by run: {logins}.",
        f"Integrity: every burst compared byte for byte with every tablet's tree (missing, extra or "
        f"duplicated, different, temp files left: all 0 {'in every run' if ok else '— NOT in every run'}); "
        f"`fieldsync verify --server` exit codes {[r['verify'][0] for r in results]}, the last one's "
        f"summary: \u201c{verify_line}\u201d.",
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
