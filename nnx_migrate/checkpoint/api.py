"""Loading a Linen checkpoint into an NNX model (and optimizer), and converting one on disk."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flax import nnx

from nnx_migrate.checkpoint.errors import CheckpointError, CheckpointMismatchError
from nnx_migrate.checkpoint.layout import LinenState, split_layout
from nnx_migrate.checkpoint.mapping import Plan, apply, plan_model, plan_optimizer
from nnx_migrate.checkpoint.readers import read_checkpoint
from nnx_migrate.checkpoint.writing import state_tree, write_tree


@dataclass
class LoadReport:
    """What was read and where it went."""

    source: str
    layout: str
    leaves: int  # Linen leaves placed (model, optimizer state, step)
    step: int | None
    sizes: dict[str, int] = field(default_factory=dict)  # constructor sizes read off the shapes
    notes: list[str] = field(default_factory=list)
    destination: str | None = None

    def __str__(self) -> str:
        lines = [f"read {self.source}: {self.layout}",
                 f"placed {self.leaves} leaves" + (f", step {self.step}" if self.step is not None else "")]
        if self.sizes:
            lines.append("constructor sizes from the checkpoint's shapes: "
                         + ", ".join(f"{k}={v}" for k, v in self.sizes.items()))
        lines += [f"note: {note}" for note in self.notes]
        if self.destination:
            lines.append(f"wrote the NNX checkpoint {self.destination}")
        return "\n".join(lines)


def load_linen_checkpoint(source: str | Path, model: nnx.Module, optimizer: nnx.Optimizer | None = None, *,
                          step: int | None = None, ignore: Sequence[str] = ()) -> LoadReport:
    """Fills `model` (and `optimizer`, an `nnx.Optimizer(model, tx, wrt=nnx.Param)` with
    the Linen program's `tx`) from the Linen checkpoint at `source`, in place.

    Strict: every checkpoint leaf must find its variable, every Param and BatchStat must
    be filled, shapes and dtypes must be equal; otherwise nothing is changed and one
    CheckpointMismatchError lists every problem. `ignore` drops top-level entries of the
    checkpoint (a TrainState field such as 'opt_state' or 'ema_params').
    """
    raw, state = _read(source, step, ignore)
    plan = Plan()
    weight_map = plan_model(state, model, plan)
    if state.opt_state is not None and optimizer is None:
        plan.problems.append("the checkpoint holds optimizer state: pass optimizer=nnx.Optimizer(model, tx, "
                             "wrt=nnx.Param), or ignore=('opt_state',) to load the model alone")
    elif weight_map is not None:
        plan_optimizer(state, weight_map, optimizer, plan)
    if plan.problems:
        raise CheckpointMismatchError(raw.source, plan.problems)
    apply(plan, optimizer)
    return LoadReport(raw.source, state.layout, plan.leaves, _step(state, optimizer), notes=plan.notes)


def convert_checkpoint(source: str | Path, destination: str | Path, nnx_class: type, *,
                       kwargs: Mapping[str, Any] | None = None, inputs: Sequence[Any] = (),
                       step: int | None = None, ignore: Sequence[str] = (), force: bool = False,
                       seed: int = 0) -> LoadReport:
    """Reads the Linen checkpoint `source`, builds `nnx_class(**kwargs, <sizes>, rngs=...)`,
    places every leaf (as `load_linen_checkpoint` does) and writes `destination` as an
    orbax checkpoint `{'model': ..., 'optimizer': ...}` (see `writing`).

    Sizes: `in_features`/`<arg>_in_features` from the example `inputs` (arrays or
    anything with `.shape`), and any required argument still missing
    (`dense_0_in_features`) from the checkpoint's shapes. The optimizer part needs no
    `tx`: the optax nesting is kept and parameter-shaped parts are renamed and checked
    against the model's parameters; restoring into `nnx.Optimizer(model, tx, wrt=nnx.Param)`
    checks it against `tx`.
    """
    raw, state = _read(source, step, ignore)
    model, sizes = build_model(nnx_class, dict(kwargs or {}), inputs, state, seed)
    plan = Plan()
    weight_map = plan_model(state, model, plan)
    if weight_map is not None:
        plan_optimizer(state, weight_map, None, plan)
    if plan.problems:
        raise CheckpointMismatchError(raw.source, plan.problems)
    apply(plan, None)
    tree: dict[str, Any] = {"model": nnx.state(model)}
    if plan.optimizer_values:
        tree["optimizer"] = state_tree(plan.optimizer_values)
    elif state.step is not None:
        plan.notes.append(f"step {int(state.step)} not written: the checkpoint holds no optimizer state")
    write_tree(destination, tree, force=force)
    return LoadReport(raw.source, state.layout, plan.leaves, None if state.opt_state is None else int(state.step),
                      sizes, plan.notes, str(Path(destination)))


def build_model(nnx_class: type, kwargs: dict[str, Any], inputs: Sequence[Any], state: LinenState,
                seed: int = 0) -> tuple[nnx.Module, dict[str, int]]:
    """`nnx_class` built with `kwargs`, the input sizes of `inputs` and sizes read off
    the checkpoint's variables; and those last sizes."""
    from nnx_migrate.equivalence.construction import build_with_sizes, input_size_arguments
    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    accepted = inspect.signature(nnx_class.__init__).parameters
    from_inputs = input_size_arguments(nnx_class.__call__, inputs) if inputs else {}
    offered = {**{k: v for k, v in from_inputs.items() if k in accepted}, **kwargs}
    try:
        return build_with_sizes(nnx_class, offered, state.variables, seed,
                                f"given: {', '.join(offered) or 'nothing'}")
    except EquivalenceSetupError as exc:
        raise CheckpointError(str(exc)) from exc


def _read(source, step, ignore) -> tuple[Any, LinenState]:
    raw = read_checkpoint(source, step)
    return raw, split_layout(raw.tree, tuple(ignore))


def _step(state: LinenState, optimizer) -> int | None:
    return int(state.step) if state.step is not None and optimizer is not None else None
