"""Functions of a file that run under `jax.pmap`, for the `rngs=` rule of the `steps/` transform.

The default flat-state style drops `rngs=` at apply time: the model's own `nnx.Rngs`
stream draws the keys. Under `jax.pmap` over a replicated state that stream is the same
on every device, so every device would draw the same dropout masks, where the Linen
program passed per-device keys (`fold_in(rng, axis_index(...))`, keys sharded over the
devices) and got different ones. That changes the training numbers without a sign, so
the step reports such a site instead.

A function is pmapped when it is decorated with `jax.pmap` (or
`functools.partial(jax.pmap, ...)`), or given to `jax.pmap(f, ...)` /
`jax.pmap(functools.partial(f, ...), ...)` / `jax.pmap(lambda ...: f(...))` anywhere in
the file; a top-level function that a pmapped one names runs pmapped too. Nested
functions are matched by name: a name clash only adds a report entry, never a change.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.visitors import FastVisitor

PMAP = "jax.pmap"
PARTIAL = "functools.partial"


def pmapped_functions(module: cst.Module, imports: ImportMap) -> set[str]:
    """Names of the functions of `module` whose body runs under `jax.pmap`."""
    found: set[str] = set()
    defs: dict[str, list[cst.FunctionDef]] = {}

    def is_pmap(node: cst.BaseExpression) -> bool:
        if imports.qualify(node) == PMAP:
            return True  # `@jax.pmap`
        return (isinstance(node, cst.Call) and imports.qualify(node.func) == PARTIAL
                and bool(node.args) and imports.qualify(node.args[0].value) == PMAP)

    def targets(fun: cst.BaseExpression) -> set[str]:
        """The functions a value given to `jax.pmap` runs."""
        if isinstance(fun, cst.Name):
            return {fun.value}
        if isinstance(fun, cst.Call) and imports.qualify(fun.func) == PARTIAL and fun.args:
            return targets(fun.args[0].value)
        if isinstance(fun, cst.Lambda):
            return _names_in(fun.body)
        return set()

    class Find(FastVisitor):
        def visit_FunctionDef(self, node):
            defs.setdefault(node.name.value, []).append(node)
            if any(is_pmap(d.decorator) for d in node.decorators):
                found.add(node.name.value)

        def visit_Call(self, node):
            if imports.qualify(node.func) != PMAP:
                return
            fun = next((a.value for a in node.args if a.keyword is None or a.keyword.value == "fun"), None)
            if fun is not None:
                found.update(targets(fun))

    Find().walk(module)
    top = {s.name.value for s in module.body if isinstance(s, cst.FunctionDef)}
    pending = [name for name in found if name in defs]
    while pending:  # top-level functions a pmapped one names run pmapped as well
        name = pending.pop()
        for func in defs.get(name, []):
            for used in _names_in(func.body) & top - found:
                found.add(used)
                pending.append(used)
    return found & set(defs)


def _names_in(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class Collect(FastVisitor):
        def visit_Name(self, n):
            names.add(n.value)

    Collect().walk(node)
    return names
