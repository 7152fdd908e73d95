"""Times `nnx-migrate lint` on a tree against a floor measured in the same run.

Floor: read every .py file of the tree and LibCST-parse it — what a LibCST-based linter
that reports every file it cannot parse (E902) pays without skipping anything. Target (issue 2): lint at one job <= 1.3x the
floor, and faster than the floor with --jobs 2.

    python benchmarks/lint_speed.py [TREE ...] [--repeat N]

Default tree: the installed flax package (dense NNX code: the worst case for the linter,
whose rules skip files without NNX code) plus the installed optax package.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import libcst as cst

from nnx_migrate.files import iter_python_files
from nnx_migrate.lint.runner import LintOptions, lint_paths


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return str(Path(spec.origin).parent)


def floor(files: list[str]) -> None:
    for path in files:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
        try:
            cst.parse_module(text)
        except cst.ParserSyntaxError:
            pass


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    trees = args.trees or [_package_dir("flax"), _package_dir("optax")]
    files = [str(p) for p in iter_python_files(trees)]
    mention = sum("flax" in Path(f).read_text("utf-8", errors="replace") for f in files)
    options = LintOptions()
    floor_s, floor_med = _best(lambda: floor(files), args.repeat)
    one_s, one_med = _best(lambda: lint_paths(files, options, jobs=1), args.repeat)
    two_s, two_med = _best(lambda: lint_paths(files, options, jobs=2), args.repeat)
    print(f"tree: {', '.join(trees)}")
    print(f"files: {len(files)} ({mention} mention flax)")
    print(f"{'':18}{'best s':>8}{'median s':>10}{'vs floor':>10}")
    print(f"{'floor (read+parse)':18}{floor_s:8.2f}{floor_med:10.2f}{1.0:10.2f}")
    print(f"{'lint --jobs 1':18}{one_s:8.2f}{one_med:10.2f}{one_s / floor_s:10.2f}")
    print(f"{'lint --jobs 2':18}{two_s:8.2f}{two_med:10.2f}{two_s / floor_s:10.2f}")


if __name__ == "__main__":
    main()
