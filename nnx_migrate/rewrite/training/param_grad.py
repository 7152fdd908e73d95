"""The gradient helper written into a converted program: Linen's `jax.grad(loss_fn)(params)`
differentiates the parameters only, and so must the converted step, in NNX's graph mode and
in its tree mode alike.

`nnx.grad(loss_fn)(model)` differentiates only the `nnx.Param` in graph mode (the default of
Flax 0.12) but every Variable in tree mode (`NNX_GRAPH_MODE=false`, the default Flax plans,
FLIP 5310): a Dropout's uint32 RNG count makes it raise, and the gradients come back shaped
like the model. `nnx.DiffState(0, nnx.Param)` raises in tree mode. The form FLIP 5310 gives
(split the Params off, merge the model inside the loss) is right in both modes; merging with
`recreate_variables=False` keeps the model's own Variables, so the step's other state
changes (BatchNorm statistics, RNG counts) reach the model as before.

Before: `loss, grads = jax.value_and_grad(loss_fn)(state.params)`
After:  `loss, grads = param_grad(nnx.value_and_grad, loss_fn)(model)`

The emitted code imports only jax, flax and optax. Pure: no jax or flax import here.
"""

from __future__ import annotations

import libcst as cst

NAME = "param_grad"

SOURCE = '''\
def {name}(transform, loss_fn, **options):
  """`transform(loss_fn, **options)` (nnx.grad or nnx.value_and_grad) over the nnx.Param
  of the model `loss_fn` takes first, as Linen's jax.grad over `params`, in NNX's graph
  and tree mode alike; the model's other state changes (BatchNorm statistics, RNG counts)
  are kept."""
  def over_params(model, *args):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_of_params(params, rest, *args):
      return loss_fn(nnx.merge(graphdef, params, rest, recreate_variables=False), *args)

    return transform(loss_of_params, **options)(params, rest, *args)

  return over_params
'''


def helper_name(module: cst.Module | None, base: str = NAME) -> str:
    """`base` (`param_grad`), or `nnx_param_grad` where the file already binds that name at the top."""
    taken: set[str] = set()
    for stmt in module.body if module is not None else ():
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            taken.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    taken.update(t.target.value for t in small.targets if isinstance(t.target, cst.Name))
                elif isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                    taken.update((a.asname.name if a.asname else a.name).value for a in small.names
                                 if isinstance((a.asname.name if a.asname else a.name), cst.Name))
    name = base
    while name in taken:
        name = f"nnx_{name}"
    return name


def add_helper(module: cst.Module, name: str = NAME) -> cst.Module:
    """The module with the helper `name` defined before the first top-level statement that
    calls it."""
    body = list(module.body)
    for i, stmt in enumerate(body):
        if f"{name}(" in module.code_for_node(stmt):
            source = SOURCE.format(name=name).replace("  ", module.default_indent)
            helper = cst.parse_statement(source, config=module.config_for_parsing)
            body[i:i] = [helper.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()] if i else [])]
            return module.with_changes(body=body)
    return module
