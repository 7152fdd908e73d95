"""Which call keywords put a Linen module in train mode or inference mode.

Found from the method's signature, so `compare()` needs no configuration for the usual
spellings; `call_kwargs=` and `train_kwargs=` override what is found.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

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
