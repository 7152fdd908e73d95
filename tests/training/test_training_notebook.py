"""Notebooks exported as scripts (training/notebook.py), run cell by cell side by side with
their Linen originals: after the cell that makes Linen's variables, they are copied into
the converted model (the harness's weight map), so every later cell starts from the same
weights; then the module-level `apply` before and after training, the loss at every step of
the module-level loop, the step count, every parameter and BatchNorm statistic agree to
float32 round-off, with identical Dropout masks, in both train styles and NNX modes."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

from training_programs import FIXTURES, STYLES, linen_variables, notebook_cases, output_path

RTOL, ATOL = 1e-5, 1e-6
PAIRS = [(case, style) for case in notebook_cases() for style in STYLES]


def _cells(path):
    """The `# %%` cells of a script, each compiled with the file's own line numbers."""
    text = path.read_text()
    starts = [0, *(m.start() for m in re.finditer(r"^# %%", text, re.M))]
    return [compile("\n" * text[:a].count("\n") + text[a:b], str(path), "exec") for a, b in zip(starts, [*starts[1:], len(text)], strict=True) if a < b]


def _run(path, side, on_cell):
    """Runs the cells in one namespace, calling `on_cell(namespace)` after each."""
    from nnx_migrate.equivalence.identical_dropout import identical_dropout

    # a module of its own (dataclasses, Linen's included, look their module up by name)
    module = types.ModuleType(f"notebook_{side}_{path.stem.replace('.', '_')}")
    sys.modules[module.__name__] = module
    try:
        for cell in _cells(path):
            # each cell draws its masks from the start of the sequence: Linen's `tabulate`
            # and `init` draw keys (unused in eval mode) that the NNX code does not
            with identical_dropout(side):
                exec(cell, module.__dict__)
            on_cell(module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.__dict__


_LINEN_RUNS: dict[str, dict] = {}


def _linen_run(case):
    """Each Linen notebook run once (shared by the styles and modes)."""
    if case not in _LINEN_RUNS:
        _LINEN_RUNS[case] = _run(FIXTURES / f"{case}.in.py", "linen", lambda ns: None)
    return _LINEN_RUNS[case]


def test_every_notebook_case_has_cells():
    assert "notebook_trainstate" in notebook_cases()
    assert len(_cells(FIXTURES / "notebook_trainstate.in.py")) >= 4


def _module_classes(root: type) -> list[type]:
    found, stack = [], [root]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("case,style", PAIRS, ids=[f"{c}:{s}" for c, s in PAIRS])
def test_notebook_trains_like_linen(case, style, nnx_mode, monkeypatch):
    from flax import nnx

    from nnx_migrate.equivalence import map_weights

    tabulate = nnx.tabulate

    def tabulate_and_tidy(*args, **kwargs):
        # `nnx.tabulate` itself fails in tree mode on flax 0.12.8 (AttributeError: 'RngStream'
        # object has no attribute '_nnx_tabulate_id'), whatever the model; the same call
        # in graph mode tabulates the model built in tree mode. And it leaves the methods
        # it wrapped in each class's own dict (`Linear.sow`), where a later
        # `nnx.capture(..., method_outputs=...)` of another test wraps `sow` itself and
        # recurses: the classes' dicts are put back as they were.
        classes = _module_classes(nnx.Module)
        before = {cls: set(vars(cls)) for cls in classes}
        try:
            with nnx.set_graph_mode(True), nnx.set_graph_updates(True):
                return tabulate(*args, **kwargs)
        finally:
            for cls, names in before.items():
                for name in set(vars(cls)) - names:
                    delattr(cls, name)

    monkeypatch.setattr(nnx, "tabulate", tabulate_and_tidy)

    linen = _linen_run(case)
    copied = []

    def copy_weights(ns):
        for model_name, variables_name in linen["NOTEBOOK"]:
            if model_name in ns and (model_name, variables_name) not in copied:
                weight_map = map_weights(linen[variables_name], ns[model_name], match="names")
                assert weight_map.complete, weight_map.problems()
                weight_map.load(linen[variables_name])
                copied.append((model_name, variables_name))

    # Linen's variables exist once the cell that builds the model has run: the converted
    # model is built in that same cell
    converted = _run(output_path(case, style), "nnx", copy_weights)
    assert copied == [tuple(p) for p in linen["NOTEBOOK"]]
    assert "variables" not in converted  # the model holds them now

    np.testing.assert_allclose(converted["initial_logits"], linen["initial_logits"], rtol=RTOL, atol=ATOL, err_msg="apply before training")
    np.testing.assert_allclose(converted["losses"], linen["losses"], rtol=RTOL, atol=ATOL, err_msg="loss per step")
    assert len(set(np.round(linen["losses"], 4))) > 1, "the loss must change from step to step"
    state = converted["state"]
    assert int(state.optimizer.step[...]) == int(linen["state"].step) == len(linen["losses"])
    final = linen_variables(linen["state"])
    weight_map = map_weights(final, state.model, match="names")
    assert weight_map.complete, weight_map.problems()
    assert {pair.collection for pair in weight_map.pairs} == {"params", "batch_stats"}
    for pair in weight_map.pairs:
        np.testing.assert_allclose(np.asarray(pair.variable[...]), np.asarray(pair.linen_value(final)), rtol=1e-4, atol=1e-5, err_msg=pair.linen_name)
    np.testing.assert_allclose(converted["final_logits"], linen["final_logits"], rtol=RTOL, atol=ATOL, err_msg="apply after training")
