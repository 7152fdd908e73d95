"""NNX ports of `linen_models.py`: correct ones and deliberately wrong ones.

Classes named `*Rewrite` follow the rewrite's contract (built by the harness from the
Linen fields and input sizes, mapped by the naming convention). The `Hand*` classes are
hand-written ports with their own attribute names, passed to the harness as instances.
"""

import dataclasses

import jax.numpy as jnp
from flax import nnx


# -- MLP --------------------------------------------------------------------------------
class MLPRewrite(nnx.Module):
    def __init__(self, features=16, out=4, *, in_features, rngs):
        self.dense_0 = nnx.Linear(in_features, features, rngs=rngs)
        self.dense_1 = nnx.Linear(features, out, rngs=rngs)

    def __call__(self, x):
        return self.dense_1(nnx.relu(self.dense_0(x)))


class MLPWrongActivation(MLPRewrite):
    def __call__(self, x):
        return self.dense_1(nnx.gelu(self.dense_0(x)))


class MLPMissingBias(nnx.Module):
    def __init__(self, features=16, out=4, *, in_features, rngs):
        self.dense_0 = nnx.Linear(in_features, features, rngs=rngs)
        self.dense_1 = nnx.Linear(features, out, use_bias=False, rngs=rngs)

    def __call__(self, x):
        return self.dense_1(nnx.relu(self.dense_0(x)))


class HandMLP(nnx.Module):
    def __init__(self, in_features, hidden, out, rngs):
        self.hidden = nnx.Linear(in_features, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, out, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.hidden(x)))


class TorchLayoutLinear(nnx.Module):
    """Stores its kernel as (out, in), the way PyTorch does."""

    def __init__(self, in_features, out_features, rngs):
        self.weight = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (out_features, in_features)))
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    def __call__(self, x):
        return x @ self.weight[...].T + self.bias[...]


class HandMLPTorchLayout(nnx.Module):
    def __init__(self, in_features, hidden, out, rngs):
        self.hidden = TorchLayoutLinear(in_features, hidden, rngs)
        self.head = TorchLayoutLinear(hidden, out, rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.hidden(x)))


# -- SquareMLP --------------------------------------------------------------------------
class SquareMLPRewrite(nnx.Module):
    def __init__(self, width=8, *, in_features, rngs):
        self.dense_0 = nnx.Linear(in_features, width, rngs=rngs)
        self.dense_1 = nnx.Linear(width, width, rngs=rngs)
        self.dense_2 = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.dense_0(x))
        x = nnx.relu(self.dense_1(x))
        return self.dense_2(x)


class SquareMLPSwapped(SquareMLPRewrite):
    def __call__(self, x):
        x = nnx.relu(self.dense_1(x))  # dense_1 and dense_0 applied in the wrong order
        x = nnx.relu(self.dense_0(x))
        return self.dense_2(x)


class SquareMLPTransposedKernel(SquareMLPRewrite):
    def __call__(self, x):
        x = nnx.relu(self.dense_0(x))
        layer = self.dense_1
        x = nnx.relu(x @ layer.kernel[...].T + layer.bias[...])  # kernel used transposed
        return self.dense_2(x)


# -- CNN with BatchNorm and Dropout -------------------------------------------------------
class HandCNN(nnx.Module):
    def __init__(self, channels, height, width, *, dropout_rate=0.5, momentum=0.9, classes=5, rngs):
        self.conv = nnx.Conv(channels, 6, (3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(6, momentum=momentum, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
        self.classifier = nnx.Linear(6 * (height // 2) * (width // 2), classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        x = self.conv(x)
        x = self.norm(x, use_running_average=not train)
        x = nnx.relu(x)
        x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = self.dropout(x, deterministic=not train)
        return self.classifier(x)


# -- Transformer block ------------------------------------------------------------------
class HandTransformerBlock(nnx.Module):
    def __init__(self, dim, *, num_heads=2, mlp_dim=12, epsilon=1e-6, attention_dropout=0.0, rngs):
        self.ln1 = nnx.LayerNorm(dim, epsilon=epsilon, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads, dim, dropout_rate=attention_dropout, decode=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, epsilon=epsilon, rngs=rngs)
        self.fc_in = nnx.Linear(dim, mlp_dim, rngs=rngs)
        self.fc_out = nnx.Linear(mlp_dim, dim, rngs=rngs)

    def __call__(self, x, deterministic: bool = True):
        x = x + self.attn(self.ln1(x), deterministic=deterministic)
        y = self.fc_out(nnx.gelu(self.fc_in(self.ln2(x))))
        return x + y


class HandTransformerBlockCrossedNames(HandTransformerBlock):
    """Correct, with its norms named the other way round: `ln2` is applied first."""

    def __call__(self, x, deterministic: bool = True):
        x = x + self.attn(self.ln2(x), deterministic=deterministic)
        y = self.fc_out(nnx.gelu(self.fc_in(self.ln1(x))))
        return x + y


# -- Embed ------------------------------------------------------------------------------
class EmbedClassifierRewrite(nnx.Module):
    def __init__(self, vocab=20, dim=8, classes=3, *, rngs):
        self.embed_0 = nnx.Embed(vocab, dim, rngs=rngs)
        self.dense_0 = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, tokens):
        return self.dense_0(self.embed_0(tokens).mean(axis=1))


class HandEmbedClassifier(nnx.Module):
    def __init__(self, vocab, dim, classes, rngs):
        self.tokens = nnx.Embed(vocab, dim, rngs=rngs)
        self.logits = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, tokens):
        return self.logits(self.tokens(tokens).mean(axis=1))


# -- AutoEncoder (methods) ------------------------------------------------------------
class AutoEncoderRewrite(nnx.Module):
    def __init__(self, latent=3, dim=6, *, in_features, rngs):
        self.encoder = nnx.Linear(in_features, latent, rngs=rngs)
        self.decoder = nnx.Linear(latent, dim, rngs=rngs)

    def encode(self, x):
        return jnp.tanh(self.encoder(x))

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x):
        return self.decode(self.encode(x))


class AutoEncoderWrongEncode(AutoEncoderRewrite):
    def encode(self, x):
        return nnx.relu(self.encoder(x))  # Linen's encode uses tanh

    def __call__(self, x):
        return self.decode(jnp.tanh(self.encoder(x)))


# -- Stack (setup list) ------------------------------------------------------------------
class StackRewrite(nnx.Module):
    def __init__(self, width=8, depth=3, *, in_features, rngs):
        sizes = [in_features] + [width] * depth
        self.layers = nnx.List([nnx.Linear(sizes[i], width, rngs=rngs) for i in range(depth)])
        self.head = nnx.Linear(width, 2, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)


# -- Counting (raw param, custom collection, dataclass output) ---------------------------
class Counters(nnx.Variable):
    pass


@dataclasses.dataclass
class Encoded:
    hidden: jnp.ndarray
    pooled: jnp.ndarray


class CountingRewrite(nnx.Module):
    def __init__(self, *, in_features, rngs):
        self.w = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (in_features, 3)))
        self.calls = Counters(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.calls[...] += 1
        hidden = x @ self.w[...]
        return Encoded(hidden=hidden, pooled=hidden.sum(axis=-1))


class CountingTwice(CountingRewrite):
    def __call__(self, x):
        self.calls[...] += 2  # counts each call twice
        hidden = x @ self.w[...]
        return Encoded(hidden=hidden, pooled=hidden.sum(axis=-1))


class TwoInputsRewrite(nnx.Module):
    def __init__(self, features=5, *, in_features, context_in_features, rngs):
        self.dense_0 = nnx.Linear(in_features, features, rngs=rngs)
        self.context_proj = nnx.Linear(context_in_features, features, rngs=rngs)

    def __call__(self, x, context):
        return self.dense_0(x) + self.context_proj(context)


class HandCNNModeSwitched(nnx.Module):
    """Idiomatic NNX: no `train` flag; `model.train()` / `model.eval()` switch the layers."""

    def __init__(self, channels, height, width, *, dropout_rate=0.5, momentum=0.9, classes=5, rngs):
        self.conv = nnx.Conv(channels, 6, (3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(6, momentum=momentum, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
        self.classifier = nnx.Linear(6 * (height // 2) * (width // 2), classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.conv(x)))
        x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        x = self.dropout(x.reshape((x.shape[0], -1)))
        return self.classifier(x)


# -- sizes left as arguments, swapped twins, bfloat16 ------------------------------------
class FlattenRewrite(nnx.Module):
    def __init__(self, features=4, *, dense_0_in_features: int, rngs):
        self.dense_0 = nnx.Linear(dense_0_in_features, features, rngs=rngs)
        self.dense_1 = nnx.Linear(features, 2, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.dense_0(x.reshape((x.shape[0], -1))))
        return self.dense_1(x)


class NormedPairRewrite(nnx.Module):
    def __init__(self, *, in_features, rngs):
        self.layer_norm_0 = nnx.LayerNorm(in_features, rngs=rngs)
        self.dense_0 = nnx.Linear(in_features, in_features, rngs=rngs)
        self.layer_norm_1 = nnx.LayerNorm(in_features, rngs=rngs)

    def __call__(self, x):
        return self.layer_norm_1(self.dense_0(self.layer_norm_0(x)))


class NormedPairSwapped(NormedPairRewrite):
    def __call__(self, x):
        return self.layer_norm_0(self.dense_0(self.layer_norm_1(x)))  # the twins swapped


class HalfPrecisionMLPRewrite(nnx.Module):
    def __init__(self, features=16, *, in_features, rngs):
        half = dict(dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, rngs=rngs)
        self.dense_0 = nnx.Linear(in_features, features, **half)
        self.layer_norm_0 = nnx.LayerNorm(features, **half)
        self.dense_1 = nnx.Linear(features, 4, **half)

    def __call__(self, x):
        return self.dense_1(self.layer_norm_0(nnx.gelu(self.dense_0(x))))


class HalfPrecisionMLPWrongActivation(HalfPrecisionMLPRewrite):
    def __call__(self, x):
        return self.dense_1(self.layer_norm_0(nnx.relu(self.dense_0(x))))
