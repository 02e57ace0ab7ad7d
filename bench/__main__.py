"""Run every benchmark module, then assemble BENCHMARKS.md from their result sections.

    python -m bench            all benchmarks at their default sizes
    python -m bench search     only bench/search.py
    python -m bench --full     the issues' full sizes (slow)

Each module writes bench/results/<name>.md with its figures beside the anchors measured in
the same run; this runner only concatenates them under a header naming the machine.
"""

from __future__ import annotations

import datetime
import os
import pkgutil
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE.parent / "BENCHMARKS.md"


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {cpus} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def assemble() -> None:
    sections = [p.read_text(encoding="utf-8").strip() for p in sorted(RESULTS.glob("*.md"))]
    header = ("# Benchmarks\n\nProduced by `./run bench` (`python -m bench`); every figure stands beside "
              "its anchor measured in the same run on the same machine. Machines are noisy: read the "
              "ratios, not the absolute times.\n\n"
              f"Last assembled {datetime.date.today()} on: {machine()}.\n")
    OUTPUT.write_text(header + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or modules()
    flags = [a for a in argv if a.startswith("-")]
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        # A process each: one broken benchmark must not hide the others' figures, and
        # memory or threads left by one must not skew the next.
        done = subprocess.run([sys.executable, "-m", f"bench.{name}", *flags], cwd=HERE.parent)
        if done.returncode != 0:
            print(f"bench.{name} failed (exit {done.returncode})", file=sys.stderr)
            failed.append(name)
    assemble()
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
