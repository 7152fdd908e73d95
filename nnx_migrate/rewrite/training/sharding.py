"""`with mesh:` -> `with jax.set_mesh(mesh):` in training code.

A `jax.sharding.Mesh` used as a context manager is deprecated since jax 0.10 and no longer
sets the mesh that `jax.lax.with_sharding_constraint` with a bare PartitionSpec, Flax's
sharding metadata and `flax.core.meta.global_mesh_defined()` read; `jax.set_mesh(mesh)`
does. A `with` item is converted where it is a name the file binds (in any scope) to a
call of a mesh constructor (`rules/linen_training.toml`, `[mesh]`), or such a call itself;
a mesh that comes from elsewhere (a parameter, another module) stays as written, which
still runs. Nothing is reported: the old form keeps working where it is left.

Before:
    mesh = Mesh(devices, ('data', 'model'))
    with mesh, nn.logical_axis_rules(rules):
        state = jax.jit(init_fn, out_shardings=shardings)(key)
After:
    mesh = Mesh(devices, ('data', 'model'))
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        state = jax.jit(init_fn, out_shardings=shardings)(key)
"""

from __future__ import annotations

import functools

import libcst as cst

from nnx_migrate.rewrite.edits import JAX, FileEdits, Place
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.rules import _load
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor


@functools.cache
def _mesh_rules() -> tuple[frozenset[str], str]:
    table = _load("linen_training.toml")["mesh"]
    return frozenset(table["constructors"]), table["set_mesh"]


def set_mesh(module: cst.Module, imports: ImportMap, edits: FileEdits) -> tuple[cst.Module, bool]:
    """`module` with its `with mesh:` items as `jax.set_mesh(mesh)`, and whether any was."""
    constructors, set_mesh_name = _mesh_rules()

    def is_constructor(node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and imports.qualify(node.func) in constructors

    class Bindings(FastVisitor):
        def __init__(self) -> None:
            self.meshes: set[str] = set()

        def visit_Assign(self, node: cst.Assign) -> None:
            if is_constructor(node.value):
                self.meshes.update(t.target.value for t in node.targets if isinstance(t.target, cst.Name))

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            if node.value is not None and is_constructor(node.value) and isinstance(node.target, cst.Name):
                self.meshes.add(node.target.value)

    bindings = Bindings()
    module.visit(bindings)
    prefix, _, attr = set_mesh_name.rpartition(".")

    class SetMesh(FastTransformer):
        def __init__(self) -> None:
            self.changed = False

        def leave_WithItem(self, original: cst.WithItem, updated: cst.WithItem) -> cst.WithItem:
            item = updated.item
            if updated.asname is not None or not ((isinstance(item, cst.Name) and item.value in bindings.meshes) or is_constructor(item)):
                return updated
            self.changed = True
            return updated.with_changes(item=cst.Call(func=cst.Attribute(value=cst.Name(prefix), attr=cst.Name(attr)), args=[cst.Arg(item)]))

    transformer = SetMesh()
    new = module.visit(transformer)
    if not transformer.changed:
        return module, False
    edits.add_import(JAX, Place.AFTER_IMPORTS)
    return new, True
