"""The Linen constructs the class conversion knows, one module each, found by discovery.

Every module of this folder (but `base` and `catalogue`) defines one construct class;
`constructs()` imports them all and returns one instance of each, in module-name order.
Adding a construct is adding a module here (and its fixture): nothing else names it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

import libcst as cst

from nnx_migrate.rewrite.classes.constructs.base import (
    ModuleTransform,
    SelfCallConstruct,
    SubmoduleConstruct,
)

_NOT_CONSTRUCTS = {"base", "catalogue"}


@functools.cache
def constructs() -> tuple[ModuleTransform | SubmoduleConstruct | SelfCallConstruct, ...]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_CONSTRUCTS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, (ModuleTransform, SubmoduleConstruct, SelfCallConstruct)) and c.__module__ == module.__name__]
        if len(classes) != 1:
            raise ImportError(f"{module.__name__} must define exactly one construct class, not {len(classes)}")
        found.append(classes[0]())
    return tuple(found)


@functools.cache
def _by_linen_name() -> dict[str, tuple[ModuleTransform, ...]]:
    table: dict[str, list[ModuleTransform]] = {}
    for construct in module_transforms():
        for name in construct.linen:
            table.setdefault(name, []).append(construct)
    return {name: tuple(found) for name, found in table.items()}


def transform_of(imports, call: cst.Call) -> ModuleTransform | None:
    """The module transform `call` (`nn.remat(Block)`, `nn.scan(Block, ...)`) is, or None."""
    candidates = _by_linen_name().get(imports.qualify(call.func))
    if not candidates:
        return None
    return next((c for c in candidates if c.matches(imports, call)), None)


@functools.cache
def module_transforms() -> tuple[ModuleTransform, ...]:
    return tuple(c for c in constructs() if isinstance(c, ModuleTransform))


@functools.cache
def submodule_constructs() -> tuple[SubmoduleConstruct, ...]:
    return tuple(sorted((c for c in constructs() if isinstance(c, SubmoduleConstruct)), key=lambda c: c.order))


def construct_of_kind(kind: str) -> SubmoduleConstruct | None:
    return next((c for c in submodule_constructs() if c.kind == kind), None)


def submodule_construct(conv, func: cst.BaseExpression, qual: str | None) -> SubmoduleConstruct | None:
    """The construct of the class `func` (qualified `qual`, `flax.linen.Dense`) builds, or None."""
    return next((c for c in submodule_constructs() if c.matches(conv, func, qual)), None)


@functools.cache
def self_call_constructs() -> tuple[SelfCallConstruct, ...]:
    return tuple(sorted((c for c in constructs() if isinstance(c, SelfCallConstruct)), key=lambda c: c.order))


@functools.cache
def _by_method() -> dict[str, SelfCallConstruct]:
    return {m: c for c in reversed(self_call_constructs()) for m in c.methods}


def self_call_construct(method: str | None) -> SelfCallConstruct | None:
    """The construct of a call `self.<method>(...)` of Linen's Module API, or None."""
    return _by_method().get(method) if method is not None else None


__all__ = ["ModuleTransform", "SubmoduleConstruct", "SelfCallConstruct", "construct_of_kind", "constructs", "module_transforms", "self_call_construct", "self_call_constructs", "submodule_construct", "submodule_constructs", "transform_of"]
