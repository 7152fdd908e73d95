"""`rewrite --emit-checks` over every package of the development corpus, with no examples
file: how many converted classes get a test, how many of those tests find example inputs
in the code alone, and what the tests that run say.

    python benchmarks/corpus_checks.py [CORPUS_DIR] [--package P ...] [--out DIR] [--no-run]
                                       [--timeout S] [--reasons]

Per package: `nnx-migrate rewrite PKG --output-dir OUT/PKG/nnx --emit-checks
OUT/PKG/test_checks.py` (in this process; the rewrite imports no jax), then `nnx-migrate
check --from OUT/PKG/test_checks.py --json` in a subprocess (one per package, killed after
`--timeout` seconds; a package with no init-site example runs none: without one, no
parent gives an example either). Where a case's example comes from is read off each outcome: an init
site of the code (`file.py:LINE`), the inputs a parent passes it, or none. `--reasons`
prints, per package, why each test that could not run did not (grouped by the first line
of the error, with the classes).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

COLUMNS = ("tests", "from an init site", "from a parent's call", "no example", "equivalent", "not equivalent",
           "could not run")


def packages(corpus: Path) -> list[str]:
    return sorted(p.name for p in corpus.iterdir() if p.is_dir() and (any(p.rglob("*.py")) or p.name == "flax-docs"))


def emit(corpus: Path, package: str, out: Path) -> Path:
    from nnx_migrate.cli import main

    root = corpus / package
    if package == "flax-docs":
        # the guide's Linen snippets, one file per section (benchmarks/guide_snippets.py)
        from guide_snippets import extract

        root = out / "_guide_sources"
        extract(corpus / package / "linen_to_nnx.rst", root)
    checks = out / "test_checks.py"
    main(["rewrite", str(root), "--output-dir", str(out / "nnx"), "--emit-checks", str(checks), "-q"])
    return checks


def run_checks(checks: Path, timeout: float) -> list[dict] | str:
    """The JSON outcomes of `check --from`, or why there are none."""
    try:
        done = subprocess.run([sys.executable, "-m", "nnx_migrate", "check", "--from", str(checks), "--json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return f"check --from exited {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ''}"


def reason(message: str) -> str:
    """A short, groupable cause of a test that could not run."""
    missing = re.search(r"No module named '([\w.]+)'", message)
    if missing:
        return f"imports {missing.group(1).split('.')[0]} (not importable here)"
    text = message.split(": could not run: ", 1)[-1].splitlines()[0]
    return re.sub(r"\d+", "N", text)[:160]


def kind(outcome: dict) -> str:
    if outcome["verdict"] == "no example":
        return "no example"
    return "from a parent's call" if outcome["example"].startswith("the inputs ") else "from an init site"


def measure(corpus: Path, names: list[str], out: Path, run: bool, timeout: float):
    rows, reasons = {}, {}
    for package in names:
        checks = emit(corpus, package, out / package)
        from nnx_migrate.checks.running import load_checks_file

        cases, _ = load_checks_file(checks)
        row = Counter(tests=len(cases))
        row["from an init site"] = sum(1 for case in cases if case.get("inputs"))
        if run and not row["from an init site"]:
            # no init site: no parent example either, and no examples file is given
            row["no example"] = row["tests"]
            rows[package] = row
            continue
        outcomes = run_checks(checks, timeout) if run and cases else []
        if isinstance(outcomes, str):
            row["could not run"] = row["from an init site"]
            reasons[package] = {outcomes: ["(every case)"]}
            rows[package] = row
            continue
        if outcomes:
            row["from an init site"] = 0
        grouped = defaultdict(list)
        for outcome in outcomes:
            row[kind(outcome)] += 1
            if outcome["verdict"] == "no example":
                continue
            row[outcome["verdict"]] += 1
            if outcome["verdict"] != "equivalent":
                grouped[reason(outcome["message"]) if outcome["verdict"] == "could not run"
                        else f"not equivalent: {outcome['first_diverging_submodule']}"].append(outcome["class"])
        rows[package], reasons[package] = row, dict(grouped)
    return rows, reasons


def render(rows: dict) -> str:
    lines = ["| package | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    total = Counter()
    for package, row in rows.items():
        lines.append(f"| {package} | " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
        total.update(row)
    lines.append("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=str(ROOT / ".corpus"))
    parser.add_argument("--package", action="append", help="only this package (repeatable; default: all)")
    parser.add_argument("--out", help="keep the converted trees and checks here (default: a temporary folder)")
    parser.add_argument("--no-run", action="store_true", help="emit and count the init-site examples only")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for one package's checks")
    parser.add_argument("--reasons", action="store_true", help="why each test that did not pass did not")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: run ../shared/corpus/get-dev-corpus.sh {corpus}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nnx-corpus-checks-"))
    rows, reasons = measure(corpus, args.package or packages(corpus), out, not args.no_run, args.timeout)
    print(render(rows))
    if args.reasons:
        for package, grouped in reasons.items():
            for why, classes in sorted(grouped.items(), key=lambda item: -len(item[1])):
                print(f"{package}: {len(classes)} x {why}: {', '.join(classes)}")
    print(f"\nchecks and converted trees: {out}")
    return 1 if any(row["not equivalent"] for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
