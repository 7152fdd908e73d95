"""The NNX API facts the linter relies on, read from `rules/nnx_api.toml`.

Kept as data so a Flax engineer can review them without reading rule code; a test checks
them against the installed flax.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib.resources import files


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


@functools.cache
def nnx_api() -> NnxApiFacts:
    data = tomllib.loads(files("nnx_migrate._rules").joinpath("nnx_api.toml").read_text("utf-8"))
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
    )
