"""Linen originals used by the equivalence tests (and the `check` CLI tests, by path)."""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    features: int = 16
    out: int = 4

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.features)(x))
        return nn.Dense(self.out)(x)


class SquareMLP(nn.Module):
    """Hidden layers of equal width, so a port that swaps two of them still runs."""

    width: int = 8

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width)(x))
        x = nn.relu(nn.Dense(self.width)(x))
        return nn.Dense(self.width)(x)


class CNN(nn.Module):
    dropout_rate: float = 0.5
    momentum: float = 0.9
    classes: int = 5

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(6, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum)(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.classes)(x)


class TransformerBlock(nn.Module):
    num_heads: int = 2
    mlp_dim: int = 12
    attention_dropout: float = 0.0

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        y = nn.LayerNorm()(x)
        y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dropout_rate=self.attention_dropout,
                                            deterministic=deterministic)(y)
        x = x + y
        y = nn.LayerNorm()(x)
        y = nn.Dense(self.mlp_dim)(y)
        y = nn.gelu(y)
        y = nn.Dense(x.shape[-1])(y)
        return x + y


class EmbedClassifier(nn.Module):
    vocab: int = 20
    dim: int = 8
    classes: int = 3

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.dim)(tokens)
        return nn.Dense(self.classes)(x.mean(axis=1))


class AutoEncoder(nn.Module):
    latent: int = 3
    dim: int = 6

    def setup(self):
        self.encoder = nn.Dense(self.latent)
        self.decoder = nn.Dense(self.dim)

    def encode(self, x):
        return jnp.tanh(self.encoder(x))

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x):
        return self.decode(self.encode(x))


class Stack(nn.Module):
    """A setup list (`layers_0`, `layers_1`, ...) and a user-named submodule."""

    width: int = 8
    depth: int = 3

    def setup(self):
        self.layers = [nn.Dense(self.width) for _ in range(self.depth)]
        self.head = nn.Dense(2)

    def __call__(self, x):
        for layer in self.layers:
            x = nn.relu(layer(x))
        return self.head(x)


@dataclasses.dataclass
class Encoded:
    hidden: jnp.ndarray
    pooled: jnp.ndarray


class Counting(nn.Module):
    """A raw `self.param`, a custom collection updated by each call, a dataclass output."""

    @nn.compact
    def __call__(self, x):
        w = self.param("w", nn.initializers.normal(1.0), (x.shape[-1], 3))
        calls = self.variable("counters", "calls", lambda: jnp.zeros((), jnp.int32))
        if not self.is_initializing():
            calls.value += 1
        hidden = x @ w
        return Encoded(hidden=hidden, pooled=hidden.sum(axis=-1))


class TwoInputs(nn.Module):
    """A second positional input whose size the NNX port needs (`context_in_features`)."""

    features: int = 5

    @nn.compact
    def __call__(self, x, context):
        return nn.Dense(self.features)(x) + nn.Dense(self.features, name="context_proj")(context)


class Wrapper(nn.Module):
    """A field holding a Linen submodule: the harness cannot convert it by itself."""

    inner: nn.Module

    @nn.compact
    def __call__(self, x):
        return self.inner(x)


class Flatten(nn.Module):
    """Flattens its input first: the rewrite cannot size `dense_0` and leaves
    `dense_0_in_features` as a constructor argument."""

    features: int = 4

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.features)(x.reshape((x.shape[0], -1))))
        return nn.Dense(2)(x)


class NormedPair(nn.Module):
    """Two LayerNorms around a Dense: fresh, both are all ones and zeros."""

    @nn.compact
    def __call__(self, x):
        x = nn.LayerNorm()(x)
        x = nn.Dense(x.shape[-1])(x)
        return nn.LayerNorm()(x)


class HalfPrecisionMLP(nn.Module):
    features: int = 16

    @nn.compact
    def __call__(self, x):
        x = nn.gelu(nn.Dense(self.features, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)(x))
        x = nn.LayerNorm(dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)(x)
        return nn.Dense(4, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16)(x)
