"""Every collection and container the naming convention covers: custom collections, a
decoding cache, setup dicts (nnx.Dict entries), a bare params tree and a variables dict."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx, serialization

from nnx_migrate.checkpoint import load_linen_checkpoint


class Heads(nn.Module):
    def setup(self):
        self.heads = {"cls": nn.Dense(2), "box": nn.Dense(4)}
        self.calls = self.variable("counters", "calls", lambda: jnp.zeros((), jnp.int32))
        self.last = self.variable("cache", "last", lambda: jnp.zeros((2, 3)))

    def __call__(self, x):
        if not self.is_initializing():
            self.calls.value += 1
            self.last.value = x
        return self.heads["cls"](x), self.heads["box"](x)


class Counters(nnx.Variable):
    pass


class HeadsNNX(nnx.Module):
    def __init__(self, *, in_features, rngs):
        self.heads = nnx.Dict({"cls": nnx.Linear(in_features, 2, rngs=rngs),
                               "box": nnx.Linear(in_features, 4, rngs=rngs)})
        self.calls = Counters(jnp.zeros((), jnp.int32))
        self.last = nnx.Cache(jnp.zeros((2, in_features)))

    def __call__(self, x):
        self.calls[...] += 1
        self.last[...] = x
        return self.heads["cls"](x), self.heads["box"](x)


def trained_variables():
    x = jax.random.normal(jax.random.key(0), (2, 3))
    variables = Heads().init(jax.random.key(1), x)
    for _ in range(2):
        _, updates = Heads().apply(variables, x, mutable=["counters", "cache"])
        variables = {**variables, **updates}
    return variables, x


def test_custom_collection_cache_and_dict_entries_are_placed(tmp_path):
    variables, x = trained_variables()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "vars", variables)
    checkpointer.wait_until_finished()
    model = HeadsNNX(in_features=3, rngs=nnx.Rngs(0))
    report = load_linen_checkpoint(tmp_path / "vars", model)
    assert report.layout.startswith("variables dict")
    assert int(model.calls[...]) == 2
    np.testing.assert_array_equal(model.last[...], x)
    np.testing.assert_array_equal(model.heads["box"].kernel[...], variables["params"]["heads_box"]["kernel"])
    linen_out = Heads().apply(variables, x, mutable=["counters", "cache"])[0]
    for a, b in zip(model(x), linen_out, strict=False):
        np.testing.assert_array_equal(a, b)


def test_a_bare_params_tree_in_msgpack(tmp_path):
    variables, x = trained_variables()
    (tmp_path / "params.msgpack").write_bytes(serialization.to_bytes(variables["params"]))

    class HeadsOnly(nnx.Module):
        def __init__(self, rngs):
            self.heads = nnx.Dict({"cls": nnx.Linear(3, 2, rngs=rngs), "box": nnx.Linear(3, 4, rngs=rngs)})

    model = HeadsOnly(nnx.Rngs(0))
    report = load_linen_checkpoint(tmp_path / "params.msgpack", model)
    assert report.layout == "params tree" and report.leaves == 4
    np.testing.assert_array_equal(model.heads["cls"].bias[...], variables["params"]["heads_cls"]["bias"])
