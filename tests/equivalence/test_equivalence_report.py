"""Leaf comparison, output flattening and the report's content."""

import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from nnx_migrate.equivalence import DEFAULT_ATOL, DEFAULT_RTOL, compare
from nnx_migrate.equivalence.leaf_comparison import compare_leaf, compare_trees
from nnx_migrate.equivalence.output_trees import flatten_outputs, projection_loss


def test_defaults_are_tight_for_float32():
    assert (DEFAULT_RTOL, DEFAULT_ATOL) == (1e-6, 1e-6)


def test_tolerance_is_atol_plus_rtol_times_the_linen_value():
    ref = np.array([100.0, 0.0], np.float32)
    # allowed error: 1e-6 + 1e-6 * |linen| = 1.01e-4 at 100, 1e-6 at 0
    assert compare_leaf("a", "a", ref, ref + np.array([3e-4, 0], np.float32), 1e-6, 1e-6).ok is False
    assert compare_leaf("a", "a", ref, ref + np.array([0, 3e-6], np.float32), 1e-6, 1e-6).ok is False
    assert compare_leaf("a", "a", ref, ref + np.array([5e-5, 5e-7], np.float32), 1e-6, 1e-6).ok is True
    loose = compare_leaf("a", "a", ref, ref + np.array([3e-4, 0], np.float32), 1e-5, 1e-6)
    assert loose.ok and loose.max_abs_diff == pytest.approx(3e-4, rel=0.1)


def test_shape_dtype_nan_and_integer_differences():
    assert "shape" in compare_leaf("a", "a", np.zeros(3), np.zeros(4), 1e-6, 1e-6).problem
    assert "dtype" in compare_leaf("a", "a", np.zeros(3, np.float32), np.zeros(3, np.float16), 1, 1).problem
    nan = compare_leaf("a", "a", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), 1e-6, 1e-6)
    assert not nan.ok and "NaN" in nan.problem
    assert compare_leaf("a", "a", np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 1e-6, 1e-6).ok
    ints = compare_leaf("a", "a", np.array([1, 2, 3]), np.array([1, 2, 4]), 1.0, 1.0)
    assert not ints.ok and "1 of 3 integer values differ" in ints.problem


def test_structure_differences_show_as_missing_leaves():
    diffs = compare_trees({"[0]": np.zeros(2), "[1]": np.zeros(2)}, {"[0]": np.zeros(2), "[2]": np.zeros(2)}, 1e-6, 1e-6)
    assert [(d.name, d.ok, d.problem) for d in diffs] == [
        ("[0]", True, ""), ("[1]", False, "missing on the NNX side"), ("[2]", False, "only on the NNX side")]


def test_outputs_flatten_through_tuples_dicts_dataclasses_and_namedtuples():
    @dataclasses.dataclass
    class Out:
        logits: object
        aux: object

    tree = (Out(jnp.zeros(2), {"b": 1.0, "a": None}), [jnp.ones(1)])
    assert list(flatten_outputs(tree)) == ["[0].logits", "[0].aux['b']", "[1][0]"]
    assert list(flatten_outputs(jnp.zeros(3))) == ["output"]


def test_projection_loss_sees_changes_a_plain_sum_would_miss():
    rows = jnp.array([[0.2, 0.8], [0.5, 0.5]])
    swapped = rows[:, ::-1]  # same row sums
    assert float(rows.sum()) == float(swapped.sum())
    assert float(projection_loss({"p": rows})) != float(projection_loss({"p": swapped}))


@pytest.fixture(scope="module")
def failing_result(linen, ports):
    return compare(linen.MLP(), ports.MLPWrongActivation, jnp.ones((2, 10)))


def test_report_lists_every_leaf_and_the_verdict(failing_result):
    text = str(failing_result)
    assert "params/Dense_0/kernel -> dense_0.kernel" in text
    assert "outputs (forward): DIFFERS" in text
    assert "DIFF output: max|diff|" in text
    assert text.splitlines()[-1].startswith("NOT EQUIVALENT: outputs (forward)")


def test_json_form_is_serialisable_and_complete(failing_result):
    data = json.loads(json.dumps(failing_result.to_dict()))
    assert data["ok"] is False
    assert data["first_divergence"][0]["nnx"] == "dense_1"
    assert {c["name"] for c in data["checks"]} == {"outputs (forward)", "gradients (forward)"}
    assert math.isclose(data["max_abs_diff"], failing_result.max_abs_diff)
