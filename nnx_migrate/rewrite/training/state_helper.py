"""The `TrainState` class written into a converted program, one form per `--train-style`.

Both forms have the same small interface, so the converted steps read the same:
`TrainState.create(model, tx)`, `state.merge() -> (model, optimizer)` (live NNX objects),
`state.updated(model, optimizer)` (a state holding their current values), and the eager
properties `state.model`, `state.optimizer`.

- `flat-state` (default): an immutable pytree whose children are the flat list of the
  model's and optimizer's arrays, like Linen's TrainState. Steps stay plain `jax.jit`
  functions that take and return the state; jit flattens a list instead of walking the
  object graph, which keeps a small model's step as fast as Linen's (see
  benchmarks/step_speed.py).
- `nnx-jit`: the textbook form, an `nnx.Module` holding both objects, updated in place by
  `@nnx.jit` steps.

The emitted code imports only jax, flax and optax: never nnx_migrate.
"""

from __future__ import annotations

FLAT_STATE = '''\
@jax.tree_util.register_pytree_node_class
class {name}:
  """The model and its optimizer as one immutable pytree, the NNX form of Linen's TrainState.

  Why not `@nnx.jit`: it walks the Python object graph on every call, which makes a small
  model's train step several times slower than Linen's. A plain `jax.jit` over this flat
  list of arrays costs what the Linen step costs. `merge()` gives live NNX objects (inside
  or outside a step); `updated()` packs their current values into a new state.
  """

  def __init__(self, graphdef, treedef, leaves):
    self.graphdef, self.treedef, self.leaves = graphdef, treedef, list(leaves)

  @classmethod
  def create(cls, model, tx):
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    leaves, treedef = jax.tree.flatten(state)
    return cls(graphdef, treedef, leaves)

  def merge(self):
    return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, self.leaves))

  def updated(self, model, optimizer):
    # values sown during a step (nnx.Intermediate) are not kept, as Linen drops them
    return type(self)(self.graphdef, self.treedef, jax.tree.leaves(nnx.state((model, optimizer), nnx.Not(nnx.Intermediate))))

  @property
  def model(self):
    return self.merge()[0]

  @property
  def optimizer(self):
    return self.merge()[1]

  def tree_flatten(self):
    return self.leaves, (self.graphdef, self.treedef)

  @classmethod
  def tree_unflatten(cls, static, leaves):
    return cls(*static, leaves)
'''

NNX_JIT = '''\
class {name}(nnx.Module):
  """The model and its optimizer, the NNX form of Linen's TrainState; steps update it in place."""

  def __init__(self, model, optimizer):
    self.model = model
    self.optimizer = optimizer

  @classmethod
  def create(cls, model, tx):
    return cls(model, nnx.Optimizer(model, tx, wrt=nnx.Param))

  def merge(self):
    return self.model, self.optimizer

  def updated(self, model, optimizer):
    return self
'''

SOURCES = {"flat-state": FLAT_STATE, "nnx-jit": NNX_JIT}

# Added to either form when the program passes a state's `apply_fn` on as a value (to a
# function that calls `apply_fn({'params': p}, x)`, which the pass makes `p(x)`): called
# the Linen way, with the model where Linen passed its variables, it calls the model.
APPLY_FN = '''
  @staticmethod
  def apply_fn(model, *args, **kwargs):
    return model(*args, **kwargs)
'''


def helper_source(style: str, name: str, indent: str = "  ", apply_fn: bool = False) -> str:
    source = SOURCES[style].format(name=name) + (APPLY_FN if apply_fn else "")
    return source.replace("  ", indent)
