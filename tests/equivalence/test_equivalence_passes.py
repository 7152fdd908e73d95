"""How the passes run: compiled and cached, eager fallback, dropout in the inference call."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from nnx_migrate.equivalence import compare, running

X = jax.random.normal(jax.random.key(0), (3, 4))


class ListSizes(nn.Module):
    sizes: list  # a list field makes the module unhashable: no compiled pass

    @nn.compact
    def __call__(self, x):
        for size in self.sizes:
            x = nn.tanh(nn.Dense(size)(x))
        return x


class ListSizesRewrite(nnx.Module):
    def __init__(self, sizes, *, in_features, rngs):
        widths = [in_features, *sizes]
        self.count = len(sizes)
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            setattr(self, f"dense_{i}", nnx.Linear(a, b, rngs=rngs))

    def layers(self):
        return [getattr(self, f"dense_{i}") for i in range(self.count)]

    def __call__(self, x):
        for layer in self.layers():
            x = nnx.tanh(layer(x))
        return x


class ListSizesWrong(ListSizesRewrite):
    def __call__(self, x):
        for layer in self.layers():
            x = nnx.relu(layer(x))
        return x


def test_unhashable_models_fall_back_to_the_eager_gradient_pass():
    model = ListSizes(sizes=[5, 2])
    variables = model.init(jax.random.key(0), X)
    try:
        hash(model)
    except TypeError:
        pass
    else:
        raise AssertionError("the test needs an unhashable Linen module")
    eager = running.run_linen(model, variables, (X,), "__call__", {}, with_grads=True, seed=0)
    assert set(eager.grads) == {"Dense_0", "Dense_1"}
    right = compare(model, ListSizesRewrite, X)
    assert right.ok, str(right)
    assert [p.nnx_name for p in right.weight_map.param_pairs()][0] == "dense_0.kernel"
    wrong = compare(model, ListSizesWrong, X)
    assert not wrong.ok
    assert not next(c for c in wrong.checks if c.name == "gradients (forward)").ok
    assert wrong.divergences[0].nnx_path == "dense_1"  # the activation sits between 0 and 1


def test_a_second_compare_of_the_same_setup_reuses_the_compiled_passes(linen, ports):
    x = jnp.ones((2, 10))
    compare(linen.MLP(), ports.MLPRewrite, x)
    sizes = (running._linen_run_compiled._cache_size(), running._nnx_run_compiled._cache_size())
    again = compare(linen.MLP(), ports.MLPRewrite, x)
    assert again.ok
    assert (running._linen_run_compiled._cache_size(), running._nnx_run_compiled._cache_size()) == sizes
    assert again.checks[0].leaves  # the cached call still returns the outputs ...
    again_wrong = compare(linen.MLP(), ports.MLPWrongActivation, x)
    assert again_wrong.divergences[0].nnx_path == "dense_1"  # ... and the submodule records


def test_gradients_can_be_left_out(linen, ports):
    result = compare(linen.MLP(), ports.MLPRewrite, X[:, :2].repeat(5, axis=1), gradients=False)
    assert result.ok
    assert [c.name for c in result.checks] == ["outputs (forward)"]


def test_dropout_on_in_the_inference_call_gets_identical_masks(linen, ports):
    x = jax.random.normal(jax.random.key(2), (2, 6, 6, 3))
    right = compare(linen.CNN(), ports.HandCNN(3, 6, 6, rngs=nnx.Rngs(0)), x,
                    call_kwargs={"train": True}, train_kwargs=None)
    assert right.ok, str(right)
    wrong = compare(linen.CNN(), ports.HandCNN(3, 6, 6, dropout_rate=0.4, rngs=nnx.Rngs(0)), x,
                    call_kwargs={"train": True}, train_kwargs=None)
    assert not next(c for c in wrong.checks if c.name == "outputs (forward)").ok


class WordDrop(nn.Module):
    rate: float = 0.5

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        x = nn.Dense(4)(x)
        if deterministic:
            return x
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1 - self.rate, x.shape)
        return jnp.where(keep, x, 0.0)


class WordDropPort(nnx.Module):
    def __init__(self, rate: float = 0.5, *, in_features: int, rngs: nnx.Rngs):
        self.rate = rate
        self.dense_0 = nnx.Linear(in_features, 4, rngs=rngs)
        self.rngs = rngs

    def __call__(self, x, deterministic: bool = True):
        x = self.dense_0(x)
        if deterministic:
            return x
        keep = jax.random.bernoulli(self.rngs.dropout(), 1 - self.rate, x.shape)
        return jnp.where(keep, x, 0.0)


class WordDropOtherRate(WordDropPort):
    def __init__(self, rate: float = 0.5, *, in_features: int, rngs: nnx.Rngs):
        super().__init__(0.25, in_features=in_features, rngs=rngs)


def test_dropout_keys_drawn_by_hand_are_the_same_on_both_sides():
    result = compare(WordDrop(), WordDropPort, X)
    assert result.ok, str(result)
    assert "outputs (train-mode forward): ok" in str(result)
    wrong = compare(WordDrop(), WordDropOtherRate, X)
    assert not wrong.ok and "outputs (forward): ok" in str(wrong)
    assert "outputs (train-mode forward): DIFFERS" in str(wrong)
