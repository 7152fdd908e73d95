"""Weights that are not their initial values, for the comparison.

Fresh initializers hide bugs: two new LayerNorms are both all ones and zeros, so a port
that swaps them (or never uses one, or uses a bias where Linen has none initialised to
zero) computes the same numbers as Linen. The harness therefore moves every floating leaf
of the variables it initialised itself by a small seeded amount before copying them:
each element is scaled by (1 + 0.1 u) and an element that is exactly 0 becomes 0.1 u,
u uniform in [-1, 1]. Signs are kept (a BatchNorm variance stays positive), values stay
of the same order, and every element differs from its neighbours.

Variables the caller passes (`compare(variables=...)`, a checkpoint) are used as given.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from nnx_migrate.equivalence.tolerances import is_floating

SCALE = 0.1


def perturbed(variables: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """A copy of Linen `variables` with every floating leaf moved (integer leaves kept)."""
    return _walk(variables, (), seed)


def _walk(tree: Any, path: tuple[str, ...], seed: int) -> Any:
    if isinstance(tree, Mapping):
        return {key: _walk(value, path + (str(key),), seed) for key, value in tree.items()}
    dtype = getattr(tree, "dtype", None)
    if dtype is None or not is_floating(dtype):
        return tree
    # seeded by the leaf's path: the same leaf moves the same way whatever else the tree holds
    rng = np.random.default_rng([seed, zlib.crc32("/".join(path).encode())])
    values = np.asarray(tree).astype(np.float64)
    noise = rng.uniform(-1.0, 1.0, values.shape)
    moved = np.where(values == 0, SCALE * noise, values * (1 + SCALE * noise))
    return jnp.asarray(moved, dtype)
