"""Verify throughput on a server tree vs `sha256sum` over the same files, in the same run.

    python -m bench.verify            5,000 distinct photos (about 2.5 GB, a minute or two)
    python -m bench.verify --full     100,000 photos (the issue's size), as hard links to
                                      2,000 distinct ones (1 GB) so the tree fits a small disk
                                      and the page cache; --distinct 100000 for all distinct
                                      (~50 GB of disk, then mostly a disk benchmark)
    python -m bench.verify -n 20000   any size

The tree is what the server holds: visits of 50 shrunk photos (real 1600x1200 JPEGs, each
made unique by a JPEG comment segment), manifest.json per visit, one device ledger under
.fieldsync/ledgers/ with a record per photo, as a tablet writes it. The ledger is built twice,
unsigned and signed (issue 17); verify runs alternate between the two in the same run, so
"signed / unsigned" compares like with like (goal >= 0.9x), and the signing time per record
is what a tablet pays (goal <= 1 ms). Both tools read the same files with the page cache warm (a warm-up pass
first, then the two alternate three times; the median of each is reported), so the figure
compares hashing work, not disk luck. Also timed: a re-verify of the unchanged tree with the
incremental cache. Writes bench/results/verify.md.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from fieldsync.base import signing
from fieldsync.base.hashing import GENESIS, canonical
from fieldsync.config import Layout
from fieldsync.evidence import ledger, manifest
from fieldsync.evidence.hashcache import HashCache
from fieldsync.evidence.verify import Options, verify_tree

RESULTS = Path(__file__).resolve().parent / "results" / "verify.md"
PHOTOS_PER_VISIT = 50
GOAL = 0.9
DEVICE = "bench-tablet"


def base_jpeg() -> bytes:
    size = (1600, 1200)
    noise = Image.effect_noise(size, 30).convert("RGB")
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.7).save(out, "JPEG", quality=85)
    return out.getvalue()


def unique_jpeg(base: bytes, n: int) -> bytes:
    # A COM segment right after SOI: still a valid JPEG, a different SHA-256 per photo.
    text = f"fieldsync bench photo {n:09d}".encode()
    return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


def build_tree(root: Path, count: int, distinct: int, key_file: Path) -> tuple[list[Path], bytes, bytes, float]:
    """A server tree with `count` photos (`distinct` different contents, the rest hard links),
    manifests chained; returns the files, the device ledger unsigned and signed (one record
    per photo), and the seconds spent signing."""
    key = signing.load_key(signing.ensure_key(key_file))
    signed, signing_s = [], 0.0
    base = base_jpeg()
    originals: list[tuple[Path, str, int]] = []
    layout = Layout()
    files, records = [], []
    prev_record = GENESIS
    visits = (count + PHOTOS_PER_VISIT - 1) // PHOTOS_PER_VISIT
    n = 0
    for v in range(visits):
        visit_rel = f"{3300000000 + v // 10}_测试客户/{layout.businesses[0]}/计量装置/2026-11-{v % 28 + 1:02d}_{v:05d}"
        visit = root / visit_rel
        (visit / layout.appearance_folder).mkdir(parents=True)
        data = {"format": manifest.FORMAT, "visit_id": f"{v:032x}", "head": GENESIS, "entries": [], "pending": {}}
        for i in range(min(PHOTOS_PER_VISIT, count - n)):
            rel = f"{layout.appearance_folder}/IMG_{i:04d}.jpg"
            if n < distinct:
                body = unique_jpeg(base, n)
                (visit / rel).write_bytes(body)
                originals.append((visit / rel, hashlib.sha256(body).hexdigest(), len(body)))
            else:
                os.link(originals[n % distinct][0], visit / rel)
            sha, size = originals[n % distinct][1:]
            files.append(visit / rel)
            entry = {"seq": i + 1, "path": rel, "kind": "appearance", "original_sha256": sha,
                     "original_bytes": size, "taken_at": "2026-11-25T14:30:00+08:00",
                     "gps": {"lat": 30.27, "lon": 120.15}, "camera": {"make": "X", "model": "Y"},
                     "inspector": "bench", "device": DEVICE, "filed_at": "2026-11-25T14:31:00+08:00",
                     "sha256": sha, "bytes": size, "width": 1600, "height": 1200,
                     "prev": data["head"]}
            entry["hash"] = manifest.entry_hash(entry)
            data["entries"].append(entry)
            data["head"] = entry["hash"]
            n += 1
            record = ledger.make_record(len(records) + 1, prev_record,
                                        {"visit_id": data["visit_id"], "visit": visit_rel, "head": data["head"],
                                         "photos": len(data["entries"]), "remarks": None, "device": DEVICE})
            prev_record = record["hash"]
            records.append(canonical(record).decode() + "\n")
            started = time.perf_counter()
            ledger.sign_record(record, key, "2026-11-25T14:31:00+08:00")
            signing_s += time.perf_counter() - started
            signed.append(canonical(record).decode() + "\n")
        (visit / "manifest.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (root / ledger.REMOTE_DIR).mkdir(parents=True)
    return files, "".join(records).encode(), "".join(signed).encode(), signing_s


def use_ledger(root: Path, content: bytes) -> None:
    (root / ledger.REMOTE_DIR / DEVICE).write_bytes(content)


def time_tool(list_file: Path, command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["xargs", "-0", "-a", str(list_file), *command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


SHA256SUM = ["sha256sum", "--"]
# A second, stronger anchor: Debian's sha256sum is coreutils' portable C code, while
# OpenSSL (which Python's hashlib uses too) has SHA-NI/AVX2 code paths.
OPENSSL = ["openssl", "dgst", "-sha256"]


def time_verify(root: Path, options: Options, cache: HashCache | None = None) -> tuple[float, object]:
    start = time.perf_counter()
    report = verify_tree(root, Layout(), ledger.server_ledgers(root), cache=cache, options=options)
    elapsed = time.perf_counter() - start
    # The unsigned baseline ledger warns that it is unsigned; anything else means a broken tree.
    unexpected = [f for f in report.findings if "unsigned record(s)" not in f.message]
    if unexpected:
        raise SystemExit(f"bench tree does not verify clean: {unexpected[:3]}")
    return elapsed, report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5_000, help="photos (default 5,000)")
    parser.add_argument("--full", action="store_true", help="100,000 photos (the issue's size)")
    parser.add_argument("--distinct", type=int, default=None,
                        help="different photo contents (default: all, or 2,000 with --full)")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each tool (median)")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the tree (default: a temp dir)")
    parser.add_argument("--no-anchors", action="store_true",
                        help="skip sha256sum and openssl (signed vs unsigned verify only; at 100,000 "
                             "photos the anchors take most of the run); a verify pass warms the cache")
    args = parser.parse_args(argv)
    count = 100_000 if args.full else args.n
    distinct = min(count, args.distinct or (2_000 if args.full else count))
    options = Options(warn_missing_gps=False)
    work = Path(tempfile.mkdtemp(prefix="fieldsync-bench-verify.", dir=args.dir))
    try:
        root = work / "server"
        t0 = time.perf_counter()
        files, unsigned_ledger, signed_ledger, signing_s = build_tree(root, count, distinct, work / "key.pem")
        use_ledger(root, unsigned_ledger)
        built = time.perf_counter() - t0
        total = sum(f.stat().st_size for f in files)
        list_file = work / "files.list"
        list_file.write_bytes(b"\0".join(os.fsencode(f) for f in files) + b"\0")
        print(f"built {count:,} photos, {total / 1e9:.2f} GB in {built:.1f} s", flush=True)
        if args.no_anchors:
            time_verify(root, options)  # warm-up: every run then reads from the page cache
        else:
            time_tool(list_file, SHA256SUM)  # warm-up: every tool then reads from the page cache
        has_openssl = shutil.which("openssl") is not None and not args.no_anchors
        sums, ossl, verifies, signed_verifies = [], [], [], []
        for _ in range(args.runs):
            if not args.no_anchors:
                sums.append(time_tool(list_file, SHA256SUM))
            if has_openssl:
                ossl.append(time_tool(list_file, OPENSSL))
            use_ledger(root, unsigned_ledger)
            elapsed, report = time_verify(root, options)
            verifies.append(elapsed)
            use_ledger(root, signed_ledger)
            elapsed, report = time_verify(root, options)
            assert report.signers[DEVICE][0]["records"] == count
            signed_verifies.append(elapsed)
        sha_s = statistics.median(sums) if sums else None
        ver_s = statistics.median(verifies)
        signed_s = statistics.median(signed_verifies)
        ossl_s = statistics.median(ossl) if ossl else None
        cache = HashCache(work / "cache.json", root)
        first_cached, _ = time_verify(root, options, cache)
        re_s, re_report = time_verify(root, options, HashCache(work / "cache.json", root))
        assert re_report.cached == count and re_report.hashed == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = total / 1e6
    rows = [
        *([("sha256sum (anchor, 1 process)", sha_s, mb / sha_s, count / sha_s)] if sha_s else []),
        *([("openssl dgst -sha256 (2nd anchor, 1 process)", ossl_s, mb / ossl_s, count / ossl_s)]
          if ossl_s else []),
        (f"fieldsync verify --server ({options.threads} threads), unsigned ledger", ver_s, mb / ver_s,
         count / ver_s),
        (f"fieldsync verify --server ({options.threads} threads), signed ledger", signed_s, mb / signed_s,
         count / signed_s),
        ("re-verify, unchanged tree (incremental cache)", re_s, mb / re_s, count / re_s),
    ]
    lines = [f"| {name} | {s:.2f} | {mbps:,.0f} | {fps:,.0f} |" for name, s, mbps, fps in rows]
    if sha_s:
        ratio = sha_s / ver_s
        verdict = "meets" if ratio >= GOAL else "misses"
        anchor = (f"verify / sha256sum throughput: **{ratio:.2f}x** (goal >= {GOAL}x: {verdict} it)"
                  + (f"; verify / openssl: {ossl_s / ver_s:.2f}x. " if ossl_s else ". "))
    else:
        anchor = "sha256sum and openssl not run (--no-anchors). "
    command = "python -m bench.verify" + " ".join([""] + argv)
    links = f", {distinct:,} distinct contents (the rest hard links)" if distinct < count else ""
    text = "\n".join([
        "## Verify throughput, signed vs unsigned (issue 17)" if args.no_anchors else "## Verify throughput (issue 5)",
        "",
        f"`{command}`: {count:,} photos ({total / 1e9:.2f} GB read per pass, 1600x1200 JPEGs{links}) in "
        f"{(count + PHOTOS_PER_VISIT - 1) // PHOTOS_PER_VISIT:,} visits; a warm-up pass first; median of "
        f"{args.runs} alternating run(s); {os.cpu_count()} CPUs; load average at the end "
        f"{os.getloadavg()[0]:.1f} (other work on the machine slows every row alike).",
        "",
        "| run | seconds | MB/s | photos/s |",
        "|---|---|---|---|",
        *lines,
        "",
        anchor + f"First verify that fills the cache: {first_cached:.2f} s.",
        "",
        f"Signed / unsigned verify throughput (issue 17): **{ver_s / signed_s:.2f}x** (goal >= {GOAL}x: "
        f"{'meets' if ver_s / signed_s >= GOAL else 'misses'} it); signing on the tablet: "
        f"{signing_s / count * 1000:.3f} ms per record (goal <= 1 ms). The cached re-verify row uses "
        "the signed ledger.",
        "",
    ])
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
