"""Example inputs from specs like `float32[4,10]` or `int32[3,7]:0..100`."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from nnx_migrate.equivalence.errors import EquivalenceSetupError

_SPEC = re.compile(
    r"^(?P<dtype>[a-z0-9]+)\[(?P<shape>[0-9,\s]*)\](?::(?P<low>-?\d+)\.\.(?P<high>-?\d+))?$"
)
_FLOATS = {"float16", "bfloat16", "float32", "float64"}
_INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}
# Integer inputs are usually token ids or class labels: small non-negative values fit
# any vocabulary of 10 or more; give `:LOW..HIGH` for anything else.
DEFAULT_INT_RANGE = (0, 10)

SPEC_HELP = (
    "DTYPE[D0,D1,...] with DTYPE one of float16/bfloat16/float32/float64 (standard normal "
    "values), int8..int64/uint8..uint32 (uniform in [0, 10), or give :LOW..HIGH), bool"
)


def parse_input_spec(spec: str) -> tuple[str, tuple[int, ...], tuple[int, int] | None]:
    match = _SPEC.match(spec.strip())
    if match is None:
        raise EquivalenceSetupError(f"--input {spec!r}: expected {SPEC_HELP}")
    dtype = match["dtype"]
    if dtype not in _FLOATS | _INTS | {"bool"}:
        raise EquivalenceSetupError(f"--input {spec!r}: unknown dtype {dtype!r}; expected {SPEC_HELP}")
    shape = tuple(int(d) for d in match["shape"].replace(" ", "").split(",") if d)
    value_range = None
    if match["low"] is not None:
        if dtype not in _INTS:
            raise EquivalenceSetupError(f"--input {spec!r}: a :LOW..HIGH range is for integer inputs")
        value_range = (int(match["low"]), int(match["high"]))
        if value_range[0] >= value_range[1]:
            raise EquivalenceSetupError(f"--input {spec!r}: empty range {value_range[0]}..{value_range[1]}")
    return dtype, shape, value_range


def make_input(spec: str, seed: int) -> jax.Array:
    """A reproducible random array for `spec` (the same seed gives the same array)."""
    dtype, shape, value_range = parse_input_spec(spec)
    key = jax.random.key(seed)
    if dtype in _FLOATS:
        return jax.random.normal(key, shape, jnp.float32).astype(dtype)
    if dtype == "bool":
        return jax.random.bernoulli(key, 0.5, shape)
    low, high = value_range or DEFAULT_INT_RANGE
    return jax.random.randint(key, shape, low, high, jnp.int32).astype(dtype)
