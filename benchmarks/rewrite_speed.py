"""Times `nnx-migrate rewrite --check --jobs 1` on a tree against LibCST parse + codegen
of the same files, in the same run (same machine state), and prints the ratio.

    python benchmarks/rewrite_speed.py [TREE] [--repeat N]

Two rows: every .py file of the tree, and only the files that mention Linen (where the
rewrite does all its work; files without Linen are skipped unparsed, which flatters the
first row). The two are timed alternately, N times each (default 7), and the table gives
the fastest run of each (the one least disturbed by other load on the machine) and the
median of the N pairwise ratios.
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
            _ = cst.parse_module(text).code
        except cst.ParserSyntaxError:
            pass


def rewrite_check(files: list[Path]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli_main(["rewrite", "--check", "--quiet", "--jobs", "1", *map(str, files)])


def timed(fn, files) -> float:
    start = time.perf_counter()
    fn(files)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", default=str(ROOT / ".corpus"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    files = list(iter_python_files([args.tree]))
    linen = [f for f in files if "linen" in read_source(f).text]
    # warm up imports and caches on both sides
    parse_and_codegen(files[:3])
    rewrite_check(files[:3])
    print("| files | LibCST parse+codegen (fastest) | rewrite --check, 1 job (fastest) | ratio of fastest | median ratio |")
    print("|---|---|---|---|---|")
    for label, subset in ((f"all {len(files)}", files), (f"{len(linen)} with Linen", linen)):
        pairs = [(timed(parse_and_codegen, subset), timed(rewrite_check, subset)) for _ in range(args.repeat)]
        base = min(b for b, _ in pairs)
        ours = min(o for _, o in pairs)
        ratio = statistics.median(o / b for b, o in pairs)
        print(f"| {label} | {base:.2f} s | {ours:.2f} s | {ours / base:.2f}x | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
