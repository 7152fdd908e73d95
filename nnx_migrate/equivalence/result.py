"""What `compare()` returns: the verdict, every compared leaf, and where things diverged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nnx_migrate.equivalence.leaf_comparison import LeafDiff
from nnx_migrate.equivalence.weight_mapping import WeightMap


@dataclass
class Check:
    """One thing compared (the forward outputs, the gradients, the state after a train
    step, ...) and the leaf-by-leaf verdict."""

    name: str
    leaves: list[LeafDiff]

    @property
    def ok(self) -> bool:
        return all(leaf.ok for leaf in self.leaves)

    @property
    def max_abs_diff(self) -> float:
        return max((leaf.max_abs_diff for leaf in self.leaves), default=0.0)


@dataclass(frozen=True)
class Divergence:
    """The first submodule (in the order calls finish) whose outputs differ."""

    check: str
    linen_path: str
    nnx_path: str
    call_index: int
    max_abs_diff: float
    last_agreeing: str | None  # the submodule that finished just before and still agreed
    detail: str = ""


@dataclass
class ComparisonResult:
    linen_variables: dict[str, Any]
    nnx_module: Any
    weight_map: WeightMap
    rtol: float
    atol: float
    checks: list[Check] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.weight_map.complete and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def max_abs_diff(self) -> float:
        """Largest absolute difference over every compared leaf (inf if a leaf is missing
        or has another shape; 0.0 if nothing could be compared)."""
        return max((check.max_abs_diff for check in self.checks), default=0.0)

    @property
    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def __str__(self) -> str:
        from nnx_migrate.equivalence.report import format_report

        return format_report(self)

    def to_dict(self) -> dict[str, Any]:
        from nnx_migrate.equivalence.report import result_as_dict

        return result_as_dict(self)
