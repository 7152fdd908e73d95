"""The `TrainState` class written into a converted program, one form per `--train-style`.

Both forms have the same small interface, so the converted steps read the same:
`TrainState.create(model, tx)`, `state.merge() -> (model, optimizer)` (live NNX objects),
`state.updated(model, optimizer)` (a state holding their current values), and the eager
properties `state.model`, `state.optimizer`.

- `flat-state` (default): a `flax.struct.PyTreeNode`, as Linen's TrainState is, whose
  pytree children are the flat list of the model's and optimizer's arrays (the graphdef
  and treedef static). Steps stay plain `jax.jit` functions that take and return the
  state; jit flattens a list instead of walking the object graph, which keeps a small
  model's step as fast as Linen's (see benchmarks/step_speed.py). A Linen subclass's own
  fields are more dataclass fields, declared as Linen declared them; `replace` is the
  dataclass's.
- `nnx-jit`: the textbook form, an `nnx.Module` holding both objects, updated in place by
  `@nnx.jit` steps. `updated()` and `replace()` return copies: a step may not return the
  Variables it was given in NNX's tree mode (`NNX_GRAPH_MODE=false`, the default Flax
  plans), which rejects the aliasing; the state passed in is updated in place all the same.
  A Linen subclass's own fields are attributes (`nnx.data`, static ones plain).

Either is about 20 lines (one line more per carried field).

The emitted code imports only jax, flax and optax: never nnx_migrate.
"""

from __future__ import annotations

from dataclasses import dataclass

FLAT_STATE = '''\
class {name}(struct.PyTreeNode):
  """Linen's TrainState for an NNX model: the model and its optimizer as one flat pytree, so a
  plain `jax.jit` step costs what Linen's does (`@nnx.jit` walks the object graph per call)."""

  graphdef: nnx.GraphDef = struct.field(pytree_node=False)
  treedef: jax.tree_util.PyTreeDef = struct.field(pytree_node=False)
  leaves: list
{fields}{field_names}
  @classmethod
  def create(cls, model, tx, **fields):
    graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))
    leaves, treedef = jax.tree.flatten(state)
    return cls(graphdef, treedef, leaves, **fields)

  def merge(self):
    return nnx.merge(self.graphdef, jax.tree.unflatten(self.treedef, self.leaves))

  def updated(self, model, optimizer):  # values sown in a step are dropped, as Linen drops them
    return self.replace(leaves=jax.tree.leaves(nnx.state((model, optimizer), nnx.Not(nnx.Intermediate))))

  model = property(lambda self: self.merge()[0])
  optimizer = property(lambda self: self.merge()[1])
'''

NNX_JIT = '''\
class {name}(nnx.Module):
  """Linen's TrainState for an NNX model: the model and its optimizer, updated in place by
  `@nnx.jit` steps."""

{field_names}  def __init__(self, model, optimizer{signature}):
    self.model, self.optimizer = model, optimizer
{fields}
  @classmethod
  def create(cls, model, tx, **fields):
    return cls(model, nnx.Optimizer(model, tx, wrt=nnx.Param), **fields)

  def merge(self):
    return self.model, self.optimizer

  def updated(self, model, optimizer):
    if model is self.model and optimizer is self.optimizer and nnx.set_graph_updates.current_value():
      return self  # graph mode: the step updated this state in place (a copy costs every call)
    return self.replace(model=model, optimizer=optimizer)

  def replace(self, **changes):  # copies only in NNX's tree mode: a step may not return the Variables it got
    values = {{name: getattr(self, name) for name in ({names})}} | changes
    model, optimizer = values.pop('model'), values.pop('optimizer')
    if not nnx.set_graph_updates.current_value():
      model, optimizer = nnx.clone((model, optimizer))
    return type(self)(model, optimizer, **values)
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


@dataclass(frozen=True)
class CarriedField:
    """A field of a Linen TrainState subclass the emitted state carries: its name, the
    source of its default (None: required) and whether Linen made it static
    (`struct.field(pytree_node=False)`)."""

    name: str
    default: str | None = None
    static: bool = False
    annotation: str = "object"


def _flat_fields(fields: tuple[CarriedField, ...]) -> str:
    """Dataclass fields, as Linen's TrainState subclass declared them."""
    lines = []
    for f in fields:
        options = ["pytree_node=False"] if f.static else []
        if f.static and f.default is not None:
            options.append(f"default={f.default}")
        value = f"struct.field({', '.join(options)})" if f.static else f.default
        lines.append(f"  {f.name}: {f.annotation}" + (f" = {value}" if value is not None else "") + "\n")
    return "".join(lines)


def _field_names(names: list[str]) -> str:
    """`_FIELDS`: the carried fields whose values a checkpoint keeps (static ones stay in
    the flat-state class's treedef)."""
    return f"  _FIELDS = ({', '.join(map(repr, names))}{',' if len(names) == 1 else ''})\n"


def helper_source(style: str, name: str, indent: str = "  ", apply_fn: bool = False, fields: tuple[CarriedField, ...] = ()) -> str:
    if style == "flat-state":
        dynamic = [f.name for f in fields if not f.static]
        source = FLAT_STATE.format(name=name, fields=_flat_fields(fields), field_names=_field_names(dynamic) if fields else "")
    else:
        signature = "".join(f", {f.name}" if f.default is None else f", {f.name}={f.default}" for f in fields)
        signature = ", *" + signature if fields else ""
        assigned = "".join(f"    self.{f.name} = {f.name if f.static else f'nnx.data({f.name})'}\n" for f in fields)
        names = ", ".join(repr(n) for n in ("model", "optimizer", *(f.name for f in fields)))
        source = NNX_JIT.format(name=name, signature=signature, fields=assigned, names=names,
                                field_names=_field_names([f.name for f in fields]) + "\n" if fields else "")
    source += APPLY_FN if apply_fn else ""
    return source.replace("  ", indent)
