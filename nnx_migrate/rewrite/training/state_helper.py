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
  `@nnx.jit` steps. `updated()` and `replace()` return copies: a step may not return the
  Variables it was given in NNX's tree mode (`NNX_GRAPH_MODE=false`, the default Flax
  plans), which rejects the aliasing; the state passed in is updated in place all the same.

The emitted code imports only jax, flax and optax: never nnx_migrate.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    if not nnx.set_graph_updates.current_value():
      # NNX's tree mode: a step may not return the Variables it was given, so a copy
      model, optimizer = nnx.clone((model, optimizer))
    elif model is self.model and optimizer is self.optimizer:
      return self  # graph mode: the step updated this state in place (a copy costs every call)
    return type(self)(model, optimizer)
'''

SOURCES = {"flat-state": FLAT_STATE, "nnx-jit": NNX_JIT}

# The forms for a Linen TrainState subclass with fields of its own (besides the model
# state the model now holds, `batch_stats`): `{fields}` are carried beside the model and
# optimizer, so `create(model, tx, field=...)`, `state.field` and `state.replace(field=...)`
# work as in Linen. flat-state: pytree children (arrays are traced, replicated, donated
# with the state, as Linen's fields are), and Linen's `pytree_node=False` fields static
# (in the treedef); nnx-jit: `nnx.data` attributes of the module.
FLAT_STATE_FIELDS = '''\
@jax.tree_util.register_pytree_node_class
class {name}:
  """The model and its optimizer as one immutable pytree, the NNX form of Linen's TrainState.

  Why not `@nnx.jit`: it walks the Python object graph on every call, which makes a small
  model's train step several times slower than Linen's. A plain `jax.jit` over this flat
  list of arrays costs what the Linen step costs. `merge()` gives live NNX objects (inside
  or outside a step); `updated()` packs their current values into a new state.
  The Linen TrainState's own fields ride along as more pytree children ({fields_text}){static_text};
  `replace(field=...)` gives a copy with new values for them.
  """

  _FIELDS, _STATIC_FIELDS = {fields_tuple}, {static_tuple}

  def __init__(self, graphdef, treedef, leaves, *, {signature}):
    self.graphdef, self.treedef, self.leaves = graphdef, treedef, list(leaves)
{assignments}
  @classmethod
  def create(cls, model, tx, **fields):
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    leaves, treedef = jax.tree.flatten(state)
    return cls(graphdef, treedef, leaves, **fields)

  def merge(self):
    return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, self.leaves))

  def updated(self, model, optimizer):
    # values sown during a step (nnx.Intermediate) are not kept, as Linen drops them
    return self._with(jax.tree.leaves(nnx.state((model, optimizer), nnx.Not(nnx.Intermediate))))

  def replace(self, **fields):
    return self._with(self.leaves, **fields)

  def _with(self, leaves, **fields):
    values = {{name: getattr(self, name) for name in self._FIELDS + self._STATIC_FIELDS}}
    return type(self)(self.graphdef, self.treedef, leaves, **{{**values, **fields}})

  @property
  def model(self):
    return self.merge()[0]

  @property
  def optimizer(self):
    return self.merge()[1]

  def tree_flatten(self):
    children = (self.leaves, *(getattr(self, name) for name in self._FIELDS))
    return children, (self.graphdef, self.treedef, *(getattr(self, name) for name in self._STATIC_FIELDS))

  @classmethod
  def tree_unflatten(cls, static, children):
    (graphdef, treedef, *fixed), (leaves, *values) = static, children
    return cls(graphdef, treedef, leaves, **dict(zip(cls._FIELDS, values)), **dict(zip(cls._STATIC_FIELDS, fixed)))
'''

NNX_JIT_FIELDS = '''\
class {name}(nnx.Module):
  """The model and its optimizer, the NNX form of Linen's TrainState; steps update it in place.
  The Linen TrainState's own fields ({all_text}) are attributes; `replace(field=...)` gives a
  new state with new values for them (holding the same model and optimizer; in NNX's tree
  mode copies of them).
  """

  _FIELDS = {all_tuple}

  def __init__(self, model, optimizer, *, {signature}):
    self.model = model
    self.optimizer = optimizer
{module_assignments}
  @classmethod
  def create(cls, model, tx, **fields):
    return cls(model, nnx.Optimizer(model, tx, wrt=nnx.Param), **fields)

  def merge(self):
    return self.model, self.optimizer

  def updated(self, model, optimizer):
    return self._with(model, optimizer)

  def replace(self, **fields):
    return self._with(self.model, self.optimizer, **fields)

  def _with(self, model, optimizer, **fields):
    if not nnx.set_graph_updates.current_value():
      # NNX's tree mode: a step may not return the Variables it was given, so a copy
      # (graph mode shares them: a copy would cost every call)
      model, optimizer = nnx.clone((model, optimizer))
    values = {{name: getattr(self, name) for name in self._FIELDS}}
    return type(self)(model, optimizer, **{{**values, **fields}})
'''

# Added to either form when the program passes a state's `apply_fn` on as a value (to a
# function that calls `apply_fn({'params': p}, x)`, which the pass makes `p(x)`): called
# the Linen way, with the model where Linen passed its variables, it calls the model.
APPLY_FN = '''
  @staticmethod
  def apply_fn(model, *args, **kwargs):
    return model(*args, **kwargs)
'''


@dataclass(frozen=True)
class CarriedField:
    """A field of a Linen TrainState subclass the emitted state carries: its name, the
    source of its default (None: required) and whether Linen made it static
    (`struct.field(pytree_node=False)`)."""

    name: str
    default: str | None = None
    static: bool = False


def _tuple(names) -> str:
    names = [repr(n) for n in names]
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def _fields_source(style: str, name: str, fields: tuple[CarriedField, ...]) -> str:
    signature = ", ".join(f.name if f.default is None else f"{f.name}={f.default}" for f in fields)
    dynamic = [f.name for f in fields if not f.static]
    static = [f.name for f in fields if f.static]
    if style == "flat-state":
        assignments = "".join(f"    self.{f} = {f}\n" for f in dynamic + static)
        return FLAT_STATE_FIELDS.format(
            name=name, signature=signature, assignments=assignments,
            fields_tuple=_tuple(dynamic), static_tuple=_tuple(static),
            fields_text=", ".join(f"`{f}`" for f in dynamic) or "none",
            static_text=",\n  static ones (Linen's `pytree_node=False`) in the treedef: " + ", ".join(f"`{f}`" for f in static) if static else "",
        )
    assignments = "".join(f"    self.{f.name} = {f.name if f.static else f'nnx.data({f.name})'}\n" for f in fields)
    return NNX_JIT_FIELDS.format(name=name, signature=signature, module_assignments=assignments,
                                 all_tuple=_tuple([f.name for f in fields]), all_text=", ".join(f"`{f.name}`" for f in fields))


def helper_source(style: str, name: str, indent: str = "  ", apply_fn: bool = False, fields: tuple[CarriedField, ...] = ()) -> str:
    source = _fields_source(style, name, fields) if fields else SOURCES[style].format(name=name)
    source += APPLY_FN if apply_fn else ""
    return source.replace("  ", indent)
