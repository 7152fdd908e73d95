"""Linen's logical-axis functions, kept as helpers written into converted files.

NNX records a Variable's logical axis names as its `out_sharding` metadata and maps them to
mesh axes with the rules of `nnx.logical_axis_rules` (the same context Linen's
`nn.logical_axis_rules` sets: both are `flax.core.spmd.logical_axis_rules`). Its mapping is
not Linen's, though: NNX looks each name up in a dict of the rules (the LAST rule for a
name wins, a name without a rule is taken as a mesh axis name), where Linen takes the rules
in order and gives a name the mesh axes of its FIRST rule whose axes the array does not use
yet (a name without one stays unsharded). Real rule sets (MaxText's) list a name several
times, so the two give different PartitionSpecs. NNX also has no logical sharding
constraint for activations (`nn.with_logical_constraint`), and no boxes to take values out
of (`nn.meta.unbox`: a Variable holds its metadata beside its value). These helpers are Linen's
functions on NNX objects, so a converted program shards exactly as the Linen one did
(tests/rewrite/test_logical_axes.py runs them against Linen's; the mesh fixtures in
fixtures/training/ compare the shardings of whole programs).

Each entry: the helper's source, the helpers it calls, the imports it reads. No jax or
flax import here.
"""

from __future__ import annotations

LOGICAL_TO_MESH_AXES = '''def logical_to_mesh_axes(names, rules=None):
    """Linen's `nn.logical_to_mesh_axes`: mesh axes (a PartitionSpec) for logical axis `names`."""
    # Rules (default: those of `nnx.logical_axis_rules`) in order: a name takes the mesh axes
    # of its first rule whose axes the array does not use yet; without one, it is unsharded.
    if rules is None:
        from flax.core.spmd import get_logical_axis_rules
        rules = get_logical_axis_rules()
    names = tuple(names)
    unset = object()
    axes = [unset if isinstance(name, str) else name for name in names]
    for name, mesh_axes in rules:
        if name in names and axes[names.index(name)] is unset:
            used = {a for axis in axes if axis is not unset for a in jax.tree.leaves(axis)}
            if not used & set(jax.tree.leaves(mesh_axes)):
                axes[names.index(name)] = mesh_axes
    return jax.sharding.PartitionSpec(*(None if axis is unset else axis for axis in axes))
'''

LOGICAL_TO_MESH = '''def logical_to_mesh(specs, rules=None):
    """Linen's `nn.logical_to_mesh`: each logical PartitionSpec of `specs` in mesh axes."""
    return jax.tree.map(lambda spec: logical_to_mesh_axes(spec, rules), specs,
                        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
'''

LOGICAL_TO_MESH_SHARDING = '''def logical_to_mesh_sharding(specs, mesh, rules=None):
    """Linen's `nn.logical_to_mesh_sharding`: each logical PartitionSpec of `specs` as a NamedSharding."""
    return jax.tree.map(lambda spec: jax.sharding.NamedSharding(mesh, logical_to_mesh_axes(spec, rules)), specs,
                        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
'''

WITH_LOGICAL_CONSTRAINT = '''def with_logical_constraint(x, names, rules=None, mesh=None, fallback=None):
    """Linen's `nn.with_logical_constraint`, under Linen's logical axis rules."""
    # a no-op without rules, or without a mesh (`mesh`, or the one `jax.set_mesh` sets);
    # a pytree of arrays takes a pytree of names; names without a rule are unsharded
    # (Linen's default fallback, the only one kept)
    if fallback is not None and getattr(fallback, "name", fallback) != "AXIS_IS_UNSHARDED":
        raise NotImplementedError(f"with_logical_constraint(fallback={fallback}): convert by hand")
    if rules is None:
        from flax.core.spmd import get_logical_axis_rules
        rules = get_logical_axis_rules()
    if not rules or names is None or (mesh is None and jax.sharding.get_abstract_mesh().empty):
        return x

    def is_names(n):
        return n is None or (isinstance(n, (tuple, jax.sharding.PartitionSpec)) and all(isinstance(a, str) or a is None for a in n))

    if not is_names(names):
        return jax.tree.map(lambda n, a: with_logical_constraint(a, n, rules, mesh), names, x, is_leaf=is_names)
    spec = logical_to_mesh_axes(names, rules)
    return jax.lax.with_sharding_constraint(x, spec if mesh is None else jax.sharding.NamedSharding(mesh, spec))
'''

GET_PARTITION_SPEC = '''def get_partition_spec(tree):
    """Linen's `nn.get_partition_spec` for NNX objects: each Variable's logical axis names."""
    # Read from its `out_sharding` metadata, P() for other arrays; rules apply later
    # (`logical_to_mesh_sharding`). A TrainState of flat leaves gets a spec per leaf: its
    # model's and optimizer's first, then P() for the fields it carries.
    if hasattr(tree, "graphdef") and hasattr(tree, "leaves"):
        specs = jax.tree.leaves(get_partition_spec(nnx.state(tree.merge())))
        leaves, treedef = jax.tree.flatten(tree)
        return jax.tree.unflatten(treedef, specs + [jax.sharding.PartitionSpec()] * (len(leaves) - len(specs)))

    def spec(x):
        if isinstance(x, nnx.Variable):
            return x.replace(jax.sharding.PartitionSpec(*(x.get_metadata().get("out_sharding") or ())))
        return jax.sharding.PartitionSpec() if hasattr(x, "shape") else None

    return jax.tree.map(spec, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))
'''

GET_SHARDING = '''def get_sharding(tree, mesh):
    """Linen's `nn.get_sharding` for NNX objects: a NamedSharding of `mesh` per array."""
    # the axis names each Variable carries, taken as mesh axes: no rules, as in Linen
    return jax.tree.map(lambda spec: jax.sharding.NamedSharding(mesh, spec), get_partition_spec(tree),
                        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
'''

UNBOX = '''def unbox(tree):
    """Linen's `nn.meta.unbox` for NNX objects: each Variable of `tree` as its array."""
    return jax.tree.map(lambda x: x.get_value() if isinstance(x, nnx.Variable) else x, tree,
                        is_leaf=lambda x: isinstance(x, nnx.Variable))
'''

# name -> (source, helpers it calls, import lines it reads: edits.JAX / edits.NNX spelled out)
LOGICAL_AXIS_HELPERS = {
    "logical_to_mesh_axes": (LOGICAL_TO_MESH_AXES, (), ("import jax\n",)),
    "logical_to_mesh": (LOGICAL_TO_MESH, ("logical_to_mesh_axes",), ("import jax\n",)),
    "logical_to_mesh_sharding": (LOGICAL_TO_MESH_SHARDING, ("logical_to_mesh_axes",), ("import jax\n",)),
    "with_logical_constraint": (WITH_LOGICAL_CONSTRAINT, ("logical_to_mesh_axes",), ("import jax\n",)),
    "get_partition_spec": (GET_PARTITION_SPEC, (), ("import jax\n", "from flax import nnx\n")),
    "get_sharding": (GET_SHARDING, ("get_partition_spec",), ("import jax\n",)),
    "unbox": (UNBOX, (), ("import jax\n", "from flax import nnx\n")),
}
