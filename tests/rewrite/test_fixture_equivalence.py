"""Every converted fixture class computes what its Linen original computes, with the same
weights: the equivalence harness builds the NNX class from the Linen fields and example
inputs, copies the weights by the naming convention and compares outputs, gradients and
train-mode state."""

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

    def get(case):
        if case not in loaded:
            loaded[case] = (
                load_module(FIXTURES / f"{case}.in.py", f"fixture_in_{case}"),
                load_module(FIXTURES / f"{case}.out.py", f"fixture_out_{case}"),
            )
        return loaded[case]

    return get


@pytest.mark.parametrize("case,class_name", PAIRS, ids=[f"{c}:{n}" for c, n in PAIRS])
def test_converted_class_is_equivalent(modules, case, class_name):
    import jax
    from flax import nnx

    from nnx_migrate.equivalence import compare

    linen_mod, nnx_mod = modules(case)
    example = linen_mod.EXAMPLES[class_name]
    keys = jax.random.split(jax.random.key(0), len(example["inputs"]))
    inputs = [make_input(spec, key) for spec, key in zip(example["inputs"], keys)]
    linen_instance = getattr(linen_mod, class_name)(**example["fields"])
    nnx_class = getattr(nnx_mod, class_name)
    tolerances = {k: example[k] for k in ("rtol", "atol", "mapping") if k in example}
    if example.get("nnx_kwargs"):
        target = nnx_class(**example["fields"], **example["nnx_kwargs"], rngs=nnx.Rngs(0))
        result = compare(linen_instance, target, *inputs, match="names", **tolerances)
    else:
        result = compare(linen_instance, nnx_class, *inputs, **tolerances)
    assert result.ok, str(result)
    assert result.max_abs_diff <= 1e-5
