"""Writes the pytest file of `nnx-migrate rewrite --emit-checks` (no jax here)."""

from __future__ import annotations

import os
import pprint
from dataclasses import dataclass
from pathlib import Path

from nnx_migrate.checks.sites import Example, collect_examples


@dataclass
class ConvertedClass:
    name: str
    source: Path  # the user's file (the key of the examples file)
    linen: Path   # where the Linen original can be imported from after the run
    nnx: Path     # where the converted class is


_HEADER = '''"""Equivalence checks written by `nnx-migrate rewrite --emit-checks`.

One test per converted class: the Linen original and its NNX conversion get the same
weights and inputs and must agree (forward outputs, gradients, train-mode state), through
nnx_migrate.equivalence.compare. Example inputs come from the code's own `init` sites
(`example`), else from the inputs a parent passes the class, else from the EXAMPLES file;
a class without any fails and prints the line to add there.

Run with `pytest {name}` or `nnx-migrate check --from {name}`. Paths are relative to this
file's folder.
"""

from pathlib import Path

import pytest

from nnx_migrate.checks.running import run_case

'''

_FOOTER = '''

@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_nnx_matches_linen(case):
    outcome = run_case(case, CASES, Path(__file__).parent, EXAMPLES)
    if not outcome.ok:
        pytest.fail(outcome.message, pytrace=False)
'''


def _rel(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), base.resolve()).replace(os.sep, "/")


def build_cases(classes: list[ConvertedClass], sources: dict[str, str], checks_file: Path) -> list[dict]:
    """One case per class; `sources` is path -> the original text of every file of the run."""
    base = checks_file.resolve().parent
    by_name: dict[str, list[ConvertedClass]] = {}
    for cls in classes:
        by_name.setdefault(cls.name, []).append(cls)
    found: dict[tuple[str, str], Example] = {}
    for path, text in sources.items():
        for name, examples in collect_examples(text, set(by_name), _rel(Path(path), base)).items():
            owners = by_name[name]
            # a name defined in several files of the run: the site's own file, else unknown
            owner = owners[0] if len(owners) == 1 else next((c for c in owners if Path(c.source).resolve() == Path(path).resolve()), None)
            if owner is not None:
                found.setdefault((str(owner.source), name), examples[0])
    cases = []
    # ids name each class from the folder common to the run's classes: short, and unique
    top = Path(os.path.commonpath([str(Path(c.source).resolve().parent) for c in classes])) if classes else base
    for cls in classes:
        source = f"{_rel(cls.source, base)}::{cls.name}"
        case = {"id": f"{_rel(cls.source, top)}::{cls.name}",
                "source": source, "linen": f"{_rel(cls.linen, base)}::{cls.name}", "nnx": f"{_rel(cls.nnx, base)}::{cls.name}"}
        example = found.get((str(cls.source), cls.name))
        if example is not None:
            case.update(kwargs=example.kwargs, inputs=example.inputs, call=example.call, example=example.where)
        cases.append(case)
    return cases


def render(cases: list[dict], checks_file: Path, examples: Path | None) -> str:
    base = checks_file.resolve().parent
    examples_rel = _rel(examples, base) if examples else "nnx-examples.toml"
    text = _HEADER.format(name=checks_file.name)
    text += f"# Example inputs for the classes the code does not init with written shapes.\nEXAMPLES = {examples_rel!r}\n\n"
    text += "CASES = [\n"
    for case in cases:
        text += "    " + pprint.pformat(case, indent=4, width=96, sort_dicts=False).replace("\n", "\n    ") + ",\n"
    text += "]\n" + _FOOTER
    return text


def emit_checks(checks_file: Path, examples: Path | None, results, roots: list[Path], output_dir: Path | None, relative_target) -> int:
    """Writes the checks file (and, without `output_dir`, the originals copy beside it);
    returns the number of cases. `relative_target(path, roots)` places a file of the run
    under a folder as `--output-dir` does."""
    from nnx_migrate.files import atomic_write

    checks_file = Path(checks_file)
    originals = checks_file.resolve().parent / ".nnx-migrate" / "originals"
    sources: dict[str, str] = {}
    classes: list[ConvertedClass] = []
    for result in results:
        if result.status == "failed":
            continue
        text = result.old_text if result.old_text is not None else Path(result.path).read_text(encoding=result.encoding)
        sources[result.path] = text
        if output_dir is None:
            # `--write` replaces the file: the Linen original is kept beside the checks
            copy = originals / relative_target(Path(result.path), roots)
            copy.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(copy, text, result.encoding)
        if result.status != "changed":
            continue
        for outcome in result.classes:
            if outcome.status not in ("converted", "todo"):
                continue
            source = Path(result.path)
            placed = relative_target(source, roots)
            linen = source if output_dir is not None else originals / placed
            nnx = Path(output_dir) / placed if output_dir is not None else source
            classes.append(ConvertedClass(outcome.name, source, linen, nnx))
    cases = build_cases(classes, sources, checks_file)
    checks_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(checks_file, render(cases, checks_file, examples))
    return len(cases)
