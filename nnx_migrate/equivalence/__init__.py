"""Numerical equivalence of a Linen module and its NNX port.

    from nnx_migrate.equivalence import compare
    result = compare(linen_module, NNXClassOrInstance, x)
    assert result.ok, str(result)

Imports jax and flax: only the `check` command and the pytest plugin load it.
"""

from nnx_migrate.equivalence.errors import AmbiguousMappingError, EquivalenceSetupError
from nnx_migrate.equivalence.harness import compare
from nnx_migrate.equivalence.result import Check, ComparisonResult, Divergence
from nnx_migrate.equivalence.tolerances import DEFAULT_ATOL, DEFAULT_RTOL, default_tolerances
from nnx_migrate.equivalence.weight_mapping import WeightMap, map_weights

__all__ = [
    "AmbiguousMappingError",
    "Check",
    "ComparisonResult",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "Divergence",
    "EquivalenceSetupError",
    "WeightMap",
    "compare",
    "default_tolerances",
    "map_weights",
]
