"""Giving Linen's and NNX's Dropout the same masks in train mode.

Linen and NNX split RNG keys differently, so the same seed gives different masks. While
the harness runs a train-mode call, `nn.Dropout` and `nnx.Dropout` are made to draw their
key from one fixed sequence, the n-th Dropout call on each side getting the n-th key.
Both layers then build the mask the same way (`bernoulli(key, 1 - rate, shape)`), so a
faithful port sees identical masks, and a port with a different rate sees a different
mask and a different scale `1 / (1 - rate)`, which the comparison catches.

A port that calls its Dropout layers in another order than Linen gets other keys and is
reported as different; the report's first diverging submodule then points at a Dropout.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import flax.linen as nn
import jax
from flax import nnx

DROPOUT_SEED = 1729


class _KeySequence:
    def __init__(self, seed: int):
        self.base = jax.random.key(seed)
        self.count = 0

    def next(self) -> jax.Array:
        key = jax.random.fold_in(self.base, self.count)
        self.count += 1
        return key


@contextlib.contextmanager
def identical_dropout(side: str, seed: int = DROPOUT_SEED) -> Iterator[None]:
    """Within the block, the `side` ('linen' or 'nnx') Dropout draws keys from a fixed
    sequence starting at `seed`; any key passed at call time is ignored."""
    keys = _KeySequence(seed)
    if side == "linen":
        owner = nn.Dropout
        original = owner.__dict__["__call__"]

        def linen_dropout(self, inputs, deterministic=None, rng=None):
            return original(self, inputs, deterministic, rng=keys.next())

        replacement = linen_dropout
    elif side == "nnx":
        owner = nnx.Dropout
        original = owner.__dict__["__call__"]

        def nnx_dropout(self, inputs, *, deterministic=None, rngs=None):
            return original(self, inputs, deterministic=deterministic, rngs=keys.next())

        replacement = nnx_dropout
    else:
        raise ValueError(f"side must be 'linen' or 'nnx', not {side!r}")
    setattr(owner, "__call__", replacement)
    try:
        yield
    finally:
        setattr(owner, "__call__", original)
