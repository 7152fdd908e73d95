"""The whole-program fixtures in fixtures/training/ and how to run them side by side.

A case is `<case>.in.py` (Linen) with one golden output per train style:
`<case>.out.py` (flat-state, the default) and `<case>.nnx_jit.out.py`. Every program
defines `create_train_state(key, learning_rate)`, `synthetic_batches(key, steps)`,
`train(state, batches, *TRAIN_ARGS)` and `evaluate(state, batches)`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path

from nnx_migrate.equivalence.loading import load_python_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "training"
STYLES = {"flat-state": ".out.py", "nnx-jit": ".nnx_jit.out.py"}


# Fewer cases than this means a folder was emptied or moved: the glob would then collect
# nothing and every test over it would pass vacuously.
MIN_CASES = 10


def cases() -> list[str]:
    found = sorted(p.name[: -len(".in.py")] for p in FIXTURES.glob("*.in.py"))
    assert len(found) >= MIN_CASES, f"{FIXTURES}: {len(found)} cases, expected at least {MIN_CASES}"
    return found


def runnable_cases() -> list[str]:
    """Cases that train a TrainState on one device (`todo_*` document what is left to a
    person, `noop_*` stay as they are, functional ones train params pytrees, notebooks run
    cell by cell, `mesh_*` need four devices: test_training_mesh_programs.py runs them)."""
    return [
        case
        for case in cases()
        if not case.startswith(("todo_", "noop_", "mesh_")) and case not in functional_cases() + notebook_cases()
    ]


def mesh_cases() -> list[str]:
    """Programs sharded over a 2x2 device mesh (same interface as the runnable cases)."""
    return [case for case in cases() if case.startswith("mesh_")]


def functional_cases() -> list[str]:
    """Programs of plain optax loops on params pytrees (training/functional.py): each
    names its `(model, variables)` module-level pairs in `PAIRS` and defines
    `synthetic_batches(key, steps)`, `train(batches, key) -> (losses, final params)` and
    `evaluate(final, batches)`."""
    return [case for case in cases() if "\nPAIRS = " in (FIXTURES / f"{case}.in.py").read_text()]


def notebook_cases() -> list[str]:
    """Notebooks exported as scripts (training/notebook.py): `# %%` cells run in order at
    import; `NOTEBOOK` names each `(model, variables)` pair whose Linen variables the test
    copies into the converted model after the cell that makes them."""
    return [case for case in cases() if "\nNOTEBOOK = " in (FIXTURES / f"{case}.in.py").read_text()]


def runnable_pairs() -> list[tuple[str, str]]:
    """(case, style) of the runnable cases that convert with no TODO in that style (a
    construct may be supported in one style only: pmap over the flat-state pytree)."""
    return [(case, style) for case in runnable_cases() for style in STYLES if not expected_todos(case, style)]


def expected_todos(case: str, style: str = "flat-state") -> str:
    """`<case>.todos.txt`, or for nnx-jit `<case>.nnx_jit.todos.txt` where it differs."""
    own = FIXTURES / f"{case}.nnx_jit.todos.txt"
    if style == "nnx-jit" and own.exists():
        return own.read_text()
    path = FIXTURES / f"{case}.todos.txt"
    return path.read_text() if path.exists() else ""


def output_path(case: str, style: str) -> Path:
    return FIXTURES / f"{case}{STYLES[style]}"


# Fixture programs are imported as fresh modules, the way `nnx-migrate check` does.
load_module = load_python_file


def linen_variables(state) -> dict:
    variables = {"params": state.params}
    if hasattr(state, "batch_stats"):
        variables["batch_stats"] = state.batch_stats
    return variables


# Fields of flax.training.train_state.TrainState, and the model state NNX keeps in the model.
_BASE_FIELDS = ("step", "apply_fn", "params", "tx", "opt_state", "batch_stats")


def own_fields(linen_state) -> list[str]:
    """The fields a Linen TrainState subclass adds (besides `batch_stats`), in order."""
    import dataclasses

    return [f.name for f in dataclasses.fields(linen_state) if f.name not in _BASE_FIELDS]


def start_from_linen_weights(nnx_state, linen_state):
    """The converted program's state, with the Linen program's initial weights copied in
    through the equivalence harness's weight map (exact names, nothing guessed)."""
    from nnx_migrate.equivalence import map_weights

    model, optimizer = nnx_state.merge()
    variables = linen_variables(linen_state)
    weight_map = map_weights(variables, model, match="names")
    assert weight_map.complete, weight_map.problems()
    weight_map.load(variables)
    return nnx_state.updated(model, optimizer), weight_map


SPLIT = FIXTURES / "split_program"


@contextlib.contextmanager
def program_folder(folder: Path, module: str = "train"):
    """Imports `folder/<module>.py` with `folder` first on sys.path and its sibling modules
    fresh, so the Linen and converted copies of a multi-file program never mix."""
    siblings = {p.stem for p in folder.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in siblings}
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
