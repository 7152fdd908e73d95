"""The init-site collector: shapes written in the code become example inputs (no jax)."""

from __future__ import annotations

import textwrap

from nnx_migrate.checks.sites import collect_examples

SOURCE = textwrap.dedent('''
    import jax, jax.numpy as jnp
    from models import CNN, LM, Other
    SHAPE = (1, 28, 28, 1)

    def create(key, n):
        model = CNN(features=32, classes=10)
        params = model.init(key, jnp.ones(SHAPE), train=False)
        lm = LM(vocab=n)
        lm.init(key, jnp.zeros((2, 7), jnp.int32))
        Other().init({"params": key}, jax.random.normal(key, (4, 3)), jnp.ones((4,), dtype=jnp.bool_))
        return params

    def dynamic(key, batch):
        CNN(features=8).init(key, jnp.ones(batch.shape))
''')


def test_literal_init_sites_give_kwargs_inputs_and_call():
    found = collect_examples(SOURCE, {"CNN", "LM", "Other"}, "train.py")
    assert [(e.kwargs, e.inputs, e.call, e.where) for e in found["CNN"]] == [
        ({"features": 32, "classes": 10}, ["float32[1,28,28,1]"], {"train": False}, "train.py:8")]
    assert [(e.kwargs, e.inputs) for e in found["Other"]] == [({}, ["float32[4,3]", "bool[4]"])]


def test_sites_with_values_known_only_at_run_time_give_no_example():
    found = collect_examples(SOURCE, {"CNN", "LM", "Other"}, "train.py")
    assert "LM" not in found  # vocab=n is an argument of the function
    assert len(found["CNN"]) == 1  # the shape of `batch` is not written


def test_only_the_run_s_classes_are_collected():
    assert collect_examples(SOURCE, {"Other"}).keys() == {"Other"}
    assert collect_examples("def f(:\n", {"CNN"}) == {}


def test_dtype_keywords_become_their_names():
    found = collect_examples("def f(k):\n    CNN(dtype=jnp.bfloat16).init(k, jnp.ones((2, 3)))\n", {"CNN"})
    assert found["CNN"][0].kwargs == {"dtype": "bfloat16"}


def test_array_literals_numpy_draws_and_init_with_output():
    source = textwrap.dedent('''
        def test_model():
            size = 3
            model = models.TextClassifier(vocab_size=size, deterministic=True)
            token_ids = np.array([[2, 4, 3], [2, 6, 3]], dtype=np.int32)
            inputs = np.random.RandomState(0).normal(size=[2, size, 4])
            output, _ = model.init_with_output(rng, token_ids, inputs)
    ''')
    (example,) = collect_examples(source, {"TextClassifier"})["TextClassifier"]
    assert example.kwargs == {"vocab_size": 3, "deterministic": True}
    assert example.inputs == ["int32[2,3]:2..7", "float32[2,3,4]"]
