"""Times `nnx-migrate rewrite --check --jobs 1` on a tree against LibCST parse + codegen
of the same files, in the same run (same machine state), and prints the ratio.

    python benchmarks/rewrite_speed.py [TREE] [--repeat N]

Two rows: every .py file of the tree, and only the files that mention Linen (where the
rewrite does all its work; files without Linen are skipped unparsed, which flatters the
first row). Each time is the median of N runs (default 5).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import libcst as cst  # noqa: E402

from nnx_migrate.cli import main as cli_main  # noqa: E402
from nnx_migrate.files import iter_python_files, read_source  # noqa: E402


def parse_and_codegen(files: list[Path]) -> None:
    for path in files:
        text = read_source(path).text
        try:
            cst.parse_module(text).code
        except cst.ParserSyntaxError:
            pass


def rewrite_check(files: list[Path]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli_main(["rewrite", "--check", "--quiet", "--jobs", "1", *map(str, files)])


def median_time(fn, files, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(files)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", default=str(ROOT / ".corpus"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    files = list(iter_python_files([args.tree]))
    linen = [f for f in files if "linen" in read_source(f).text]
    # warm up imports and caches on both sides
    parse_and_codegen(files[:3])
    rewrite_check(files[:3])
    print("| files | LibCST parse+codegen | rewrite --check (1 job) | ratio |")
    print("|---|---|---|---|")
    for label, subset in ((f"all {len(files)}", files), (f"{len(linen)} with Linen", linen)):
        base = median_time(parse_and_codegen, subset, args.repeat)
        ours = median_time(rewrite_check, subset, args.repeat)
        print(f"| {label} | {base:.2f} s | {ours:.2f} s | {ours / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
