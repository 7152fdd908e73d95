"""Building an NNX class written by `nnx-migrate rewrite` from a Linen instance.

The rewrite's constructor contract: `NNXClass(<Linen dataclass fields as keywords>,
<input sizes>, rngs=nnx.Rngs(...))`, where input sizes that fields cannot give are
`in_features` (last dimension of the first positional `__call__` argument) and
`<argname>_in_features` (last dimension of another positional argument). Only the names
the constructor accepts are passed. Sizes the rewrite left as arguments
(`dense_0_in_features`) are read off the Linen variables' shapes (`sizes`); a required
argument the harness still cannot fill is an error.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
from flax import nnx

from nnx_migrate.equivalence.errors import EquivalenceSetupError
from nnx_migrate.equivalence.sizes import solve_sizes

# Dataclass fields every Linen module has; they are Linen plumbing, not model settings.
_LINEN_PLUMBING = frozenset({"parent", "name"})


def linen_field_values(linen_module: nn.Module) -> dict[str, Any]:
    """The Linen instance's own fields (`features=32`, `dropout_rate=0.1`, ...)."""
    return {
        f.name: getattr(linen_module, f.name)
        for f in dataclasses.fields(linen_module)
        if f.name not in _LINEN_PLUMBING and f.init
    }


def _fields_at_default(linen_module: nn.Module) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(linen_module)
        if f.name not in _LINEN_PLUMBING and f.init and f.default is not dataclasses.MISSING
        and getattr(linen_module, f.name) is f.default
    ]


def bind_positional_inputs(method: Callable, inputs: Sequence[Any]) -> dict[str, Any]:
    """{argument name: value} for the example inputs given to a Linen method."""
    parameters = [
        p
        for p in list(inspect.signature(method).parameters.values())[1:]  # drop self
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    bound = {}
    for index, value in enumerate(inputs):
        name = parameters[index].name if index < len(parameters) else f"arg{index}"
        bound[name] = value
    return bound


def input_size_arguments(linen_method: Callable, inputs: Sequence[Any]) -> dict[str, int]:
    """`in_features` / `<argname>_in_features` from the last dimension of each input."""
    sizes: dict[str, int] = {}
    for index, (name, value) in enumerate(bind_positional_inputs(linen_method, inputs).items()):
        shape = getattr(value, "shape", ())
        if not shape:
            continue
        sizes["in_features" if index == 0 else f"{name}_in_features"] = int(shape[-1])
    return sizes


def build_from_linen(
    nnx_class: type,
    linen_module: nn.Module,
    inputs: Sequence[Any],
    *,
    rngs_seed: int = 0,
    extra_kwargs: Mapping[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> nnx.Module:
    """Instantiates `nnx_class` following the rewrite's constructor contract; `variables`
    (Linen's, {collection: tree}) give the sizes no field or input gives."""
    fields = linen_field_values(linen_module)
    submodule_fields = [name for name, value in fields.items() if isinstance(value, nn.Module)]
    signature = inspect.signature(nnx_class.__init__)
    parameters = dict(list(signature.parameters.items())[1:])
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    offered: dict[str, Any] = {
        **fields,
        **input_size_arguments(type(linen_module).__call__, inputs),
        **(extra_kwargs or {}),
    }
    kwargs = {name: value for name, value in offered.items() if takes_any or name in parameters}
    # A field left at its Linen default takes the NNX constructor's own default: the
    # rewrite converts defaults that are Linen objects (`conv: ModuleDef = nn.Conv` ->
    # `nnx.Conv`), which the Linen value would undo.
    for name in _fields_at_default(linen_module):
        if name in kwargs and name in parameters and parameters[name].default is not parameters[name].empty:
            del kwargs[name]
    passed_submodules = [name for name in submodule_fields if name in kwargs]
    if passed_submodules:
        raise EquivalenceSetupError(
            f"{type(linen_module).__name__} field(s) {', '.join(passed_submodules)} hold Linen "
            f"submodules, which the harness cannot convert to NNX yet; build the NNX module "
            f"yourself and pass the instance to compare()"
        )
    module, _ = build_with_sizes(nnx_class, kwargs, variables, rngs_seed,
                                 f"the harness passes the Linen fields {sorted(fields) or '[]'}, "
                                 f"in_features/<arg>_in_features and rngs")
    return module


def missing_arguments(nnx_class: type, kwargs: Mapping[str, Any]) -> list[str]:
    """Required constructor arguments of `nnx_class` that `kwargs` (and rngs) do not give."""
    parameters = dict(list(inspect.signature(nnx_class.__init__).parameters.items())[1:])
    return [
        name
        for name, p in parameters.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in kwargs and name != "rngs"
    ]


def build_with_sizes(
    nnx_class: type,
    kwargs: Mapping[str, Any],
    variables: Mapping[str, Any] | None,
    rngs_seed: int,
    passed: str,
) -> tuple[nnx.Module, dict[str, int]]:
    """`nnx_class(**kwargs, <sizes read off variables>, rngs=nnx.Rngs(rngs_seed))` and
    those sizes; `passed` says where `kwargs` came from, for the error when an argument
    is missing."""
    parameters = inspect.signature(nnx_class.__init__).parameters
    takes_rngs = "rngs" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    kwargs = {name: value for name, value in kwargs.items() if name != "rngs"}

    def build(sizes: Mapping[str, Any]) -> nnx.Module:
        return nnx_class(**kwargs, **sizes, **({"rngs": nnx.Rngs(rngs_seed)} if takes_rngs else {}))

    missing = missing_arguments(nnx_class, kwargs)
    sizes: dict[str, int] = {}
    if missing and variables:
        sizes, missing = solve_sizes(build, missing, variables)
    if missing:
        from_shapes = ("; not readable from the Linen variables' shapes either (do they belong to this "
                       "model?)") if variables else ""
        raise EquivalenceSetupError(
            f"cannot build {nnx_class.__name__}: no value for required argument(s) "
            f"{', '.join(missing)} ({passed}{from_shapes})"
        )
    try:
        return build(sizes), sizes
    except Exception as exc:  # the user's constructor: report, do not crash the caller
        shown = ", ".join(f"{k}=..." for k in kwargs) + "".join(f", {k}={v}" for k, v in sizes.items())
        raise EquivalenceSetupError(
            f"{nnx_class.__name__}({shown}) failed: {type(exc).__name__}: {exc}"
        ) from exc
