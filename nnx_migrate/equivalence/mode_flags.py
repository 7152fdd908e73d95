"""Which call keywords put a model in train mode or inference mode.

Found from the Linen method's signature, so `compare()` needs no configuration for the
usual spellings; `call_kwargs=` and `train_kwargs=` override what is found. An NNX port
that takes no such flag is switched with `model.train()` / `model.eval()` instead.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from flax import nnx

# flag name -> (value in train mode, value in inference mode)
TRAIN_FLAGS: dict[str, tuple[bool, bool]] = {
    "train": (True, False),
    "training": (True, False),
    "is_training": (True, False),
    "deterministic": (False, True),
    "use_running_average": (False, True),
}


def mode_flag(method: Callable) -> str | None:
    """The train/inference flag the method takes, if any."""
    parameters = inspect.signature(method).parameters
    for name in TRAIN_FLAGS:
        if name in parameters:
            return name
    return None


def eval_and_train_kwargs(
    method: Callable, call_kwargs: dict[str, Any], train_kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(keywords for the inference call, keywords for the train-mode call or None).

    `train_kwargs='auto'` derives the train call from the flag in the signature (none
    found: no train-mode call); a dict is used as given (on top of `call_kwargs`); None
    turns the train-mode call off.
    """
    flag = mode_flag(method)
    eval_kwargs = dict(call_kwargs)
    if flag is not None and flag not in eval_kwargs:
        eval_kwargs[flag] = TRAIN_FLAGS[flag][1]
    if train_kwargs is None:
        return eval_kwargs, None
    if train_kwargs == "auto":
        if flag is None:
            return eval_kwargs, None
        return eval_kwargs, {**call_kwargs, flag: TRAIN_FLAGS[flag][0]}
    return eval_kwargs, {**call_kwargs, **dict(train_kwargs)}


def _accepts(method: Callable, name: str) -> bool:
    parameters = inspect.signature(method).parameters
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


# The attributes `nnx.Module.train()` / `.eval()` set on Dropout, BatchNorm and the like.
_NNX_MODE_ATTRIBUTES = ("deterministic", "use_running_average")


@contextlib.contextmanager
def nnx_mode(model: Any, method_name: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yields the keywords for the NNX call.

    The rewrite keeps Linen's mode flag in the call (`train=`); a hand-written port may
    instead switch modes with `model.train()` / `model.eval()`. When the NNX method does
    not take the flag, it is dropped from the keywords and the model is put in that mode
    for the block, then every attribute the switch touched is put back.
    """
    flags = [name for name in kwargs if name in TRAIN_FLAGS]
    method = getattr(model, method_name)
    if not flags or all(_accepts(method, name) for name in flags):
        yield kwargs
        return
    name = flags[0]
    training = kwargs[name] == TRAIN_FLAGS[name][0]
    saved = [
        (module, attribute, getattr(module, attribute))
        for _, module in nnx.graph.iter_graph(model)
        if isinstance(module, nnx.Module)
        for attribute in _NNX_MODE_ATTRIBUTES
        if attribute in vars(module)
    ]
    model.train() if training else model.eval()
    try:
        yield {key: value for key, value in kwargs.items() if key not in flags}
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)
