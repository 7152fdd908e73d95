"""The human report (`str(result)`) and the JSON form (`result.to_dict()`, `check --json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnx_migrate.equivalence.leaf_comparison import finite_or_none
from nnx_migrate.equivalence.tolerances import describe

if TYPE_CHECKING:  # result.py imports this module to format itself
    from nnx_migrate.equivalence.result import ComparisonResult


def verdict_line(result: ComparisonResult) -> str:
    if result.ok:
        return f"EQUIVALENT: max |diff| {result.max_abs_diff:.3g} over every compared leaf"
    if not result.weight_map.complete:
        return "NOT EQUIVALENT: the weights do not map one to one (see above)"
    failed = ", ".join(check.name for check in result.failed_checks)
    return f"NOT EQUIVALENT: {failed} differ(s); max |diff| {result.max_abs_diff:.3g}"


def format_report(result: ComparisonResult) -> str:
    lines = [f"nnx-migrate equivalence check ({describe(result.rtol, result.atol)})"]
    weight_map = result.weight_map
    lines.append(f"weights: {len(weight_map.pairs)} Linen leaves mapped")
    for pair in weight_map.pairs:
        lines.append(f"  {pair.linen_name} -> {pair.nnx_name}")
    for problem in weight_map.problems():
        lines.append(f"  PROBLEM {problem}")
    for note in weight_map.notes + result.notes:
        lines.append(f"  note: {note}")
    for check in result.checks:
        status = "ok" if check.ok else "DIFFERS"
        lines.append(f"{check.name}: {status} (max |diff| {check.max_abs_diff:.3g})")
        for leaf in check.leaves:
            lines.append(f"  {leaf.describe()}")
    for divergence in result.divergences:
        where = divergence.linen_path
        if divergence.nnx_path != divergence.linen_path:
            where += f" (NNX {divergence.nnx_path})"
        call = f", call {divergence.call_index + 1}" if divergence.call_index else ""
        lines.append(
            f"first diverging submodule in {divergence.check}: {where}{call}, "
            f"max |diff| {divergence.max_abs_diff:.3g}{divergence.detail}"
        )
        if divergence.last_agreeing:
            lines.append(f"  last submodule that still agreed: {divergence.last_agreeing}")
    lines.append(verdict_line(result))
    return "\n".join(lines)


def result_as_dict(result: ComparisonResult) -> dict[str, Any]:
    weight_map = result.weight_map
    return {
        "ok": result.ok,
        "verdict": verdict_line(result),
        "max_abs_diff": finite_or_none(result.max_abs_diff),
        "rtol": result.rtol,
        "atol": result.atol,
        "mapping": [
            {"linen": pair.linen_name, "nnx": pair.nnx_name} for pair in weight_map.pairs
        ],
        "mapping_problems": weight_map.problems(),
        "notes": weight_map.notes + result.notes,
        "checks": [
            {
                "name": check.name,
                "ok": check.ok,
                "max_abs_diff": finite_or_none(check.max_abs_diff),
                "leaves": [
                    {
                        "linen": leaf.name,
                        "nnx": leaf.nnx_name,
                        "ok": leaf.ok,
                        "max_abs_diff": finite_or_none(leaf.max_abs_diff),
                        "max_rel_diff": finite_or_none(leaf.max_rel_diff),
                        "problem": leaf.problem or None,
                    }
                    for leaf in check.leaves
                ],
            }
            for check in result.checks
        ],
        "first_divergence": [
            {
                "check": d.check,
                "linen": d.linen_path,
                "nnx": d.nnx_path,
                "call_index": d.call_index,
                "max_abs_diff": finite_or_none(d.max_abs_diff),
                "last_agreeing": d.last_agreeing,
            }
            for d in result.divergences
        ],
    }
