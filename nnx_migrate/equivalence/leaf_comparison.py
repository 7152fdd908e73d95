"""Comparing two sets of named leaves within a tolerance, leaf by leaf."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnx_migrate.equivalence.tolerances import is_floating, resolve


@dataclass(frozen=True)
class LeafDiff:
    """One compared leaf: its name on each side, its largest error and the verdict."""

    name: str  # the Linen-side name (an output path, or a variable path)
    nnx_name: str
    ok: bool
    max_abs_diff: float  # NaN-free; inf when a leaf is missing or its shape differs
    max_rel_diff: float
    problem: str = ""  # set when the leaf could not be compared value by value

    def describe(self) -> str:
        where = self.name if self.name == self.nnx_name else f"{self.name} -> {self.nnx_name}"
        verdict = "ok  " if self.ok else "DIFF"
        detail = self.problem or f"max|diff| {self.max_abs_diff:.3g}  max rel {self.max_rel_diff:.3g}"
        return f"{verdict} {where}: {detail}"


def compare_leaf(name: str, nnx_name: str, linen_value: Any, nnx_value: Any,
                 rtol: float | None, atol: float | None) -> LeafDiff:
    """One leaf; a None tolerance takes the default of the leaf's dtype (`tolerances`)."""
    expected = np.asarray(linen_value)
    actual = np.asarray(nnx_value)
    if expected.shape != actual.shape:
        return LeafDiff(name, nnx_name, False, float("inf"), float("inf"),
                        f"shape {expected.shape} in Linen, {actual.shape} in NNX")
    if expected.dtype != actual.dtype:
        return LeafDiff(name, nnx_name, False, float("inf"), float("inf"),
                        f"dtype {expected.dtype} in Linen, {actual.dtype} in NNX")
    if expected.size == 0:
        return LeafDiff(name, nnx_name, True, 0.0, 0.0)
    if not (is_floating(expected.dtype) or np.issubdtype(expected.dtype, np.complexfloating)):
        equal = bool(np.array_equal(expected, actual))
        differing = int(np.count_nonzero(expected != actual))
        return LeafDiff(name, nnx_name, equal, 0.0 if equal else float("inf"), 0.0 if equal else float("inf"),
                        "" if equal else f"{differing} of {expected.size} integer values differ")
    rtol, atol = resolve(rtol, atol, expected.dtype)
    expected64 = expected.astype(np.float64)
    actual64 = actual.astype(np.float64)
    nan_expected, nan_actual = np.isnan(expected64), np.isnan(actual64)
    # Exact agreement includes inf == inf and NaN where the other side has NaN too.
    equal = (expected64 == actual64) | (nan_expected & nan_actual)
    with np.errstate(invalid="ignore"):
        error = np.abs(actual64 - expected64)
    error = np.where(equal, 0.0, error)
    error = np.where(np.isnan(error), np.inf, error)  # NaN against a number, inf against -inf
    scale = np.abs(expected64)
    finite = np.isfinite(expected64) & np.isfinite(actual64)
    within = equal | (finite & (error <= atol + rtol * scale))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(scale > 0, error / scale, np.where(error > 0, np.inf, 0.0))
    max_abs = float(np.max(error))
    ok = bool(np.all(within))
    problem = "" if np.array_equal(nan_expected, nan_actual) else "NaN in different places"
    return LeafDiff(name, nnx_name, ok, max_abs, float(np.max(relative)), problem)


def compare_trees(
    linen_flat: Mapping[str, Any],
    nnx_flat: Mapping[str, Any],
    rtol: float | None,
    atol: float | None,
    names: Mapping[str, str] | None = None,
) -> list[LeafDiff]:
    """Leaf by leaf, in Linen's order, then the leaves only NNX has.

    `names` maps a Linen leaf name to the NNX leaf name holding its counterpart
    (outputs share names; variables are paired by the weight mapping).
    """
    names = dict(names or {name: name for name in linen_flat})
    diffs = []
    seen_nnx = set()
    for name, value in linen_flat.items():
        nnx_name = names.get(name, name)
        seen_nnx.add(nnx_name)
        if nnx_name not in nnx_flat:
            diffs.append(LeafDiff(name, nnx_name, False, float("inf"), float("inf"), "missing on the NNX side"))
            continue
        diffs.append(compare_leaf(name, nnx_name, value, nnx_flat[nnx_name], rtol, atol))
    for nnx_name in nnx_flat:
        if nnx_name not in seen_nnx:
            diffs.append(LeafDiff(nnx_name, nnx_name, False, float("inf"), float("inf"), "only on the NNX side"))
    return diffs


def finite_or_none(value: float) -> float | None:
    """A difference for JSON: inf (a missing leaf, another shape) becomes null."""
    return value if math.isfinite(value) else None
