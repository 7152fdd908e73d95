"""A Linen model and the training program around it, saving in every format Linen code uses.

The model holds what a checkpoint converter must carry: a setup list (`layers_0`,
`layers_1`), BatchNorm statistics, a stack of layers built with `nn.scan` (kernels with
a leading layer axis), and an input flattened before the first layer (the rewrite leaves
that size as a constructor argument). The optimizer chains gradient clipping with Adam on
a schedule, so its state holds a chain, moments and two counts.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

# the run the tests save after, and how far they resume
TRAINED_STEPS = 3
RESUMED_STEPS = 3
BATCH = jax.random.normal(jax.random.key(10), (4, 2, 3))
TARGETS = jax.random.normal(jax.random.key(11), (4, 3))


class Block(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, _):
        return nn.relu(nn.Dense(self.width)(x)), None


class Net(nn.Module):
    hidden: int = 8

    def setup(self):
        self.layers = [nn.Dense(self.hidden), nn.Dense(self.hidden)]
        self.norm = nn.BatchNorm(momentum=0.9)
        self.stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=2)(self.hidden)
        self.head = nn.Dense(3)

    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        for layer in self.layers:
            x = nn.relu(layer(x))
        x = self.norm(x, use_running_average=not train)
        x, _ = self.stack(x, None)
        return self.head(x)


class TrainState(train_state.TrainState):
    batch_stats: dict


def make_tx():
    schedule = optax.linear_schedule(1e-2, 1e-3, transition_steps=10)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def create_state(hidden: int = 8, seed: int = 0) -> TrainState:
    model = Net(hidden)
    variables = model.init(jax.random.key(seed), BATCH)
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=make_tx(),
                             batch_stats=variables["batch_stats"])


@jax.jit
def train_step(state: TrainState, x, y):
    def loss_fn(params):
        out, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, x, train=True,
                                      mutable=["batch_stats"])
        return jnp.mean((out - y) ** 2), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads).replace(batch_stats=updates["batch_stats"])
    return state, loss


def train(state: TrainState, steps: int):
    losses = []
    for i in range(steps):
        state, loss = train_step(state, BATCH * (1 + 0.1 * i), TARGETS)
        losses.append(float(loss))
    return state, losses
