"""Default tolerances for float32 on CPU, and why they are this tight.

A value passes when |nnx - linen| <= atol + rtol * |linen| (numpy's `isclose`, measured
against the Linen value as the reference).

- Linen and NNX layers give bit-identical outputs, gradients and batch statistics once
  the weights are copied, when both run in the same execution mode (checked on flax
  0.12.8 / jax 0.10.2, see shared/NNX-FACTS.md). The harness runs both sides eagerly, so
  a faithful port usually shows a difference of exactly 0.
- A hand-written port may order the same arithmetic differently (`x @ w + b` vs a fused
  `dot_general`, a sum split in two). In float32 that moves results by a few units in the
  last place: machine epsilon is 1.19e-7, so rtol = 1e-6 (about 8 ulps) accepts it.
- Values produced by cancellation (near zero, from terms of order 1) carry the absolute
  error of their terms, a few times 1e-7 for unit-scale activations: atol = 1e-6.
- Anything looser hides real bugs: a LayerNorm epsilon of 1e-5 instead of Linen's 1e-6
  moves unit-variance outputs by about 5e-6 relative, which these defaults still catch.

Every floating dtype is compared as floats, with its own defaults unless `rtol=`/`atol=`
(`--rtol`, `--atol`) are given, which then hold for every leaf. "Floating" is JAX's
notion (`jnp.issubdtype(dtype, jnp.floating)`): numpy does not count bfloat16 or the
float8 types as inexact, and would compare them as integers (any difference infinite).

| dtype | rtol | atol | why |
|---|---|---|---|
| float64 | 1e-12 | 1e-12 | epsilon 2.2e-16: thousands of ulps of headroom |
| float32 | 1e-6 | 1e-6 | epsilon 1.2e-7: about 8 ulps (above) |
| float16 | 1e-2 | 1e-3 | epsilon 9.8e-4: a sum rounded at another point moves a few ulps |
| bfloat16 | 5e-2 | 1e-2 | epsilon 7.8e-3: only 8 significant bits; one ulp is 0.4-0.8% |
| float8 (any) | eps | eps | one ulp of the format (e4m3: 0.125, e5m2: 0.25); a factor of 2 still fails |

Deep models whose gradients accumulate error may still need looser values.
"""

from __future__ import annotations

import jax.numpy as jnp

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-6

_BY_DTYPE = {
    "float64": (1e-12, 1e-12),
    "float32": (DEFAULT_RTOL, DEFAULT_ATOL),
    "float16": (1e-2, 1e-3),
    "bfloat16": (5e-2, 1e-2),
}


def is_floating(dtype) -> bool:
    """True for every floating dtype, bfloat16 and float8 included."""
    return bool(jnp.issubdtype(dtype, jnp.floating))


def default_tolerances(dtype_name: str = "float32") -> tuple[float, float]:
    """(rtol, atol) for values computed in `dtype_name` on CPU (the table above)."""
    if dtype_name in _BY_DTYPE:
        return _BY_DTYPE[dtype_name]
    try:
        dtype = jnp.dtype(dtype_name)
    except TypeError:
        return DEFAULT_RTOL, DEFAULT_ATOL
    if is_floating(dtype) and dtype.itemsize == 1:
        eps = float(jnp.finfo(dtype).eps)
        return eps, eps
    return DEFAULT_RTOL, DEFAULT_ATOL


def resolve(rtol: float | None, atol: float | None, dtype) -> tuple[float, float]:
    """The tolerances for one leaf: the given ones, else its dtype's defaults."""
    default_rtol, default_atol = default_tolerances(jnp.dtype(dtype).name)
    return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)


def describe(rtol: float | None, atol: float | None) -> str:
    """`rtol=1e-06, atol=1e-06`, or the per-dtype defaults when none were given."""
    if rtol is None and atol is None:
        return "default tolerances per dtype: float32 rtol=1e-06, atol=1e-06; bfloat16 rtol=0.05, atol=0.01"
    return f"rtol={'per dtype' if rtol is None else format(rtol, 'g')}, atol={'per dtype' if atol is None else format(atol, 'g')}"
