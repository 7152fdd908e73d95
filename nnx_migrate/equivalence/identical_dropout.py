"""Giving Linen's and NNX's Dropout the same masks in train mode.

Linen and NNX split RNG keys differently, so the same seed gives different masks. While
the harness runs a model, `nn.Dropout` and `nnx.Dropout`, and the attention-weight
dropout inside `dot_product_attention` (Linen's and NNX's MultiHeadAttention), are made
to draw their key from one fixed sequence, the n-th draw on each side getting the n-th
key. Both frameworks build the mask the same way (`bernoulli(key, 1 - rate, shape)`), so
a faithful port sees identical masks, and a port with a different rate sees a different
mask and a different scale `1 / (1 - rate)`, which the comparison catches.

Keys drawn by hand from the `dropout` stream (Linen's `self.make_rng('dropout')`, NNX's
`rngs.dropout()` on an `nnx.Rngs` without a stream of that name, as the harness builds
it), e.g. a word-dropout layer's own `bernoulli` mask, come from a second fixed sequence
in the same way, so that such layers are compared too.

A port that calls its Dropout layers in another order than Linen gets other keys and is
reported as different; the report's first diverging submodule then points at a Dropout.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator

import flax.linen as nn
import flax.linen.attention as linen_attention
import flax.nnx.nn.attention as nnx_attention
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


def _attention_weights_with(original, keys: _KeySequence):
    """`dot_product_attention_weights` with its dropout key taken from `keys` whenever
    attention dropout is active (the same place Linen and NNX draw it)."""
    signature = inspect.signature(original)

    def attention_weights(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        if arguments["dropout_rate"] > 0.0 and not arguments["deterministic"]:
            arguments["dropout_rng"] = keys.next()
        return original(*bound.args, **bound.kwargs)

    return attention_weights


@contextlib.contextmanager
def identical_dropout(side: str, seed: int = DROPOUT_SEED) -> Iterator[None]:
    """Within the block, the `side` ('linen' or 'nnx') Dropout layers and attention-weight
    dropout draw keys from a fixed sequence starting at `seed`; any key passed at call
    time is ignored."""
    keys = _KeySequence(seed)
    by_hand = _KeySequence(seed + 1)
    if side == "linen":
        dropout, attention = nn.Dropout, linen_attention
        original = dropout.__dict__["__call__"]
        # where `self.make_rng('dropout')` is drawn: Linen's Module
        draw_owner, draw_name = nn.Module, "make_rng"
        original_draw = nn.Module.__dict__["make_rng"]

        def dropout_call(self, inputs, deterministic=None, rng=None):
            return original(self, inputs, deterministic, rng=keys.next())

        def draw(self, name="params"):
            return by_hand.next() if name == "dropout" else original_draw(self, name)

    elif side == "nnx":
        dropout, attention = nnx.Dropout, nnx_attention
        original = dropout.__dict__["__call__"]
        # `rngs.dropout` on Rngs without a `dropout` stream goes through __getattr__
        draw_owner, draw_name = nnx.Rngs, "__getattr__"
        original_draw = nnx.Rngs.__dict__["__getattr__"]

        def dropout_call(self, inputs, *, deterministic=None, rngs=None):
            return original(self, inputs, deterministic=deterministic, rngs=keys.next())

        def draw(self, name):
            return by_hand.next if name == "dropout" else original_draw(self, name)

    else:
        raise ValueError(f"side must be 'linen' or 'nnx', not {side!r}")
    original_weights = attention.dot_product_attention_weights
    dropout.__call__ = dropout_call
    setattr(draw_owner, draw_name, draw)
    attention.dot_product_attention_weights = _attention_weights_with(original_weights, keys)
    try:
        yield
    finally:
        dropout.__call__ = original
        setattr(draw_owner, draw_name, original_draw)
        attention.dot_product_attention_weights = original_weights
