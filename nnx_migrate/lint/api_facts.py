"""The NNX API facts the linter relies on, read from `rules/nnx_api.toml`.

Kept as data so a Flax engineer can review them without reading rule code; a test checks
them against the installed flax.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class NnxApiFacts:
    optimizer: str
    deprecated_optimizers: frozenset[str]
    default_wrt: str
    grad_transforms: frozenset[str]
    variable_types: frozenset[str]
    module_types: frozenset[str]
    list_container: str
    dict_container: str
    positional_filter_functions: frozenset[str]
    filter_everything: str
    filter_negate: str
    array_modules: tuple[str, ...]
    prefix_filters: frozenset[str]
    compat_transforms: frozenset[str]
    rng_holding_modules: frozenset[str]
    sharding_keywords: frozenset[str]
    sharding_keyword: str
    metadata_functions: frozenset[str]


@functools.cache
def nnx_api() -> NnxApiFacts:
    # As rewrite/rules.py: the rules/ folder beside this checkout when there is one (an
    # editable install elsewhere may map nnx_migrate._rules to another checkout, or to
    # nothing when the package is imported from a worktree).
    beside = Path(__file__).resolve().parents[2] / "rules" / "nnx_api.toml"
    text = beside.read_text("utf-8") if beside.is_file() else files("nnx_migrate._rules").joinpath("nnx_api.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return NnxApiFacts(
        optimizer=data["optimizers"]["current"],
        deprecated_optimizers=frozenset(data["optimizers"]["deprecated"]),
        default_wrt=data["optimizers"]["default_wrt"],
        grad_transforms=frozenset(data["gradients"]["transforms"]),
        variable_types=frozenset(data["variables"]["types"]),
        module_types=frozenset(data["modules"]["types"]),
        list_container=data["containers"]["list"],
        dict_container=data["containers"]["dict"],
        positional_filter_functions=frozenset(data["filters"]["positional"]),
        filter_everything=data["filters"]["everything"],
        filter_negate=data["filters"]["negate"],
        array_modules=tuple(data["arrays"]["modules"]),
        prefix_filters=frozenset(data["tree_mode"]["prefix_filters"]),
        compat_transforms=frozenset(data["tree_mode"]["compat_transforms"]),
        rng_holding_modules=frozenset(data["tree_mode"]["rng_holding_modules"]),
        sharding_keywords=frozenset(data["drift"]["sharding_keywords"]),
        sharding_keyword=data["drift"]["sharding_keyword"],
        metadata_functions=frozenset(data["drift"]["metadata_functions"]),
    )
