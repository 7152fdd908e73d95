"""Which call keywords put a model in train mode or inference mode.

Found from the Linen method's signature, so `compare()` needs no configuration for the
usual spellings; `call_kwargs=` and `train_kwargs=` override what is found. An NNX port
that takes no such flag is switched with `model.train()` / `model.eval()` instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
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


def field_flag(linen_module: Any, method: Callable, call_kwargs: dict[str, Any]) -> str | None:
    """The mode flag the module takes from a field rather than from the call, if any.

    Linen's `nn.merge_param` pattern: a field and a call parameter of the same name, both
    defaulting to None, merged in the method; passing both raises. When the module was
    built with the field set (and the caller does not pass the flag), Linen takes the mode
    from the field only, so each pass builds the module with the field at that pass's
    value instead of passing the flag to the call.
    """
    flag = mode_flag(method)
    if flag is None or flag in call_kwargs:
        return None
    parameter = inspect.signature(method).parameters[flag]
    names = {f.name for f in dataclasses.fields(linen_module)} if dataclasses.is_dataclass(linen_module) else set()
    if parameter.default is not None or flag not in names or getattr(linen_module, flag) is None:
        return None
    return flag


def linen_in_mode(linen_module: Any, flag: str | None, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(Linen module, its call keywords) for a call in the mode `kwargs[flag]` says, where
    the flag is a field (`field_flag`): a clone with the field at that value."""
    if flag is None or flag not in kwargs:
        return linen_module, kwargs
    return linen_module.clone(**{flag: kwargs[flag]}), {key: item for key, item in kwargs.items() if key != flag}


@contextlib.contextmanager
def flag_in_field(linen_module: Any, nnx_module: Any, flag: str | None,
                  kwargs: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any], dict[str, Any]]]:
    """Yields (Linen module, Linen keywords, NNX keywords) for one call in the mode that
    `kwargs[flag]` says, where the flag is a field (`field_flag`): the Linen module is a
    clone with the field at that value and the call does not get it. A converted class
    keeps the field as an attribute of the same name: it is set to the same value for the
    block, then put back; a port without that attribute gets the flag in its call (or
    `nnx_mode`'s `.train()`/`.eval()`)."""
    if flag is None or flag not in kwargs:
        yield linen_module, kwargs, kwargs
        return
    value = kwargs[flag]
    linen, rest = linen_in_mode(linen_module, flag, kwargs)
    if flag not in vars(nnx_module):
        yield linen, rest, kwargs
        return
    saved = getattr(nnx_module, flag)
    setattr(nnx_module, flag, value)
    try:
        yield linen, rest, rest
    finally:
        setattr(nnx_module, flag, saved)


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
