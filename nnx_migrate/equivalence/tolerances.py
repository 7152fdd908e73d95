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

Loosen them (`rtol=`, `atol=`, `--rtol`, `--atol`) for bfloat16/float16 models or deep
models whose gradients accumulate error; `default_tolerances` suggests values per dtype.
"""

from __future__ import annotations

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-6

# Suggested starting points for lower precisions (epsilon: bf16 7.8e-3, f16 9.8e-4).
_BY_DTYPE = {
    "float64": (1e-12, 1e-12),
    "float32": (DEFAULT_RTOL, DEFAULT_ATOL),
    "float16": (1e-2, 1e-3),
    "bfloat16": (5e-2, 1e-2),
}


def default_tolerances(dtype_name: str = "float32") -> tuple[float, float]:
    """(rtol, atol) suited to models computing in `dtype_name` on CPU."""
    return _BY_DTYPE.get(dtype_name, (DEFAULT_RTOL, DEFAULT_ATOL))
