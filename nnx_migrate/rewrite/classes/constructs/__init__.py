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

from nnx_migrate.rewrite.classes.constructs.base import ModuleTransform

_NOT_CONSTRUCTS = {"base", "catalogue"}


@functools.cache
def constructs() -> tuple[ModuleTransform, ...]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_CONSTRUCTS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, ModuleTransform) and c is not ModuleTransform and c.__module__ == module.__name__]
        if len(classes) != 1:
            raise ImportError(f"{module.__name__} must define exactly one construct class, not {len(classes)}")
        found.append(classes[0]())
    return tuple(found)


@functools.cache
def _by_linen_name() -> dict[str, tuple[ModuleTransform, ...]]:
    table: dict[str, list[ModuleTransform]] = {}
    for construct in constructs():
        for name in construct.linen:
            table.setdefault(name, []).append(construct)
    return {name: tuple(found) for name, found in table.items()}


def transform_of(imports, call: cst.Call) -> ModuleTransform | None:
    """The module transform `call` (`nn.remat(Block)`, `nn.scan(Block, ...)`) is, or None."""
    candidates = _by_linen_name().get(imports.qualify(call.func))
    if not candidates:
        return None
    return next((c for c in candidates if c.matches(imports, call)), None)


__all__ = ["ModuleTransform", "constructs", "transform_of"]
