"""The lint rules, one per module, registered by existing (no list to keep in sync)."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from nnx_migrate.lint.rule import LintRule


@functools.cache
def all_rules() -> tuple[type[LintRule], ...]:
    found: list[type[LintRule]] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, LintRule)
                and value is not LintRule
                and value.__module__ == module.__name__
            ):
                found.append(value)
    codes = [rule.CODE for rule in found]
    if len(codes) != len(set(codes)):
        raise RuntimeError(f"two lint rules share a code: {sorted(codes)}")
    return tuple(sorted(found, key=lambda rule: rule.CODE))


def rule_by_code(code: str) -> type[LintRule] | None:
    wanted = code.upper()
    return next((rule for rule in all_rules() if rule.CODE == wanted or rule.NAME == code), None)


def select_rules(select: list[str], ignore: list[str]) -> tuple[type[LintRule], ...]:
    """Rules whose code starts with a `select` prefix and with no `ignore` prefix."""
    return tuple(
        rule
        for rule in all_rules()
        if any(rule.CODE.startswith(p.upper()) for p in select)
        and not any(rule.CODE.startswith(p.upper()) for p in ignore)
    )
