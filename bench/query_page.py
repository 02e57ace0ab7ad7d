"""The tablet's query page (P2) at 100,000 customers in Debian chromium, CPU-throttled over CDP.

    python -m bench.query_page [--count N] [--rates 1 4 6] [--runs 3]

Ready-to-type time and, per query type, "last key -> final results on screen" (the frame after
the results render, by requestAnimationFrame) for a query entered at once and typed key by key at
150 ms a key; medians of 3 at 1x, 4x and 6x throttling. The anchor is the previous page (columns
scanned per keystroke, no index; bench/query_page_baseline/) over the same customers in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.customers_data import customers

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "query_page_baseline"
RESULT = HERE / "results" / "query_page.md"
RATES = (1, 4, 6)
RUNS = 3
KEY_MS = 150
# label -> (query, the input it is typed into)
QUERIES = {"Chinese 2 chars": ("机械", "#q"), "initials": ("hzjx", "#q"), "full pinyin": ("hangzhou", "#q"),
           "meter fragment": ("5100123", "#q"), "account": ("3502253294", "#q"),
           "multi-word": ("杭州 机械", "#q"), "frequent phrase": ("有限公司", "#q"),
           "field: address": ("杭州 拱墅", "[data-field=address]")}

# Types `q` (at once, or one more character every `gap` ms) and resolves with the ms from when the
# last key was due (first key + (n - 1) * gap: a page busy with earlier keys delays the timers, and
# that backlog counts, as a typist does not wait) to the frame after the page's results for it
# render (#status gets data-ms).
MEASURE = """([q, gap, input]) => new Promise(done => {
  const box = document.querySelector(input), status = document.getElementById('status');
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
  for (const box of document.querySelectorAll('#q, [data-field]')) { box.value = ''; box.dispatchEvent(new Event('input')); }
  setTimeout(() => { document.getElementById('status').removeAttribute('data-ms'); done(); }, 400);
})"""


def write_baseline(root: Path, state_dir: Path, target: Path, values: dict) -> None:
    """The previous page (columns scanned per keystroke: format-2 chunks, no index) from its
    own template and scripts in bench/query_page_baseline/, over the same customers."""
    import jinja2

    from fieldsync.base.rendering import environment
    from fieldsync.masterdata.index_file import load_index
    from fieldsync.masterdata.querydata import CHUNK_ROWS, _js_call
    from fieldsync.masterdata.store import FIELDS

    data = target / "_query"
    data.mkdir(parents=True)
    env = environment().overlay(loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(BASELINE)),
                                                            environment().loader]))
    (target / "index.html").write_text(env.get_template("root.html.j2").render(**values), encoding="utf-8")
    shutil.copy(root / "_query" / "pinyin.js", data / "pinyin.js")
    for name in ("query.js", "matching.js"):
        shutil.copy(BASELINE / name, data / name)
    index = load_index(state_dir)
    chunks = 0
    for start in range(0, index.count, CHUNK_ROWS):
        ids = range(start, min(index.count, start + CHUNK_ROWS))
        raw, norm = [], []
        for field in FIELDS:
            shown = "".join(index.raw[field][cid] + "\n" for cid in ids)
            normal = "".join(index.norm[field][cid] + "\n" for cid in ids)
            raw.append(shown)
            norm.append(0 if normal == shown else normal)
        (data / f"customers-{chunks:03d}.js").write_text(_js_call("columns", chunks, raw, norm), encoding="utf-8")
        chunks += 1
    (data / "manifest.js").write_text(_js_call("manifest", {"chunks": chunks, "count": index.count}),
                                      encoding="utf-8")


def measure(browser, root: Path, rate: int, runs: int) -> dict:
    """Medians of `runs`: ready to type, the index loaded (the indexed page), each query."""
    ready, indexed, timings = [], [], {}
    for run in range(runs):
        context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": rate})
        page.goto((root / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=600_000, state="attached")
        # the page's own clock (ms from navigation start): Playwright notices an attribute late
        # when the machine is loaded, and both pages set data-ready-ms when they take input
        ready.append(page.evaluate("Number(document.body.getAttribute('data-ready-ms'))"))
        if (root / "_query" / "index-000.js").is_file():
            page.wait_for_selector("body[data-index='1']", timeout=600_000, state="attached")
            indexed.append(page.evaluate("Number(document.body.getAttribute('data-index-ms'))"))
        if run == 0:
            for label, (query, box) in QUERIES.items():
                for mode, gap in (("at once", 0), ("typed", KEY_MS)):
                    values = []
                    for _ in range(runs):
                        page.evaluate(CLEAR)
                        values.append(page.evaluate(MEASURE, [query, gap, box]))
                    timings[(label, mode)] = statistics.median(values)
        context.close()
    return {"ready": statistics.median(ready), "timings": timings,
            "index": statistics.median(indexed) if indexed else None}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="customers (default 100,000)")
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES),
                        help="CPU throttling rates (default 1 4 6)")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per median (default 3)")
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
        write_baseline(root, cfg.state_dir, tmp / "baseline",
                       {"folders": {}, "folder_count": 0, "inspector": cfg.inspector, "device": cfg.device,
                        "data_dir": "_query"})
        sizes = {name: sum(p.stat().st_size for p in (d / "_query").glob("*.js")) / 2 ** 20
                 for name, d in (("indexed", root), ("scan", tmp / "baseline"))}
        sizes["index"] = sum(p.stat().st_size for p in (root / "_query").glob("index-*.js")) / 2 ** 20
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            for rate in args.rates:
                for name, folder in (("indexed", root), ("scan", tmp / "baseline")):
                    results[(name, rate)] = measure(browser, folder, rate, args.runs)
                    print(name, rate, json.dumps({k if isinstance(k, str) else " / ".join(k): v for k, v in
                                                  {"ready": results[(name, rate)]["ready"],
                                                   **results[(name, rate)]["timings"]}.items()}), flush=True)
            browser.close()
    after = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    write_result(args.count, sizes, results, (load, after), args.rates, args.runs)
    return 0


def write_result(count: int, sizes: dict, results: dict, load: tuple[str, str], rates: list[int],
                 runs: int) -> None:
    def cell(name, rate, key):
        found = results[(name, rate)]
        value = found[key] if key in ("ready", "index") else found["timings"][key]
        return "–" if value is None else f"{value:,.0f}"

    def row(label, key):
        return f"| {label} | " + " | ".join(f"{cell('indexed', r, key)} | {cell('scan', r, key)}" for r in rates) + " |"

    head = " | ".join(f"{rate}× now | {rate}× scan" for rate in rates)
    lines = [f"## Query page (P2) at {count:,} customers, CPU-throttled chromium",
             "",
             f"`python -m bench.query_page --rates {' '.join(map(str, rates))}`: headless Debian chromium from "
             "file://, CDP `Emulation.setCPUThrottlingRate` "
             f"{'/'.join(f'{r}×' for r in rates)}; medians of {runs}, ms. \"now\" is the page that looks words up "
             "in the postings of `find`'s n-grams shipped in _query/index-NNN.js (character pairs, pinyin-initials "
             "pairs; loaded after the page is ready to type) and checks only the customers they give, in "
             "slices of 8 ms (dropped when a newer key comes), with fast typing debounced; \"scan\" is the "
             "page before it (columns scanned with indexOf and regular expressions per keystroke, same "
             "slicing and debounce; bench/query_page_baseline/) over the same customers in the same run. "
             "Results time = last input → the frame after the results render; typed = one key every "
             f"{KEY_MS} ms, timed from when the last key was due (first key + (n − 1) × {KEY_MS} ms), so keys "
             "queued behind a busy page count. Ready to type and index loaded: the page's own clock from "
             "navigation start. Queries are measured once the index has loaded. "
             f"Load average (1/5/15 min) at the start: {load[0]}; at the end: {load[1]} (2 CPUs shared with "
             f"other work: the ratio to the scan page counts). Data: {sizes['indexed']:.1f} MB now "
             f"(of which the index {sizes['index']:.1f} MB), {sizes['scan']:.1f} MB scan.",
             "",
             f"| measure | {head} |",
             "|---" * (1 + 2 * len(rates)) + "|",
             row("ready to type", "ready"),
             row("index loaded", "index")]
    for label, (query, _) in QUERIES.items():
        for mode in ("at once", "typed"):
            lines.append(row(f"{label} `{query}`, {mode}", (label, mode)))
    RESULT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
