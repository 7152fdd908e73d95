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


TEST_CLASS = textwrap.dedent('''
    import unittest
    import jax, jax.numpy as jnp
    from models import *

    class TestModels(unittest.TestCase):
        def setUp(self):
            self.batch, self.length = 4, 9
            self.tokens = jnp.arange(self.batch * self.length, dtype=jnp.int32).reshape((self.batch, -1))
            self.inputs = self.tokens[:, :-1]
            self.hyper = {"layers": 2, "width": 8 * 2}

        def test_decoder(self):
            model = Decoder(**self.hyper, heads=2)
            self._check(model)

        def _check(self, model):
            rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
            params = model.init(rngs, self.inputs)["params"]

    def test_jit_init_and_draws():
        key = jax.random.key(0)
        n, d = 3, 5
        ids = jax.random.randint(key, (n, d + 1), 0, 50)
        mask = jax.random.bernoulli(key, 0.5, (n, d + 1))
        jax.jit(Encoder(size=d).init)(key, ids, mask, train=False)
''')


def test_test_classes_helpers_splats_and_computed_shapes():
    found = collect_examples(TEST_CLASS, {"Decoder", "Encoder"}, "test_models.py")
    (decoder,) = found["Decoder"]
    assert decoder.kwargs == {"layers": 2, "width": 16, "heads": 2}
    # arange(36).reshape((4, -1))[:, :-1]: int32, values 0..35
    assert decoder.inputs == ["int32[4,8]:0..36"]
    assert decoder.where == "test_models.py:19"
    (encoder,) = found["Encoder"]
    assert (encoder.kwargs, encoder.inputs, encoder.call) == ({"size": 5}, ["int32[3,6]:0..50", "bool[3,6]"], {"train": False})


def test_a_helper_called_with_an_unknown_model_gives_nothing():
    source = TEST_CLASS.replace("model = Decoder(**self.hyper, heads=2)", "model = Decoder(**self.hyper, heads=self.missing)")
    assert "Decoder" not in collect_examples(source, {"Decoder", "Encoder"}, "test_models.py")
