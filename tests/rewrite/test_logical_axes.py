"""The logical-axis helpers written into converted files (rewrite/logical_axes.py) map
logical axis names to mesh axes exactly as Linen does, where NNX's own mapping does not."""

from __future__ import annotations

import ast

import pytest
from flax import linen as nn

from nnx_migrate.rewrite.helpers import HELPER_SOURCES, with_needs

# (rules, names): plain rules, a name listed twice (the first rule whose mesh axis is free
# wins), a mesh axis wanted twice in one array, a name without a rule, tuples of mesh axes,
# a rule to None, non-string entries.
CASES = [
    ((("batch", "data"), ("hidden", "model")), ("batch", "hidden")),
    ((("embed", "model"), ("embed", "data"), ("mlp", "model")), ("embed", "mlp")),
    ((("batch", "data"), ("length", "data"), ("length", "model")), ("batch", "length")),
    ((("batch", "data"),), ("batch", "vocab")),
    ((("batch", ("data", "fsdp")), ("embed", "fsdp"), ("embed", "model")), ("batch", "embed", None)),
    ((("embed", None), ("embed", "model")), ("embed",)),
]


def helpers(*names):
    import jax
    from flax import nnx

    namespace: dict = {"jax": jax, "nnx": nnx}
    for name in sorted(with_needs(set(names))):
        exec(HELPER_SOURCES[name], namespace)  # noqa: S102 - our own source text
    return namespace


@pytest.mark.parametrize("rules,names", CASES)
def test_logical_to_mesh_axes_is_linens(rules, names):
    ours = helpers("logical_to_mesh_axes")["logical_to_mesh_axes"]
    assert ours(names, rules) == nn.logical_to_mesh_axes(names, rules)
    with nn.logical_axis_rules(rules):  # the context NNX's `nnx.logical_axis_rules` sets
        assert ours(names) == nn.logical_to_mesh_axes(names)


def test_nnx_own_mapping_differs_where_a_name_has_two_rules_or_none():
    """Why the helpers exist: NNX's mapping (a dict of the rules) gives other specs."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    def nnx_spec(names, rules):
        with nnx.logical_axis_rules(rules):
            return nnx.get_partition_spec(nnx.Param(jnp.zeros((1,) * len(names)), out_sharding=names, eager_sharding=False)).get_value()

    for rules, names in (CASES[1], CASES[3]):
        assert nnx_spec(names, rules) != nn.logical_to_mesh_axes(names, rules)
    assert nnx_spec(*CASES[0][::-1]) == nn.logical_to_mesh_axes(CASES[0][1], CASES[0][0]) == jax.sharding.PartitionSpec("data", "model")


def test_logical_to_mesh_and_sharding_map_trees_as_linen():
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec as P

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    rules, _ = CASES[1]
    specs = {"a": P("embed", "mlp"), "b": [P(None, "embed"), P()]}
    ns = helpers("logical_to_mesh", "logical_to_mesh_sharding")
    assert ns["logical_to_mesh"](specs, rules) == nn.logical_to_mesh(specs, rules)
    assert ns["logical_to_mesh_sharding"](specs, mesh, rules) == nn.logical_to_mesh_sharding(specs, mesh, rules)


def test_with_logical_constraint_constrains_as_linen(monkeypatch):
    """Same spec handed to JAX's constraint under a mesh and rules; a no-op (no call) without
    rules, as Linen's."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    seen = []
    original = jax.lax.with_sharding_constraint
    monkeypatch.setattr(jax.lax, "with_sharding_constraint", lambda x, s: seen.append(getattr(s, "spec", s)) or original(x, s))
    ours = helpers("with_logical_constraint")["with_logical_constraint"]
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    rules, names = CASES[2]
    x = jnp.ones((2, 3))
    assert ours(x, names) is x and not seen
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        linen = jax.jit(lambda x: nn.with_logical_constraint(x, names))(x)
        mine = jax.jit(lambda x: ours(x, names))(x)
    assert len(seen) == 2 and seen[0] == seen[1] == nn.logical_to_mesh_axes(names, rules)
    np.testing.assert_array_equal(np.asarray(mine), np.asarray(linen))
    # a pytree of arrays with a pytree of names, as Linen's
    seen.clear()
    tree, tree_names = {"a": x, "b": x.T}, {"a": names, "b": ("length", None)}
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        jax.jit(lambda t: nn.with_logical_constraint(t, tree_names))(tree)
        jax.jit(lambda t: ours(t, tree_names))(tree)
    assert len(seen) == 4 and seen[:2] == seen[2:] and seen[1] == nn.logical_to_mesh_axes(("length", None), rules)


def test_get_partition_spec_reads_the_logical_names():
    import jax
    from flax import nnx
    from jax.sharding import PartitionSpec as P

    init = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"), eager_sharding=False)
    layer = nnx.Linear(2, 3, kernel_init=init, rngs=nnx.Rngs(0))
    ours = helpers("get_partition_spec")["get_partition_spec"]
    with nnx.logical_axis_rules(CASES[1][0]):  # names, not mesh axes, whatever the context
        specs = ours(nnx.state(layer))
    assert specs["kernel"].get_value() == P("embed", "mlp") and specs["bias"].get_value() == P()
    assert jax.tree.structure(specs) == jax.tree.structure(nnx.state(layer))


def test_get_sharding_and_unbox_for_nnx_objects():
    import jax
    import numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
    init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model"), eager_sharding=False)
    layer = nnx.Linear(2, 3, kernel_init=init, rngs=nnx.Rngs(0))
    ns = helpers("get_sharding", "unbox")
    shardings = ns["get_sharding"](nnx.state(layer), mesh)
    assert shardings["kernel"].get_value() == NamedSharding(mesh, P(None, "model"))
    assert shardings["bias"].get_value() == NamedSharding(mesh, P())
    values = ns["unbox"](nnx.state(layer))
    assert not any(isinstance(v, nnx.Variable) for v in jax.tree.leaves(values, is_leaf=lambda x: isinstance(x, nnx.Variable)))
    np.testing.assert_array_equal(values["kernel"], layer.kernel.get_value())


HEADS = '''import jax.numpy as jnp
from flax import linen as nn


class Heads(nn.Module):
  heads: int = 2

  @nn.compact
  def __call__(self, x):
    b, l, d = x.shape
    x = nn.Dense(8)(x)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    y = nn.with_logical_constraint(x.reshape(b, l, self.heads, 4), ('batch', 'length', 'heads', 'kv'))
    y = y.reshape(y.shape[:2] + (-1,))
    return nn.Dense(3)(y) + nn.Dense(3)(x)
'''


def test_sizes_pass_through_a_constraint():
    """The layer after a constraint knows its input size: the constraint's last axis (size
    engine) and whole shape (after a reshape) are its input's."""
    from nnx_migrate.rewrite.transform import rewrite_source

    result = rewrite_source(HEADS, "heads.py")
    assert not result.todos, result.todos
    assert "in_features=self.heads * 4, out_features=3" in result.new_text
    assert "in_features=8, out_features=3" in result.new_text
    assert "x = with_logical_constraint(x, ('batch', 'length', 'embed'))" in result.new_text
    tree = ast.parse(result.new_text)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "nn"], "Linen left"


def test_get_partition_spec_of_a_flat_train_state_with_fields():
    """The flat-state TrainState of a Linen subclass carries its own fields as more leaves:
    the specs have the state's structure (what `jax.jit(out_shardings=...)` needs)."""
    import sys
    from pathlib import Path

    import jax
    from jax.sharding import PartitionSpec as P

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    from training_programs import load_module, output_path

    program = load_module(output_path("custom_fields_trainstate", "flat-state"), "logical_axes_fields")
    state = program.create_train_state(jax.random.key(0), 0.1)
    specs = helpers("get_partition_spec")["get_partition_spec"](state)
    assert jax.tree.structure(specs) == jax.tree.structure(state)
    assert len(jax.tree.leaves(state)) > len(state.leaves) and set(jax.tree.leaves(specs)) == {P()}


def test_with_logical_constraint_takes_linens_default_fallback_and_refuses_the_others():
    import jax.numpy as jnp

    constrain = helpers("with_logical_constraint")["with_logical_constraint"]
    x = jnp.ones((2, 2))
    assert constrain(x, ("batch", None), fallback=nn.spmd.RulesFallback.AXIS_IS_UNSHARDED) is x  # no rules: no-op
    with pytest.raises(NotImplementedError, match="convert by hand"):
        constrain(x, ("batch", None), fallback=nn.spmd.RulesFallback.NO_CONSTRAINT)


def test_a_non_default_fallback_is_marked_at_its_line():
    from nnx_migrate.rewrite.transform import rewrite_source

    source = (
        "import flax.linen as nn\n\n\n"
        "def f(x):\n"
        "    return nn.with_logical_constraint(x, ('batch',), fallback=nn.spmd.RulesFallback.NO_CONSTRAINT)\n"
    )
    result = rewrite_source(source, "f.py")
    lines = result.new_text.splitlines()
    at = next(i for i, line in enumerate(lines) if "return with_logical_constraint(x" in line)
    assert "TODO(nnx-migrate)" in lines[at - 1], result.new_text  # the statement's marker
