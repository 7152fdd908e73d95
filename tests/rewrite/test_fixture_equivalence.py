"""Every converted fixture class computes what its Linen original computes, with the same
weights: the equivalence harness builds the NNX class from the Linen fields and example
inputs, copies the weights by the naming convention and compares outputs, gradients and
train-mode state, in NNX's graph mode and in its tree mode (`nnx_mode`)."""

from __future__ import annotations

import ast

import pytest

from rewrite_fixture_models import FIXTURES, cases, load_module, make_input

PAIRS = []
for _case in cases():
    if _case.startswith("noop_"):
        continue
    _tree = ast.parse((FIXTURES / f"{_case}.in.py").read_text())
    _examples = next(
        ast.literal_eval(n.value)
        for n in _tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "EXAMPLES"
    )
    PAIRS += [(_case, name) for name in _examples]


@pytest.fixture(scope="module")
def modules():
    loaded = {}

    def get(case, mode="graph"):
        # a converted file is imported once per mode: transforms take the mode they are
        # built in. The Linen file is imported once for both: Linen does not read NNX's
        # mode, and its instances (equal by their fields) then hit the harness's compiled
        # Linen programs in the second mode instead of compiling them again.
        if case not in loaded:
            loaded[case] = load_module(FIXTURES / f"{case}.in.py", f"fixture_in_{case}")
        if (case, mode) not in loaded:
            loaded[case, mode] = load_module(FIXTURES / f"{case}.out.py", f"fixture_out_{case}_{mode}")
        return loaded[case], loaded[case, mode]

    return get


@pytest.mark.parametrize("case,class_name", PAIRS, ids=[f"{c}:{n}" for c, n in PAIRS])
def test_converted_class_is_equivalent(modules, case, class_name, nnx_mode):
    import jax
    from flax import nnx

    from nnx_migrate.equivalence import compare

    linen_mod, nnx_mod = modules(case, nnx_mode)
    example = linen_mod.EXAMPLES[class_name]
    keys = jax.random.split(jax.random.key(0), len(example["inputs"]))
    inputs = [make_input(spec, key) for spec, key in zip(example["inputs"], keys, strict=True)]
    tolerances = {k: example[k] for k in ("rtol", "atol", "mapping") if k in example}
    if example.get("build"):
        # built through a module-level `functools.partial(Class, field=...)` of the file (a
        # class whose required fields are layer factories or classes; "build" may name a
        # parent that builds the class, which is then compared inside it): the converted
        # file's partial, with its keywords, builds the NNX side
        import functools

        from nnx_migrate.equivalence.construction import build_from_linen

        linen_instance = getattr(linen_mod, example["build"])(**example["fields"])
        nnx_built = getattr(nnx_mod, example["build"])
        nnx_class, keywords = (nnx_built.func, nnx_built.keywords) if isinstance(nnx_built, functools.partial) else (nnx_built, {})
        target = build_from_linen(nnx_class, linen_instance, inputs, extra_kwargs=keywords)
        result = compare(linen_instance, target, *inputs, match="names", **tolerances)
        assert result.ok, str(result)
        assert result.max_abs_diff <= 1e-5
        if type(linen_instance).__name__ != class_name:
            # the class is proven inside its parent: the parent's NNX model holds it
            assert any(type(m).__name__ == class_name for _, m in nnx.iter_graph(target)), class_name
        return
    linen_instance = getattr(linen_mod, class_name)(**example["fields"])
    nnx_class = getattr(nnx_mod, class_name)
    if nnx_mode == "tree" and _marked_graph_mode_only(nnx_class):
        _assert_tree_mode_rejects_shared_submodules(nnx_class, linen_instance, inputs, example)
        return
    if example.get("nnx_kwargs"):
        target = nnx_class(**example["fields"], **example["nnx_kwargs"], rngs=nnx.Rngs(0))
        result = compare(linen_instance, target, *inputs, match="names", **tolerances)
    else:
        result = compare(linen_instance, nnx_class, *inputs, **tolerances)
    assert result.ok, str(result)
    assert result.max_abs_diff <= 1e-5


def test_a_factory_fields_default_builds_what_a_direct_construction_builds(modules):
    """compare() copies weights, so it cannot see what the factory fields' defaults
    (factory_defaults) leave out before use: the LSTM cell starts from the weights of the
    directly built cell (recurrent) with Linen's initializer, orthogonal (NNX's own,
    modified_orthogonal, gives the same float32 numbers but not the same function), and
    BatchNorm/Dropout keep Linen's None (decided at call time; NNX's False would run in
    training mode where Linen raises)."""
    import inspect

    import jax
    import numpy as np
    from flax import nnx

    _, from_factory = modules("factory_defaults")
    _, direct = modules("recurrent")
    cell = from_factory.Cell(x_in_features=3, rngs=nnx.Rngs(0))
    direct_cell = direct.Cell(x_in_features=3, rngs=nnx.Rngs(0))
    factory_state, direct_state = nnx.state(cell, nnx.Param), nnx.state(direct_cell, nnx.Param)
    assert jax.tree.structure(factory_state) == jax.tree.structure(direct_state)
    for a, b in zip(jax.tree.leaves(factory_state), jax.tree.leaves(direct_state), strict=True):
        np.testing.assert_array_equal(a, b)
    default = inspect.signature(from_factory.Cell.__init__).parameters["cell"].default
    init = default.keywords["recurrent_kernel_init"]
    assert init.__qualname__ == nnx.initializers.orthogonal().__qualname__
    nnx_own = inspect.signature(nnx.LSTMCell.__init__).parameters["recurrent_kernel_init"].default
    assert init.__qualname__ != nnx_own.__qualname__
    model = from_factory.NormDrop(in_features=5, rngs=nnx.Rngs(0))
    assert model.batch_norm_0.use_running_average is None
    assert model.dropout_0.deterministic is None
    with pytest.raises(ValueError):
        model.batch_norm_0(jax.numpy.ones((2, 3)))  # as Linen: train or eval must be given


def _marked_graph_mode_only(nnx_class) -> bool:
    """Whether the converted class carries the rewrite's TODO that it holds a module twice
    (Linen's weight sharing), which NNX's tree mode cannot hold: every other class is
    proven in tree mode too."""
    import inspect

    return any("TODO(nnx-migrate)" in line and "tree mode" in line for line in inspect.getsource(nnx_class).splitlines())


def _assert_tree_mode_rejects_shared_submodules(nnx_class, linen_instance, inputs, example) -> None:
    """The class the TODO marks does hold one submodule under two attributes, and tree
    mode rejects it (`Duplicate ...`): the graph-mode run of the test is its proof. Tree
    mode has no shared references at all (FLIP 5310)."""
    import jax
    from flax import nnx

    from nnx_migrate.equivalence.construction import build_from_linen

    if example.get("nnx_kwargs"):
        model = nnx_class(**example["fields"], **example["nnx_kwargs"], rngs=nnx.Rngs(0))
    else:
        # sizes the rewrite left as arguments are read off the Linen variables' shapes
        # (a class whose Linen call needs a mode flag the example leaves to the harness
        # has no open sizes: built without the shapes)
        try:
            variables = jax.eval_shape(linen_instance.init, jax.random.key(0), *inputs)
        except ValueError:
            variables = None
        model = build_from_linen(nnx_class, linen_instance, inputs, variables=variables)
    assert _shared_submodules(model)
    with pytest.raises(ValueError, match="Duplicate"):
        nnx.split(model, graph=False)


def _shared_submodules(model) -> list[str]:
    """Attribute paths at which a Module already reached by another path is found again."""
    from flax import nnx

    seen: dict[int, str] = {}
    again: list[str] = []

    def walk(node, path):
        for name, value in vars(node).items():
            if not isinstance(value, nnx.Module):
                continue
            where = f"{path}/{name}"
            if id(value) in seen:
                again.append(where)
                continue
            seen[id(value)] = where
            walk(value, where)

    walk(model, "")
    return again
