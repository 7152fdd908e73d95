"""`linen_net.Net` as `nnx-migrate rewrite` writes it (names by the naming convention:
`layers` an nnx.List, `stack` a vmapped stack run with nnx.scan), and the same training
step in NNX."""

import jax.numpy as jnp
from flax import nnx


class Block(nnx.Module):
    def __init__(self, width, *, in_features, rngs):
        self.dense_0 = nnx.Linear(in_features, width, rngs=rngs)

    def __call__(self, x, _):
        return nnx.relu(self.dense_0(x)), None


class Net(nnx.Module):
    # the flattened input size is unknown to the rewrite: a constructor argument
    def __init__(self, hidden=8, *, layers_0_in_features: int, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(layers_0_in_features, hidden, rngs=rngs),
                                nnx.Linear(hidden, hidden, rngs=rngs)])
        self.norm = nnx.BatchNorm(hidden, momentum=0.9, rngs=rngs)

        @nnx.split_rngs(splits=2)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_stack(rngs):
            return Block(hidden, in_features=hidden, rngs=rngs)

        self.stack = make_stack(rngs)
        self.head = nnx.Linear(hidden, 3, rngs=rngs)

    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for layer in self.layers:
            x = nnx.relu(layer(x))
        x = self.norm(x, use_running_average=not train)

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def run(x, block):
            y, _ = block(x, None)
            return y

        x = run(x, self.stack)
        return self.head(x)


@nnx.jit
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        return jnp.mean((model(x, train=True) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def train(model, optimizer, batch, targets, steps: int, start: int):
    return [float(train_step(model, optimizer, batch * (1 + 0.1 * (start + i)), targets)) for i in range(steps)]
