"""Converts the development corpus and prints, per package, how many Linen module classes
were fully converted and proven equivalent by the harness, fully converted without a
runnable example here, converted with TODO sites, or failed.

    python benchmarks/corpus.py [CORPUS_DIR] [--jobs N] [--no-prove] [--out DIR]

CORPUS_DIR is what ../shared/corpus/get-dev-corpus.sh downloads (default: .corpus); its
flax-docs package is the Linen side of Flax's Linen-to-NNX guide, one file per section
(benchmarks/guide_snippets.py). Each
class with an entry in benchmarks/corpus_examples.py is built from its Linen fields and
compared on example inputs with `nnx_migrate.equivalence.compare` (weights copied, outputs,
gradients and train-mode state compared). A class whose only TODO sites are sizes the
rewrite left as constructor arguments (`dense_0_in_features`) is proven the same way: the
harness reads those sizes off the Linen variables' shapes. Proofs import the ORIGINAL file and its
converted copy, so only classes whose files import nothing but flax/jax can be proven
here (not diffusers' files that import diffusers' own package, nor jax_resnet's relative
imports).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from nnx_migrate.equivalence.loading import load_python_file  # noqa: E402
from nnx_migrate.files import iter_python_files  # noqa: E402
from nnx_migrate.rewrite.runner import rewrite_files  # noqa: E402

PACKAGES = ("flax-examples", "diffusers", "jax_resnet", "evojax", "flax-docs")
# the rewrite's TODO for an input size it left as a constructor argument
SIZE_ARGUMENT = "it became a constructor argument"


def class_sites(source: str, todos, name: str, line: int) -> list:
    """The file's TODO sites inside the class `name` defined at `line` (original lines)."""
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name and node.lineno <= line <= node.end_lineno:
            return [site for site in todos if node.lineno <= site.line <= node.end_lineno]
    return list(todos)


def only_sizes_left(source: str, todos, cls) -> bool:
    """A class converted but for sizes left as constructor arguments: checkable."""
    sites = class_sites(source, todos, cls.name, cls.line)
    return bool(sites) and all(SIZE_ARGUMENT in site.why for site in sites)

def package_root(corpus: Path, package: str, out: Path) -> Path:
    """The folder the package's files are converted from (flax-docs: the guide's Linen
    snippets, one file per section, extracted under `out` by benchmarks/guide_snippets.py)."""
    if package != "flax-docs":
        return corpus / package
    from guide_snippets import extract

    root = out / "_guide_sources"
    extract(corpus / package / "linen_to_nnx.rst", root)
    return root


def convert_package(corpus: Path, package: str, out: Path, jobs: int = 1):
    """Converts one package as one run; writes each changed file to `out/package/<same
    path>`. Returns (root, files, results, seconds)."""
    root = package_root(corpus, package, out)
    files = list(iter_python_files([root]))
    start = time.perf_counter()
    results = rewrite_files(files, jobs=jobs)
    elapsed = time.perf_counter() - start
    for result in results:
        if result.new_text is not None:
            target = out / package / Path(result.path).relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(result.new_text)
    return root, files, results, elapsed


def _input(spec, key):
    import jax
    import jax.numpy as jnp

    if isinstance(spec, list):
        keys = jax.random.split(key, len(spec))
        return tuple(_input(s, k) for s, k in zip(spec, keys, strict=True))
    if spec and spec[0] == "int":
        return jax.random.randint(key, spec[1], 0, spec[2])
    if spec and spec[0] == "bool":
        return jax.random.bernoulli(key, 0.7, spec[1])
    if spec and spec[0] == "key":
        return jax.random.key(1)
    return jax.random.normal(key, spec, jnp.float32)


def prove(key: str, example: dict, original: Path, converted: Path) -> tuple[bool, str]:
    import jax

    from nnx_migrate.equivalence import compare

    _, cls = key.rsplit(":", 1)
    tag = str(abs(hash(key)))
    linen_mod = load_python_file(original, f"corpus_linen_{tag}")
    nnx_mod = load_python_file(converted, f"corpus_nnx_{tag}")
    keys = jax.random.split(jax.random.key(0), len(example["inputs"]))
    inputs = [_input(s, k) for s, k in zip(example["inputs"], keys, strict=True)]
    linen_instance = getattr(linen_mod, cls)(**example["fields"](linen_mod))
    result = compare(linen_instance, getattr(nnx_mod, cls), *inputs, call_kwargs=example.get("call_kwargs"))
    return result.ok, f"max |diff| {result.max_abs_diff:.2g}" if result.ok else str(result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=str(ROOT / ".corpus"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--no-prove", action="store_true", help="skip the equivalence proofs")
    parser.add_argument("--out", help="keep the converted tree here (default: a temporary folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each class and proof")
    parser.add_argument("--package", action="append", choices=PACKAGES, help="only this package (repeatable; default: all)")
    parser.add_argument("--training", action="store_true", help="also the example training programs (benchmarks/corpus_training.py)")
    parser.add_argument("--checks", action="store_true",
                        help="also `rewrite --emit-checks` on every package, run (benchmarks/corpus_checks.py)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: run ../shared/corpus/get-dev-corpus.sh {corpus}", file=sys.stderr)
        return 2
    from corpus_examples import EXAMPLES

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nnx-corpus-"))
    rows = {}
    proofs = []
    for package in args.package or PACKAGES:
        root = corpus / package
        if not root.is_dir():
            continue
        root, files, results, elapsed = convert_package(corpus, package, out, args.jobs)
        counts = defaultdict(int)
        counts["files"] = len(files)
        counts["seconds"] = elapsed
        for result in results:
            rel = Path(result.path).relative_to(root)
            target = out / package / rel
            if result.status == "failed":
                counts["failed_files"] += 1
            for cls in result.classes:
                counts["classes"] += 1
                key = f"{package}/{rel.as_posix()}:{cls.name}"
                sizes_only = cls.status == "todo" and only_sizes_left(result.old_text or Path(result.path).read_text(errors="replace"), result.todos, cls)
                if cls.status == "converted" or sizes_only:
                    counts["sizes_only"] += sizes_only
                    if key in EXAMPLES and not args.no_prove:
                        proofs.append((package, key, Path(result.path), target))
                    else:
                        counts["converted_unproven"] += 1
                elif cls.status == "todo":
                    counts["todo"] += 1
                else:
                    counts["failed"] += 1
                if args.verbose:
                    print(f"{'sizes' if sizes_only else cls.status:9} {cls.todos:3} {key}")
        rows[package] = counts
    for package, key, original, converted in proofs:
        try:
            ok, detail = prove(key, EXAMPLES[key], original, converted)
        except Exception as exc:  # a proof that cannot run is a failed proof, never a pass
            ok, detail = False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        rows[package]["proven" if ok else "proof_failed"] += 1
        if args.verbose or not ok:
            print(f"{'PROVEN' if ok else 'NOT PROVEN'} {key}: {detail.splitlines()[0] if ok else detail}")
    print()
    print("| package | files | classes | converted, proven equivalent | converted, no runnable example | of those two: sizes left as arguments | converted with other TODO sites | proof failed | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    total = defaultdict(float)
    for package, c in rows.items():
        print(f"| {package} | {c['files']} | {c['classes']} | {c['proven']} | {c['converted_unproven']} | {c['sizes_only']} | {c['todo']} | {c['proof_failed']} | {c['failed']} |")
        for k, v in c.items():
            total[k] += v
    t = {k: int(v) for k, v in total.items()}
    print(f"| **all** | {t.get('files', 0)} | {t.get('classes', 0)} | {t.get('proven', 0)} | {t.get('converted_unproven', 0)} | {t.get('sizes_only', 0)} | {t.get('todo', 0)} | {t.get('proof_failed', 0)} | {t.get('failed', 0)} |")
    print(f"\nconverted tree: {out}")
    if args.training:
        import corpus_training

        print("\n" + corpus_training.render(corpus_training.run(corpus, "flat-state"), "flat-state"))
    if args.checks:
        import corpus_checks

        # examples from the code alone, and what the emitted checks say, per package
        checks_rows, _ = corpus_checks.measure(corpus, corpus_checks.packages(corpus), out / "_checks", True, 1800)
        print("\n" + corpus_checks.render(checks_rows))
    return 1 if total.get("proof_failed") else 0


if __name__ == "__main__":
    sys.exit(main())
