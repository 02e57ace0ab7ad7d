"""The tablet's query page (P2) at 100,000 customers in Debian chromium, CPU-throttled over CDP.

    python -m bench.query_page [--count N]

Ready-to-type time and, per query type, "last key -> final results on screen" (the frame after
the results render, by requestAnimationFrame) for a query entered at once and typed key by key at
150 ms a key; medians of 3 at 1x, 4x and 6x throttling. The anchor is the previous page (a full
scan per keystroke, bench/query_page_baseline/) over the same customers in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.customers_data import customers

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "query_page_baseline"
RESULT = HERE / "results" / "query_page.md"
RATES = (1, 4, 6)
RUNS = 3
KEY_MS = 150
QUERIES = {"Chinese 2 chars": "机械", "initials": "hzjx", "full pinyin": "hangzhou",
           "meter fragment": "5100123", "multi-word": "杭州 机械", "frequent phrase": "有限公司"}

# Types `q` (at once, or one more character every `gap` ms) and resolves with the ms from when the
# last key was due (first key + (n - 1) * gap: a page busy with earlier keys delays the timers, and
# that backlog counts, as a typist does not wait) to the frame after the page's results for it
# render (#status gets data-ms).
MEASURE = """([q, gap]) => new Promise(done => {
  const box = document.getElementById('q'), status = document.getElementById('status');
  let armed = false, first = 0, last = 0;
  new MutationObserver((_, observer) => {
    if (armed && status.hasAttribute('data-ms')) {
      observer.disconnect();
      requestAnimationFrame(() => done(performance.now() - last));
    }
  }).observe(status, {attributes: true});
  const steps = gap ? Array.from(q, (_, i) => q.slice(0, i + 1)) : [q];
  const next = i => {
    if (i === 0) first = performance.now();
    if (i === steps.length - 1) { armed = true; last = first + i * gap; }
    box.value = steps[i]; box.dispatchEvent(new Event('input'));
    // each key at its own due time (not `gap` after the previous one ran): a late key does not
    // push the later ones back, as a typist's keys queue while the page is busy
    if (i < steps.length - 1) setTimeout(() => next(i + 1), Math.max(0, first + (i + 1) * gap - performance.now()));
  };
  next(0);
})"""

CLEAR = """() => new Promise(done => {
  const box = document.getElementById('q');
  box.value = ''; box.dispatchEvent(new Event('input'));
  setTimeout(() => { document.getElementById('status').removeAttribute('data-ms'); done(); }, 400);
})"""


def write_baseline(root: Path, state_dir: Path, target: Path) -> None:
    """The previous page's data format (rows as arrays) and scripts, beside the same index.html."""
    from fieldsync.masterdata.index_file import load_index
    from fieldsync.masterdata.querydata import CHUNK_ROWS, _js_call
    from fieldsync.masterdata.store import FIELDS

    data = target / "_query"
    data.mkdir(parents=True)
    shutil.copy(root / "index.html", target / "index.html")
    shutil.copy(root / "_query" / "pinyin.js", data / "pinyin.js")
    for name in ("query.js", "matching.js"):
        shutil.copy(BASELINE / name, data / name)
    index = load_index(state_dir)
    chunks = 0
    for start in range(0, index.count, CHUNK_ROWS):
        rows = []
        for cid in range(start, min(index.count, start + CHUNK_ROWS)):
            raw = [index.raw[f][cid] for f in FIELDS]
            norm = [index.norm[f][cid] for f in FIELDS]
            rows.append(raw + [[n if n != r else 0 for n, r in zip(norm, raw)] if norm != raw else 0])
        (data / f"customers-{chunks:03d}.js").write_text(_js_call("add", rows), encoding="utf-8")
        chunks += 1
    (data / "manifest.js").write_text(_js_call("manifest", {"chunks": chunks, "count": index.count}),
                                      encoding="utf-8")


def measure(browser, root: Path, rate: int) -> dict:
    ready, timings = [], {}
    for run in range(RUNS):
        context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": rate})
        start = time.perf_counter()
        page.goto((root / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=600_000, state="attached")
        ready.append((time.perf_counter() - start) * 1000)
        if run == 0:
            for label, query in QUERIES.items():
                for mode, gap in (("at once", 0), ("typed", KEY_MS)):
                    values = []
                    for _ in range(RUNS):
                        page.evaluate(CLEAR)
                        values.append(page.evaluate(MEASURE, [query, gap]))
                    timings[(label, mode)] = statistics.median(values)
        context.close()
    return {"ready": statistics.median(ready), "timings": timings}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="customers (default 100,000)")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from fieldsync import config as config_mod
    from fieldsync.masterdata.store import CustomerStore
    from fieldsync.tree.folders import init_root
    from fieldsync.views import pages
    from tests.fixtures.browser import CHROMIUM_ARGS, chromium_path

    results = {}
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-page-") as tmp:
        tmp = Path(tmp)
        root = tmp / "tablet"
        config = init_root(root, config_mod.render_default(root, "bench", "bench-01", (tmp / "srv").as_uri()))
        cfg = config_mod.load(config)
        CustomerStore(cfg.state_dir).replace(customers(args.count), "generated")
        pages.render_root(cfg)
        write_baseline(root, cfg.state_dir, tmp / "baseline")
        sizes = {name: sum(p.stat().st_size for p in (d / "_query").glob("customers-*.js")) / 2 ** 20
                 for name, d in (("indexed", root), ("scan", tmp / "baseline"))}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            for rate in RATES:
                for name, folder in (("indexed", root), ("scan", tmp / "baseline")):
                    results[(name, rate)] = measure(browser, folder, rate)
                    print(name, rate, json.dumps({k if isinstance(k, str) else " / ".join(k): v for k, v in
                                                  {"ready": results[(name, rate)]["ready"],
                                                   **results[(name, rate)]["timings"]}.items()}), flush=True)
            browser.close()
    write_result(args.count, sizes, results, load)
    return 0


def write_result(count: int, sizes: dict, results: dict, load: str) -> None:
    def cell(name, rate, key):
        value = results[(name, rate)]["ready"] if key == "ready" else results[(name, rate)]["timings"][key]
        return f"{value:,.0f}"

    head = " | ".join(f"{rate}× now | {rate}× scan" for rate in RATES)
    lines = [f"## Query page (P2) at {count:,} customers, CPU-throttled chromium",
             "",
             "`python -m bench.query_page`: headless Debian chromium from file://, CDP "
"`Emulation.setCPUThrottlingRate` 1×/4×/6×; medians of 3, ms. \"now\" is the page that finds "
             "words with indexOf and one regular expression per word over columns of text, in slices of 8 ms "
             "(dropped when a newer key comes), and debounces fast typing; \"scan\" is the previous page (every row scanned and every hit sorted per keystroke, "
             "bench/query_page_baseline/) over the same customers in the same run. Results time = last "
             f"input → the frame after the results render; typed = one key every {KEY_MS} ms, timed from when "
             "the last key was due (first key + (n − 1) × 150 ms), so keys queued behind a busy page count. "
             f"Load average at the start: {load}. Data: "
             f"{sizes['indexed']:.1f} MB now, {sizes['scan']:.1f} MB scan.",
             "",
             f"| measure | {head} |",
             "|---" * (1 + 2 * len(RATES)) + "|",
             "| ready to type | " + " | ".join(f"{cell('indexed', r, 'ready')} | {cell('scan', r, 'ready')}"
                                              for r in RATES) + " |"]
    for label, query in QUERIES.items():
        for mode in ("at once", "typed"):
            lines.append(f"| {label} `{query}`, {mode} | " + " | ".join(
                f"{cell('indexed', r, (label, mode))} | {cell('scan', r, (label, mode))}" for r in RATES) + " |")
    RESULT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
