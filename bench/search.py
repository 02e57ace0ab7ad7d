"""Customer search benchmark (issue 4): fieldsync's n-gram index beside naive TinyDB
`Query.search` and SQLite FTS5 (trigram) on the same generated customers, in one run; plus
import time, `fieldsync find` end to end, cold load/RSS and the query page's first result.

    python -m bench.search            100,000 customers
    python -m bench.search --full     1,000,000 customers (slow)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.customers_data import write_csv

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "search.md"
FIELDS = ("account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1000, result


def make_queries(rows: list[dict], per_type: int, seed: int = 1) -> dict[str, list[tuple]]:
    """Query type -> [(text, fields)], drawn from the data so every query has answers."""
    from fieldsync.masterdata.matching import char_readings

    rng = random.Random(seed)
    picks = [rng.choice(rows) for _ in range(per_type)]

    def piece(text: str, size: int) -> str:
        start = rng.randrange(0, max(1, len(text) - size + 1))
        return text[start:start + size]

    def initials(text: str) -> str:
        return "".join(char_readings(c)[0][0] for c in piece(text, 4))

    words = [rng.choice(rows) for _ in range(per_type)]
    return {
        "2-char name": [("", {"name": piece(r["name"], 2)}) for r in picks],
        "2-char address": [("", {"address": piece(r["address"], 2)}) for r in picks],
        "pinyin initials (name, 4)": [("", {"name": initials(r["name"])}) for r in picks],
        "6-digit meter fragment": [("", {"meter_no": piece(r["meter_no"], 6)}) for r in picks],
        "3 fields (name+address+voltage)": [("", {"name": piece(r["name"], 2), "address": piece(r["address"], 2),
                                                  "voltage": r["voltage"]}) for r in picks],
        "frequent phrase (free text)": [(phrase, {}) for phrase in frequent_phrases(rows, per_type)],
        "multi-word (2-3 words, free text)": [
            (" ".join(piece(r[f], rng.choice((2, 3))) for f in rng.sample(("name", "address", "line"), rng.choice((2, 3)))),
             {}) for r in words],
    }


WORST_PHRASES = ("有限公司", "路", "杭州市")  # issue 18: 720, 311 and 185 ms at 1M before


def frequent_phrases(rows: list[dict], count: int) -> list[str]:
    """The most common 1-4 character substrings of the text fields (an equal share of each
    length, from a sample of 20,000 customers), the issue's worst phrases first."""
    from collections import Counter

    sample = random.Random(3).sample(rows, min(len(rows), 20_000))
    by_size = {size: Counter() for size in (1, 2, 3, 4)}
    for row in sample:
        for field in ("name", "address", "line"):
            text = row[field] or ""
            for size, counter in by_size.items():
                counter.update({text[i:i + size] for i in range(len(text) - size + 1)})
    out = list(WORST_PHRASES)
    share = max(1, (count - len(out)) // 4)
    for counter in by_size.values():
        out += [text for text, _ in counter.most_common(share + len(WORST_PHRASES)) if text not in out][:share]
    return out[:count]


def bench_fieldsync(state_dir: Path, queries) -> dict[str, list[float]]:
    from fieldsync.masterdata import index_file, search

    index = search.SearchIndex(index_file.load_index(state_dir))
    index.search("", {"name": "hz"})  # the pinyin vocabularies are made on first use
    return {kind: [timed(index.search, text, fields, 20)[0] for text, fields in items]
            for kind, items in queries.items()}


def worst_phrases(state_dir: Path) -> dict[str, tuple[float, int, bool]]:
    """phrase -> (median ms, count, whether the count is exact)."""
    from fieldsync.masterdata import index_file, search

    index = search.SearchIndex(index_file.load_index(state_dir))
    out = {}
    for phrase in WORST_PHRASES:
        runs = [timed(index.search, phrase, None, 20) for _ in range(5)]
        out[phrase] = (statistics.median(ms for ms, _ in runs), runs[0][1].total, runs[0][1].exact)
    return out


def bench_tinydb(store_path: Path, queries, per_type: int) -> dict[str, list[float]]:
    from tinydb import Query, TinyDB

    db = TinyDB(store_path, access_mode="r")
    table = db.table("customers")
    out = {}
    for kind, items in queries.items():
        if "pinyin" in kind or "free text" in kind:
            out[kind] = []  # TinyDB has no pinyin, and no one query over every field: not comparable
            continue
        times = []
        for _, fields in items[:per_type]:
            condition = None
            for field, value in fields.items():
                part = Query()[field].search(re.escape(value))
                condition = part if condition is None else condition & part
            table.clear_cache()  # TinyDB caches query results; a new query each time in real use
            times.append(timed(table.search, condition)[0])
        out[kind] = times
    db.close()
    return out


def bench_fts5(rows: list[dict], queries) -> tuple[dict[str, list[float]], float]:
    db = sqlite3.connect(":memory:")
    start = time.perf_counter()
    db.execute(f"create virtual table c using fts5({', '.join(FIELDS)}, tokenize='trigram')")
    db.executemany(f"insert into c values ({', '.join('?' * len(FIELDS))})",
                   ([str(r.get(f) or "") for f in FIELDS] for r in rows))
    db.commit()
    build = time.perf_counter() - start
    # Terms under 3 characters: the trigram index cannot answer them. FTS5 would scan with
    # LIKE, but SQLite 3.40's trigram LIKE crashed here, so they scan a plain copy instead.
    db.execute(f"create table p ({', '.join(FIELDS)})")
    db.execute(f"insert into p select {', '.join(FIELDS)} from c")
    out = {}
    for kind, items in queries.items():
        if "pinyin" in kind:
            out[kind] = []
            continue
        times = []
        for text, fields in items:
            # free-text words may be in any field: the table-level match, or LIKE on every column
            terms = [(f, v) for f, v in fields.items()] + [(None, w) for w in text.split()]
            long_terms = [(f, v) for f, v in terms if len(v) >= 3]
            short_terms = [(f, v) for f, v in terms if len(v) < 3]
            where = [f"{'c.' + f if f else 'c'} match ?" for f, _ in long_terms]
            where += [f"p.{f} like ?" if f else "(" + " or ".join(f"p.{g} like ?" for g in FIELDS) + ")"
                      for f, _ in short_terms]
            args = ['"' + v.replace('"', '""') + '"' for _, v in long_terms]
            args += [a for f, v in short_terms for a in [f"%{v}%"] * (1 if f else len(FIELDS))]
            source = "c join p on p.rowid = c.rowid" if long_terms and short_terms else "c" if long_terms else "p"
            column = "p.account_no" if short_terms else "c.account_no"
            sql = f"select {column} from {source} where {' and '.join(where)} limit 20"
            times.append(timed(lambda: db.execute(sql, args).fetchall())[0])
        out[kind] = times
    return out, build


def cold_load(state_dir: Path, queries) -> tuple[float, float, float]:
    """(seconds to load the index and answer a first query, RSS after it, RSS after one more
    query of every type: pinyin queries unpickle the readings on first use)."""
    code = ("import json,time,psutil,sys;from pathlib import Path;from fieldsync.masterdata import index_file,search;"
            "t=time.perf_counter();i=search.SearchIndex(index_file.load_index(Path(sys.argv[1])));i.search('杭州');"
            "s=time.perf_counter()-t;r=psutil.Process().memory_info().rss/2**20;"
            "[i.search(q,f) for q,f in json.loads(sys.argv[2])];"
            "print(s,r,psutil.Process().memory_info().rss/2**20)")
    sample = json.dumps([items[0] for items in queries.values()], ensure_ascii=False)
    out = subprocess.run([sys.executable, "-c", code, str(state_dir), sample], capture_output=True, text=True, check=True)
    seconds, rss, rss_all = out.stdout.split()
    return float(seconds), float(rss), float(rss_all)


def find_end_to_end(config: Path) -> list[float]:
    exe = Path(sys.executable).with_name("fieldsync")
    times = []
    for query in ["杭州", "hzxh", "5100", "机械", "10kv", *WORST_PHRASES]:
        start = time.perf_counter()
        subprocess.run([str(exe), "--config", str(config), "find", query, "--json"],
                       capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def page_first_result(root: Path, queries: list[str]) -> tuple[float, list[float]]:
    from playwright.sync_api import sync_playwright

    from tests.fixtures.browser import CHROMIUM_ARGS, chromium_path

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        start = time.perf_counter()
        page.goto((root / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=300_000)
        load = time.perf_counter() - start
        for query in queries:
            page.fill("#q", "")
            # typed -> first row on screen, measured inside the page (no CDP round trips)
            ms = page.evaluate("""q => new Promise(done => {
                const box = document.getElementById('q'), body = document.getElementById('results');
                const start = performance.now();
                box.value = q; box.dispatchEvent(new Event('input'));
                requestAnimationFrame(() => done(body.rows.length ? performance.now() - start : -1));
            })""", query)
            times.append(ms)
        browser.close()
    return load, times


def p50_p95(values: list[float]) -> str:
    if not values:
        return " n/a | n/a "
    return f" {statistics.median(values):.1f} | {pct(values, 0.95):.1f} "


def p50_p95_p99(values: list[float]) -> str:
    if not values:
        return " n/a | n/a | n/a "
    return f" {statistics.median(values):.1f} | {pct(values, 0.95):.1f} | {pct(values, 0.99):.1f} "


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1,000,000 customers")
    parser.add_argument("--count", type=int, help="customers (default 100,000; --full 1,000,000)")
    parser.add_argument("--per-type", type=int, default=100, help="queries per type")
    parser.add_argument("--no-page", action="store_true", help="skip the browser measurement")
    args = parser.parse_args(argv)
    count = args.count or (1_000_000 if args.full else 100_000)

    from fieldsync import config as config_mod
    from fieldsync.masterdata import importer
    from fieldsync.masterdata.catalog import IndexedStore
    from fieldsync.tree.folders import init_root
    from fieldsync.views import pages

    lines = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-search-") as tmp:
        tmp = Path(tmp)
        root = tmp / "tablet"
        config = init_root(root, config_mod.render_default(root, "bench", "bench-01", (tmp / "srv").as_uri()))
        cfg = config_mod.load(config)
        csv_path = write_csv(tmp / "customers.csv", count)
        size_mb = csv_path.stat().st_size / 2 ** 20

        # the import as `customers import` runs it (all or nothing: every row read and checked
        # before anything is written); the peak is this process's, from the kernel
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        parsed = importer.Reading(csv_path).read()
        parse_s = time.perf_counter() - start
        store = IndexedStore(cfg.state_dir)
        start = time.perf_counter()
        store.merge(parsed.records, str(csv_path), fields=parsed.fields)  # TinyDB, then the index
        store_s = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        records = parsed.records
        del parsed
        say(f"## Customer search (issues 4, 18){', 1M' if args.full else ''}\n\n`{' '.join(['python -m bench.search', *argv])}`: "
            f"{count:,} generated customers (Chinese companies, addresses, lines; {size_mb:.0f} MB CSV), "
            f"{args.per_type} queries per type drawn from the data, limit 20; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at the start (other work on the machine slows every row alike).\n")
        say(f"Import: parse {parse_s:.1f} s + TinyDB write and index build {store_s:.1f} s = "
            f"**{parse_s + store_s:.1f} s** (goal at 1M: <= 60 s); peak RSS of the importing process "
            f"**{peak_mb:.0f} MB** (ru_maxrss; {rss_before:.0f} MB before it; goal at 1M: <= 1536 MB).\n")

        queries = make_queries(records, args.per_type)
        del records
        ours = bench_fieldsync(cfg.state_dir, queries)
        worst = worst_phrases(cfg.state_dir)
        tiny = bench_tinydb(store.path, queries, max(3, args.per_type // 10))
        rows_for_fts = store.all()
        fts, fts_build = bench_fts5(rows_for_fts, queries)
        del rows_for_fts

        say("| query type | fieldsync p50 ms | p95 ms | p99 ms | TinyDB Query.search p50 | p95 "
            "| SQLite FTS5 trigram p50 | p95 | p99 |")
        say("|---|---|---|---|---|---|---|---|---|")
        for kind in queries:
            say(f"| {kind} |{p50_p95_p99(ours[kind])}|{p50_p95(tiny[kind])}|{p50_p95_p99(fts[kind])}|")
        all_ours = [t for v in ours.values() for t in v]
        worst_type = max(ours, key=lambda kind: pct(ours[kind], 0.99))
        say(f"\nfieldsync p99 of the slowest type ({worst_type}): **{pct(ours[worst_type], 0.99):.1f} ms** "
            f"(goal at 1M: <= 50 ms for every type). The issue's worst phrases, free text, limit 20, median of 5: "
            + ", ".join(f"`{q}` {worst[q][0]:.1f} ms ({worst[q][1]:,} {'exact' if worst[q][2] else 'about'})"
                        for q in WORST_PHRASES) + ".\n")
        goal = 5 if count <= 100_000 else 20
        say(f"fieldsync p95 over all types: **{pct(all_ours, 0.95):.1f} ms** (goal <= {goal} ms). "
            f"FTS5 index build {fts_build:.1f} s in memory. FTS5's blind spot: its trigram index cannot "
            "answer 1-2 character terms (2-char name/address fall back to LIKE, a full scan) and it has "
            "no pinyin; TinyDB has no pinyin either (n/a). Not like for like: the FTS5 query stops at LIMIT 20 unranked, fieldsync finds every match and ranks the page shown; it counts exactly, except a very frequent phrase whose count is an estimate said as \"about\" (search.Results).\n")

        load_s, rss, rss_all = cold_load(cfg.state_dir, queries)
        e2e = find_end_to_end(config)
        say(f"Cold load of the index + first query: **{load_s:.2f} s**, RSS **{rss:.0f} MB**, "
            f"**{rss_all:.0f} MB** after one more query of each type "
            f"(goals at 1M: <= 3 s, <= 600 MB). `fieldsync find` end to end (process start included): "
            f"p50 {statistics.median(e2e):.0f} ms, max {max(e2e):.0f} ms (goal at 100k: <= 500 ms).\n")

        if not args.no_page:
            start = time.perf_counter()
            pages.render_root(cfg)
            render_s = time.perf_counter() - start
            page_queries = ["杭州", "hz", "hzxh", "hangzhou", "5100", "机械", "10kv", "zhou"]
            load, firsts = page_first_result(root, page_queries)
            data_mb = sum(p.stat().st_size for p in (root / "_query").iterdir()) / 2 ** 20
            say(f"Query page (Debian chromium, headless, file://): data {data_mb:.0f} MB in "
                f"{len(list((root / '_query').glob('customers-*.js')))} chunks, written in {render_s:.1f} s; "
                f"page ready after {load:.1f} s; typed -> first result on screen per query: "
                + ", ".join(f"`{q}` {ms:.0f} ms" for q, ms in zip(page_queries, firsts))
                + f"; worst **{max(firsts):.0f} ms** (goal <= 1000 ms).\n")

    # the default size and --full each keep their own section; other sizes are trials only
    out = RESULTS if count == 100_000 else RESULTS.with_name("search-1m.md") if args.full else None
    if out is not None:
        out.parent.mkdir(exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main(sys.argv[1:]))
