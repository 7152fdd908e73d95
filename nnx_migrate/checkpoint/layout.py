"""What a Linen checkpoint holds: model variables, optimizer state, step, anything else.

Linen programs save one of three shapes:
- a TrainState (`flax.training.train_state.TrainState` or a subclass): `step`, `params`,
  `opt_state`, and the subclass's own fields; by the Flax examples' convention a field
  holding a variable collection is named after it (`batch_stats`);
- the variables dict `model.init(...)` returns: `{'params': ..., 'batch_stats': ...}`;
- the params tree alone.
A TrainState whose `params` is the whole variables dict (`params={'params': ...}`) is
recognised too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nnx_migrate.checkpoint.errors import CheckpointError

_TRAIN_STATE_FIELDS = ("step", "opt_state")
# Collections a Linen model keeps between calls; other collection names are accepted
# wherever a TrainState field or a variables dict holds a tree.
KNOWN_COLLECTIONS = ("params", "batch_stats", "cache")


@dataclass
class LinenState:
    variables: dict[str, Any]  # {collection: tree}
    opt_state: dict[str, Any] | None = None
    step: Any = None
    extras: dict[str, Any] = field(default_factory=dict)  # top-level leaves with no meaning here
    layout: str = ""


def split_layout(tree: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> LinenState:
    """Sorts a checkpoint's top level into variables, optimizer state, step and extras;
    top-level entries named in `ignore` are dropped."""
    tree = {key: value for key, value in tree.items() if key not in ignore}
    if "params" in tree and any(name in tree for name in _TRAIN_STATE_FIELDS):
        state = LinenState({}, tree.get("opt_state"), tree.get("step"))
        params = tree["params"]
        if _is_variables_dict(params):
            state.variables.update(params)
            state.layout = "TrainState whose params hold the variables dict"
        else:
            state.variables["params"] = params
            state.layout = "TrainState"
        for key, value in tree.items():
            if key in ("params", *_TRAIN_STATE_FIELDS):
                continue
            if isinstance(value, Mapping):
                state.variables[key] = value
            else:
                state.extras[key] = value
        fields = ", ".join(k for k in tree if k not in state.extras)
        state.layout += f" ({fields})"
        return state
    if "params" in tree and all(isinstance(value, Mapping) for value in tree.values()):
        return LinenState(dict(tree), layout=f"variables dict ({', '.join(tree)})")
    if not tree:
        raise CheckpointError("the checkpoint holds nothing once the ignored entries are dropped")
    return LinenState({"params": dict(tree)}, layout="params tree")


def _is_variables_dict(params: Any) -> bool:
    """`{'params': {...}, 'batch_stats': {...}}` rather than a params tree (whose keys are
    submodule names, never a collection's)."""
    return (isinstance(params, Mapping) and "params" in params
            and all(isinstance(v, Mapping) for v in params.values())
            and set(params) <= set(KNOWN_COLLECTIONS) | {"params"})
