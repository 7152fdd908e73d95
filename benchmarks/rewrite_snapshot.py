"""Snapshots what the rewrite produces (status, new text, error, class outcomes, TODO
sites) over a fixed set of inputs, and compares a snapshot with an earlier one. A guard
for performance work: a faster rewrite must produce byte-identical results.

    python benchmarks/rewrite_snapshot.py save SNAPSHOT [--corpus DIR]
    python benchmarks/rewrite_snapshot.py compare SNAPSHOT [--corpus DIR]

Inputs: every file of the corpus (one `rewrite_files` run per top folder, as
benchmarks/corpus.py does), every fixtures/**/*.in.py through `rewrite_source` in both
train styles (and fixtures/training/split_program/in as one run), and the installed
site-packages files that mention Linen or a training-pass marker (one run per package).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import site
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnx_migrate.files import iter_python_files  # noqa: E402
from nnx_migrate.rewrite import rewrite_source  # noqa: E402
from nnx_migrate.rewrite.runner import rewrite_files  # noqa: E402
from nnx_migrate.rewrite.training.run import TRAIN_STYLES, might_train  # noqa: E402


def _record(result, root: Path | None = None) -> dict:
    return {
        "status": result.status,
        "new_text": result.new_text,
        "error": result.error,
        "classes": [dataclasses.asdict(c) for c in result.classes],
        "todos": [dataclasses.asdict(t) for t in result.todos],
    }


def _site_packages_groups() -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for base in map(Path, site.getsitepackages()):
        for path in sorted(base.rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if "linen" in text or (might_train(text) and path.relative_to(base).parts[0] in {"flax", "optax", "jax", "orbax", "chex"}):
                groups.setdefault(f"site:{path.relative_to(base).parts[0]}", []).append(path)
    return groups


def snapshot(corpus: Path) -> dict:
    out: dict[str, dict] = {}
    runs: dict[str, list[Path]] = {}
    if corpus.is_dir():
        for top in sorted(p for p in corpus.iterdir() if p.is_dir()):
            runs[f"corpus:{top.name}"] = list(iter_python_files([top]))
    runs["split_program"] = list(iter_python_files([ROOT / "fixtures/training/split_program/in"]))
    runs.update(_site_packages_groups())
    for name, files in runs.items():
        for style in TRAIN_STYLES if name == "split_program" else ("flat-state",):
            for result in rewrite_files(files, train_style=style):
                out[f"{name}:{style}:{result.path}"] = _record(result)
    for path in sorted((ROOT / "fixtures").rglob("*.in.py")):
        for style in TRAIN_STYLES:
            result = rewrite_source(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), train_style=style)
            out[f"fixture:{style}:{path.relative_to(ROOT)}"] = _record(result)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("snapshot")
    parser.add_argument("--corpus", default="/work/corpus")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    now = snapshot(Path(args.corpus))
    changed = sum(r["status"] == "changed" for r in now.values())
    print(f"{len(now)} results ({changed} changed) in {time.perf_counter() - start:.1f} s")
    if args.action == "save":
        Path(args.snapshot).write_text(json.dumps(now, indent=0, sort_keys=True))
        return 0
    before = json.loads(Path(args.snapshot).read_text())
    bad = 0
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            bad += 1
            print(f"DIFFERS: {key}")
            a, b = before.get(key) or {}, now.get(key) or {}
            for field in ("status", "error", "classes", "todos"):
                if a.get(field) != b.get(field):
                    print(f"  {field}: {a.get(field)!r}\n   -> {b.get(field)!r}")
            if a.get("new_text") != b.get("new_text"):
                diff = difflib.unified_diff((a.get("new_text") or "").splitlines(), (b.get("new_text") or "").splitlines(), lineterm="", n=1)
                print("\n".join(list(diff)[:40]))
    print("IDENTICAL" if not bad else f"{bad} results differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
