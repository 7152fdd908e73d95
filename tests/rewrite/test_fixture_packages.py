"""Golden fixture packages: `fixtures/modules/packages/<case>/in/` (a package of several
modules) rewrites, as one run, to exactly `out/`; every class with an example computes
what its Linen original computes. Classes here reach each other across files: bases of
another module of the run, named directly or through the module (`types.Layer`), and
children built as `layers.Block(...)`. The classes are proven in NNX's graph and tree mode.

Each module may define `EXAMPLES` as the single-file fixtures do; a string instead of an
example says why the class is not run alone (a base class with no `__call__`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import sys
from pathlib import Path

import pytest

from nnx_migrate.rewrite.runner import rewrite_files

from rewrite_fixture_models import FIXTURES, make_input

PACKAGES = FIXTURES / "packages"
CASES = sorted(p.name for p in PACKAGES.iterdir() if (p / "in").is_dir())


def _sources(case: str, side: str) -> list[Path]:
    return sorted((PACKAGES / case / side).rglob("*.py"))


def _examples(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    return next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "EXAMPLES"), {})


@pytest.mark.parametrize("case", CASES)
def test_package_rewrites_to_golden_output(case):
    root = PACKAGES / case / "in"
    results = rewrite_files(_sources(case, "in"))
    assert {Path(r.path).relative_to(root) for r in results} == {p.relative_to(PACKAGES / case / "out") for p in _sources(case, "out")}
    for result in results:
        assert result.error is None and result.todos == [], result.path
        expected = (PACKAGES / case / "out" / Path(result.path).relative_to(root)).read_text()
        assert result.new_text == expected, result.path


@pytest.mark.parametrize("case", CASES)
def test_package_output_is_a_fixed_point(case):
    for result in rewrite_files(_sources(case, "out")):
        assert result.status in ("unchanged", "skipped"), result.path


@pytest.mark.parametrize("case", CASES)
def test_every_class_has_an_example(case):
    for path in _sources(case, "in"):
        classes = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}
        assert set(_examples(path)) == classes, path


@contextlib.contextmanager
def _package_on_path(folder: Path):
    """`folder` first on sys.path with its packages imported fresh, so the Linen and the
    converted copies of a package never mix."""
    tops = {p.name for p in folder.iterdir() if p.is_dir() or p.suffix == ".py"} | {p.stem for p in folder.glob("*.py")}

    def ours(name: str) -> bool:
        return name.split(".")[0] in tops

    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _pairs():
    pairs = []
    for case in CASES:
        root = PACKAGES / case / "in"
        for path in _sources(case, "in"):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            pairs += [(case, module, name) for name, example in _examples(path).items() if isinstance(example, dict)]
    return pairs


PAIRS = _pairs()


@pytest.mark.parametrize("case,module,class_name", PAIRS, ids=[f"{c}:{m}.{n}" for c, m, n in PAIRS])
def test_converted_class_is_equivalent(case, module, class_name, nnx_mode):
    # (imported inside the test: the converted package takes the test's NNX mode)
    import jax

    from nnx_migrate.equivalence import compare

    with _package_on_path(PACKAGES / case / "in"):
        linen_mod = importlib.import_module(module)
        example = linen_mod.EXAMPLES[class_name]
        linen_instance = getattr(linen_mod, class_name)(**example["fields"])
    with _package_on_path(PACKAGES / case / "out"):
        nnx_class = getattr(importlib.import_module(module), class_name)
        keys = jax.random.split(jax.random.key(0), len(example["inputs"]))
        inputs = [make_input(spec, key) for spec, key in zip(example["inputs"], keys, strict=True)]
        result = compare(linen_instance, nnx_class, *inputs)
    assert result.ok, str(result)
    assert result.max_abs_diff <= 1e-5
