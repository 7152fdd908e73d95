"""Flattening what a model returns (arrays, tuples, dicts, dataclasses) into named leaves.

Both sides are flattened the same way, so a leaf's name (`[0]`, `['logits']`, `.hidden`)
says where it sits, and a difference in structure shows up as a leaf one side lacks.
Also the scalar function of the outputs whose gradients the harness compares.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Leaf = Any
FlatTree = dict[str, Leaf]

_SCALARS = (bool, int, float, complex, np.generic)


def _is_array(value: Any) -> bool:
    return isinstance(value, (jax.Array, np.ndarray)) or isinstance(value, _SCALARS)


def flatten_outputs(tree: Any, prefix: str = "") -> FlatTree:
    """{leaf name: leaf} for a model output, in a stable order; `None` leaves are dropped."""
    flat: FlatTree = {}
    _flatten(tree, prefix, flat)
    return flat


def _flatten(tree: Any, path: str, out: FlatTree) -> None:
    if tree is None:
        return
    if _is_array(tree):
        out[path or "output"] = tree
    elif dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        for field in dataclasses.fields(tree):
            _flatten(getattr(tree, field.name), f"{path}.{field.name}", out)
    elif isinstance(tree, Mapping):
        for key in sorted(tree, key=str):
            _flatten(tree[key], f"{path}[{key!r}]", out)
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):  # namedtuple
        for name, value in zip(tree._fields, tree, strict=True):
            _flatten(value, f"{path}.{name}", out)
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            _flatten(value, f"{path}[{index}]", out)
    else:
        # Any other registered pytree (flax.struct, custom nodes): use JAX's own names.
        leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        if len(leaves) == 1 and leaves[0][1] is tree:
            raise TypeError(f"cannot compare a model output of type {type(tree).__name__}")
        for key_path, leaf in leaves:
            _flatten(leaf, path + jax.tree_util.keystr(key_path), out)


def is_float_leaf(leaf: Leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def projection_weights(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Fixed standard-normal weights for the output leaf `name`, made on the host with
    numpy: no JAX random operation to compile, and usable while tracing."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return rng.standard_normal(shape, dtype=np.float32)


def projection_loss(flat: FlatTree, seed: int = 0) -> jax.Array:
    """A scalar that depends on every float output element: sum(leaf * fixed random weights).

    A plain `sum` would hide bugs whose effect sums to zero (softmax rows always sum to 1,
    so their gradient would vanish); fixed random weights make every element count. The
    weights depend only on the leaf's name and shape, so both sides use the same ones.
    """
    total = jnp.zeros((), jnp.float32)
    for name, leaf in flat.items():
        if not is_float_leaf(leaf):
            continue
        weights = projection_weights(name, tuple(jnp.shape(leaf)), seed)
        total = total + jnp.sum(jnp.asarray(leaf, jnp.float32) * weights)
    return total
