"""Placing a Linen checkpoint's leaves on the NNX model and its optimizer.

Model variables go where the equivalence harness puts them (`equivalence.weight_mapping`,
by the naming convention of `nnx_migrate.naming`): `params/Dense_0/kernel` ->
`dense_0.kernel` (an `nnx.Param`), `batch_stats/BatchNorm_0/mean` -> `batch_norm_0.mean`
(an `nnx.BatchStat`), `params/layers_2/...` -> `layers[2]...` (an `nnx.List`), custom
collections to the Variable of the same path; a scanned stack keeps its leading axis.

Optimizer state: `nnx.Optimizer(model, tx, wrt=nnx.Param).opt_state` is `tx.init` of
the model's Params, so it has Linen's optax nesting (a chain's states by position,
`count`, `mu`, `nu`, a schedule's `count`) with every parameter-shaped part keyed by NNX
paths instead of Linen's. Each Linen optimizer leaf is renamed by finding, at the end of
its path, a Linen parameter path (`1/0/mu/Dense_0/kernel` -> `opt_state[1][0].mu.dense_0.kernel`);
the rest of the path is the optax nesting and is kept. The step becomes the optimizer's
(uint32 in NNX, int32 in Linen's TrainState).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nnx_migrate.checkpoint.layout import LinenState
from nnx_migrate.equivalence.errors import EquivalenceSetupError
from nnx_migrate.equivalence.nnx_tree import format_nnx_path
from nnx_migrate.equivalence.weight_mapping import WeightMap, map_weights

NNXPath = tuple[Any, ...]


@dataclass
class Plan:
    """Every value to write and where, or the problems that prevent it."""

    model_values: list[tuple[nnx.Variable, Any]] = field(default_factory=list)
    optimizer_values: dict[NNXPath, Any] = field(default_factory=dict)  # path in nnx.state(optimizer)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaves: int = 0  # Linen leaves placed


def plan_model(state: LinenState, model: nnx.Module, plan: Plan) -> WeightMap | None:
    try:
        weight_map = map_weights(state.variables, model, match="names")
    except EquivalenceSetupError as exc:
        plan.problems.append(str(exc))
        return None
    plan.problems += weight_map.problems()
    plan.notes += weight_map.notes
    for pair in weight_map.pairs:
        if pair.linen_name not in weight_map.broken:
            plan.model_values.append((pair.variable, pair.linen_value(state.variables)))
    plan.leaves += len(weight_map.pairs)
    for key, value in state.extras.items():
        plan.problems.append(
            f"checkpoint entry {key!r} {_describe(value)}: not a model collection, optimizer state or "
            f"step; drop it with ignore=({key!r},) (CLI: --ignore {key})")
    return weight_map


def renamed_optimizer_state(opt_state: Mapping[str, Any], weight_map: WeightMap) -> dict[NNXPath, tuple[str, Any]]:
    """{path in nnx.state(optimizer): (Linen name, value)} for every Linen optimizer leaf."""
    params = {pair.linen_path: pair for pair in weight_map.param_pairs()}
    renamed: dict[NNXPath, tuple[str, Any]] = {}
    for path, value in _flat(opt_state):
        nnx_path = next(
            (tuple(_index(p) for p in path[:i]) + params[path[i:]].nnx_path
             for i in range(len(path)) if path[i:] in params),
            tuple(_index(p) for p in path))
        renamed[("opt_state",) + nnx_path] = ("opt_state/" + "/".join(path), value)
    return renamed


def plan_optimizer(state: LinenState, weight_map: WeightMap, optimizer: nnx.Optimizer | None, plan: Plan) -> None:
    """Optimizer values checked against `optimizer`'s own state, or (None) against the
    model's parameter shapes only, for writing without an optimizer object."""
    if state.opt_state is None:
        if optimizer is not None:
            plan.problems.append("the checkpoint holds no optimizer state (opt_state) to put in the optimizer")
        return
    renamed = renamed_optimizer_state(state.opt_state, weight_map)
    if optimizer is None:
        shapes = {pair.nnx_path: pair.variable.get_value() for pair in weight_map.param_pairs()}
        for path, (name, value) in renamed.items():
            expected = next((shapes[path[i:]] for i in range(len(path)) if path[i:] in shapes), None)
            if expected is not None and _problem(name, path, value, expected, plan):
                continue
            plan.optimizer_values[path] = jnp.asarray(value)
    else:
        targets = {tuple(path): variable for path, variable in nnx.to_flat_state(nnx.state(optimizer))
                   if tuple(path) != ("step",)}
        for path, (name, value) in renamed.items():
            if path not in targets:
                plan.problems.append(f"Linen optimizer leaf with no NNX counterpart: {name} {_describe(value)} "
                                     f"(no {format_nnx_path(path)} in the NNX optimizer)")
            elif not _problem(name, path, value, targets[path].get_value(), plan):
                plan.optimizer_values[path] = jnp.asarray(value)
        for path, variable in targets.items():
            if path not in renamed:
                plan.problems.append(f"NNX optimizer variable not filled from the checkpoint: "
                                     f"{format_nnx_path(path)} {_describe(variable.get_value())}")
    plan.leaves += len(renamed)
    if state.step is not None:
        step = np.asarray(state.step)
        if step.shape != () or not np.issubdtype(step.dtype, np.integer) or int(step) < 0:
            plan.problems.append(f"step {_describe(step)}: expected a non-negative integer")
        else:
            plan.optimizer_values[("step",)] = jnp.asarray(int(step), jnp.uint32)
            plan.leaves += 1


def apply(plan: Plan, optimizer: nnx.Optimizer | None) -> None:
    for variable, value in plan.model_values:
        variable.set_value(jnp.asarray(value))
    if optimizer is not None:
        targets = {tuple(path): variable for path, variable in nnx.to_flat_state(nnx.state(optimizer))}
        for path, value in plan.optimizer_values.items():
            targets[path].set_value(value)


def _problem(name: str, path: NNXPath, value: Any, expected: Any, plan: Plan) -> bool:
    shape, expected_shape = np.shape(value), np.shape(expected)
    dtype, expected_dtype = jnp.result_type(value), jnp.result_type(expected)
    if shape != expected_shape:
        plan.problems.append(f"mismatch: {name}: shape {shape} in the checkpoint, {expected_shape} at NNX "
                             f"{format_nnx_path(path)}")
    elif dtype != expected_dtype:
        plan.problems.append(f"mismatch: {name}: dtype {dtype} in the checkpoint, {expected_dtype} at NNX "
                             f"{format_nnx_path(path)}")
    else:
        return False
    return True


def _flat(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flat(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _index(part: str) -> str | int:
    """Sequence positions (a chain's states) are ints in NNX state paths."""
    return int(part) if part.isdigit() else part


def _describe(value: Any) -> str:
    return f"(shape {np.shape(value)}, {jnp.result_type(value)})"
