"""Counts unreported breaks: converted corpus code that raises at a line no
`# TODO(nnx-migrate)` marks.

    python benchmarks/corpus_breaks.py [CORPUS_DIR] [--package P ...] [--out DIR] [-v]

Converts every package of the development corpus (each as one run, as
`benchmarks/corpus.py` does), then, one subprocess per package, builds every converted
class (fully converted or with TODO sites) that has an example and runs it through the
equivalence harness against its Linen original (`compare`: the NNX class built from the
Linen fields, input sizes and the sizes left as arguments read off the Linen shapes).

An example is the class's entry in `benchmarks/corpus_examples.py`, else one found by
probing: required fields filled by their annotation (int 4, float 0.5, bool False,
Optional None) and each required positional input tried as (2, 4), (2, 3, 4),
(2, 4, 4, 4), (4,) or int tokens in [0, 4) until Linen's own `init` runs on it. A class
where no candidate runs in Linen has no example (counted, never a break). Probed
examples run the harness's inference pass only (outputs compared; no gradient and no
train-mode pass: a break shows in the construction and the call); hand-written ones get
the whole proof (outputs, gradients, train-mode state).

Files are imported as their package's modules: the subprocess imports the Linen originals
with the package's corpus folder first on sys.path, drops those modules, then imports the
converted tree (a copy of the package with the converted files written over it) the same
way, so files that import their own package run. A file whose import fails (a dependency
not installed here: tensorflow, gin, chex, einops...) makes its classes "not runnable".

An exception while building or running the NNX side is located at the innermost frame in
a converted file: a **reported** break when that statement (or a statement enclosing it,
or a converted caller's statement) carries a `# TODO(nnx-migrate)` comment, else an
**unreported** break, listed with file:line and the exception. Exceptions with no frame in
converted code (the harness could not build the class: a size it could not read off the
Linen shapes, a Linen field holding a submodule) are counted as "harness could not build".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus import PACKAGES, convert_package  # noqa: E402

ALL_PACKAGES = PACKAGES + (
    "nanodl", "dopamine-rl", "memorax", "gemma", "clip-jax", "brax", "jax-md", "sequence-layers",
)


# ---------------------------------------------------------------------------------------
# parent: convert, dispatch, tabulate


def convert(corpus: Path, package: str, out: Path) -> tuple[Path, list[dict]]:
    """Converts `package` into `out/package` (a full copy with the converted files written
    over it); returns (original root, classes to build)."""
    target = out / package
    if package != "flax-docs":
        shutil.copytree(corpus / package, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "*.whl", "*.tar.gz"))
    root, _files, results, _ = convert_package(corpus, package, out)
    classes = []
    for result in results:
        rel = Path(result.path).relative_to(root).as_posix()
        for cls in result.classes:
            classes.append({"rel": rel, "name": cls.name, "status": cls.status,
                            "key": f"{package}/{rel}:{cls.name}"})
    return root, classes


def run_package(package: str, root: Path, converted: Path, classes: list[dict], timeout: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="nnx-breaks-") as tmp:
        job, answer = Path(tmp) / "job.json", Path(tmp) / "answer.json"
        job.write_text(json.dumps({"package": package, "original": str(root), "converted": str(converted),
                                   "classes": classes}))
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
        try:
            subprocess.run([sys.executable, __file__, "--worker", str(job), str(answer)], env=env,
                           timeout=timeout, check=False, cwd=ROOT)
        except subprocess.TimeoutExpired:
            pass
        done = json.loads(answer.read_text()) if answer.exists() else []
    seen = {row["key"] for row in done}
    # a worker that died or ran out of time leaves its remaining classes unbuilt: counted
    return done + [{**c, "outcome": "not_runnable", "detail": "the package's worker stopped before it"}
                   for c in classes if c["key"] not in seen]


def table(rows_by_package: dict[str, list[dict]]) -> str:
    lines = ["| package | Linen classes | fully converted | converted, with an example | ran: same numbers | ran: differs | "
             "failed at a TODO line | failed unreported | harness could not build | timed out | no example | not runnable here |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    total = defaultdict(int)
    for package, rows in rows_by_package.items():
        c = defaultdict(int)
        for row in rows:
            c[row["outcome"]] += 1
        c["classes"] = len(rows)
        c["full"] = sum(row["status"] == "converted" for row in rows)
        c["example"] = len(rows) - c["no_example"] - c["not_runnable"] - c["conversion_failed"]
        for k, v in c.items():
            total[k] += v
        lines.append(_row(package, c))
    lines.append(_row("**all**", total))
    return "\n".join(lines)


def _row(name, c) -> str:
    return (f"| {name} | {c['classes']} | {c['full']} | {c['example']} | {c['proven']} | {c['differs']} | {c['reported']} | "
            f"{c['unreported']} | {c['harness']} | {c['timeout']} | {c['no_example']} | {c['not_runnable']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=str(ROOT / ".corpus"))
    parser.add_argument("--package", action="append", choices=ALL_PACKAGES, help="only this package (repeatable)")
    parser.add_argument("--out", help="keep the converted trees here (default: a temporary folder)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per package's worker")
    parser.add_argument("--json", help="write every class's outcome here")
    parser.add_argument("--parallel", type=int, default=1, help="packages built at once (one subprocess each)")
    parser.add_argument("--table-from", help="only print the table of a --json file written before")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every class's outcome")
    args = parser.parse_args(argv)
    if args.table_from:
        print(table(json.loads(Path(args.table_from).read_text())))
        return 0
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: run ../shared/corpus/get-dev-corpus.sh {corpus}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nnx-breaks-"))
    from concurrent.futures import ThreadPoolExecutor

    rows_by_package = {}
    pending = {}
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for package in args.package or ALL_PACKAGES:
            if not (corpus / package).is_dir():
                continue
            root, classes = convert(corpus, package, out)
            built = [c for c in classes if c["status"] != "failed"]
            failed = [{**c, "outcome": "conversion_failed", "detail": ""} for c in classes if c["status"] == "failed"]
            pending[package] = (pool.submit(run_package, package, root, out / package, built, args.timeout), failed)
        for package, (future, failed) in pending.items():
            rows = future.result() + failed
            rows_by_package[package] = rows
            for row in sorted(rows, key=lambda r: r["key"]):
                if args.verbose or row["outcome"] == "unreported":
                    print(f"{row['outcome']:12} {row['key']}: {row.get('detail', '')}", flush=True)
    print()
    print(table(rows_by_package))
    print(f"\nconverted trees: {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows_by_package, indent=1))
    return 1 if any(r["outcome"] == "unreported" for rows in rows_by_package.values() for r in rows) else 0


if __name__ == "__main__" and "--worker" not in sys.argv:
    sys.exit(main())

if __name__ == "__main__":
    from corpus_breaks_worker import work

    work(Path(sys.argv[2]), Path(sys.argv[3]))
