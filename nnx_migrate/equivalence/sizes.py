"""Constructor sizes an NNX class needs and nobody passed, read off Linen variables' shapes.

Where the rewrite cannot derive a layer's input size it leaves it as a constructor
argument (`dense_0_in_features: int`); Linen's variables (from `init`, or a checkpoint)
already hold the answer in their shapes. The class is built abstractly
(`nnx.eval_shape`: no memory, no computation) with a distinct marker value for each
missing argument; the weights are placed by the naming convention; each marker found in
an NNX variable's shape gives the argument the Linen size at the same dimension (also
through a whole factor: a marker times 4 in `mlp_0.kernel` against 256 gives 64).

A size that appears in no weight (or with other values in two weights) is not guessed:
`solve_sizes` says which arguments it could not fill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flax import nnx

from nnx_migrate.equivalence.weight_mapping import map_weights

# 720720 is divisible by every number up to 16 (head counts, groups, strides divide a
# marker as they divide a real size); each argument gets its own prime factor on top.
_MARKER_BASE = 720720
_MARKER_PRIMES = (101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


def solve_sizes(
    build: Callable[[Mapping[str, int]], nnx.Module],
    names: list[str],
    variables: Mapping[str, Any],
) -> tuple[dict[str, int], list[str]]:
    """({argument: size} found, [arguments not found]) for the arguments `names`.

    `build(sizes)` constructs the NNX module given values for exactly those arguments;
    `variables` are Linen variables {collection: tree} (the naming convention places them).
    """
    if len(names) > len(_MARKER_PRIMES):
        return {}, list(names)
    markers = {name: _MARKER_BASE * prime for name, prime in zip(names, _MARKER_PRIMES, strict=False)}
    try:
        abstract = nnx.eval_shape(lambda: build(markers))
        weight_map = map_weights(variables, abstract, match="names")
    except Exception:  # a constructor that needs real sizes (asserts, Python arithmetic)
        return {}, list(names)
    candidates: dict[str, set[int]] = {name: set() for name in names}
    for pair in weight_map.pairs:
        linen_shape = _shape(pair.linen_value(variables))
        nnx_shape = _shape(pair.variable.get_value())
        if len(linen_shape) != len(nnx_shape):
            continue
        for nnx_dim, linen_dim in zip(nnx_shape, linen_shape, strict=False):
            for name, marker in markers.items():
                size = _size_from(nnx_dim, marker, linen_dim)
                if size is not None:
                    candidates[name].add(size)
    found = {name: sizes.pop() for name, sizes in candidates.items() if len(sizes) == 1}
    return found, [name for name in names if name not in found]


def _size_from(nnx_dim: int, marker: int, linen_dim: int) -> int | None:
    """The argument's value if `nnx_dim` is `marker` times (or divided by) a whole factor."""
    if nnx_dim % marker == 0:
        factor = nnx_dim // marker
        return linen_dim // factor if linen_dim % factor == 0 else None
    if marker % nnx_dim == 0 and nnx_dim % _MARKER_BASE != 0 and nnx_dim > _MARKER_BASE // 16:
        # a marker divided by a small count (heads): the dimension is size // count
        return linen_dim * (marker // nnx_dim)
    return None
