"""The two checkpoint functions written into a converted program that saves or restores
its train state (checkpoint_calls.py rewrites the calls to use them).

`checkpoint_tree(state)`: what a checkpoint of the converted TrainState (either train
style) holds: `{'model': ..., 'optimizer': ..., <the Linen subclass's own fields>}` as
nested dicts with string keys, typed RNG keys as their uint32 data. One plain tree for
every format: msgpack (`flax.serialization`) cannot hold a typed key, and a tree of plain
dicts reads back the same from orbax, `flax.training.checkpoints` and msgpack with no
target, so restoring never depends on a format's handling of `nnx.State` (integer keys
of `nnx.List` entries that come back as strings, flax #4308).

`restored_from_checkpoint(state, tree)`: `state` with the values of a tree read without a
target, of either layout:
- the converted program's own (`'model'` at the top): every variable by its path, RNG
  streams included, so a run resumed from its own checkpoint repeats a straight run;
- the Linen program's TrainState (`params`, `batch_stats` and other collections,
  `opt_state`, `step`): each name is split into its words (`Dense_0`, `dense_0` and
  `dense[0]` are all `dense 0`; `BatchNorm_0` is `batch_norm_0`; `layers_2` is
  `layers[2]`; `heads_cls` is `heads['cls']`), which is the naming convention of
  `nnx_migrate/naming.py` read backwards; optimizer leaves keep optax's nesting
  (`opt_state/0/mu/Dense_0/kernel` -> `opt_state[0].mu.dense_0.kernel`). The model's
  RNG streams keep their values (a Linen checkpoint holds none).
Strict as `nnx_migrate.checkpoint` is: every variable filled, every checkpoint value
placed, shapes equal, dtypes equal but for integer widths (Linen's int32 `step` ->
NNX's uint32); otherwise a ValueError lists every problem and nothing is changed.

Why an emitted helper and not an import of `nnx_migrate.checkpoint`: the converted
program depends on jax, flax and optax only, like every output of the rewrite. The words
rule covers the whole naming convention in a few lines; the package's loader adds what a
running program has no use for (building a class with sizes read off the checkpoint).
Pure: no jax or flax import here.
"""

from __future__ import annotations

import re

import libcst as cst

SAVE = "checkpoint_tree"
RESTORE = "restored_from_checkpoint"

SOURCE = '''\
def {save}(state):
  """What a checkpoint of `state` holds: the values of its model and optimizer (and of
  its own fields) as nested dicts with string keys, RNG keys as their uint32 data, so
  that every checkpoint format writes it and reads it back without a target."""
  model, optimizer = state.merge()
  tree = {{'model': nnx.to_pure_dict(nnx.state(model)), 'optimizer': nnx.to_pure_dict(nnx.state(optimizer))}}
  tree.update({{name: getattr(state, name) for name in getattr(state, '_FIELDS', ())}})
  nested = {{}}
  for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if not (hasattr(value, 'dtype') or isinstance(value, (int, float))):
      continue  # a static field (a name, a function): Linen does not save those either
    *parents, last = [_checkpoint_key(key) for key in path]
    node = nested
    for key in parents:
      node = node.setdefault(key, {{}})
    node[last] = jax.random.key_data(value) if _is_rng_key(value) else value
  return nested


def {restore}(state, tree):
  """`state` with the values of the checkpoint `tree` (read without a target): one that
  `{save}` wrote, or the Linen program's TrainState (`params`, `batch_stats`,
  `opt_state`, `step`), whose names match by their words (`Dense_0` is `dense_0`,
  `layers_2` is `layers[2]`). A ValueError lists every value that does not fit."""
  model, optimizer = state.merge()
  fields = getattr(state, '_FIELDS', ())
  own = 'model' in tree and 'params' not in tree
  if own:
    key_of = lambda path: tuple(str(part) for part in path)
    parts = {{'model': tree['model'], 'optimizer': tree.get('optimizer', {{}})}}
  else:  # the Linen TrainState: its collections, optimizer state and step
    key_of = lambda path: tuple(word.lower() for part in path for word in re.findall(r'[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\\d+', str(part)))
    collections = {{k: v for k, v in tree.items() if k not in ('step', 'opt_state', *fields) and isinstance(v, dict)}}
    if isinstance(collections.get('params'), dict) and 'params' in collections['params']:
      collections = collections['params']  # a TrainState whose params hold the variables dict
    parts = {{'model': collections, 'optimizer': {{'opt_state': tree.get('opt_state', {{}}), 'step': tree.get('step')}}}}
  problems, updates = [], []
  for part, target in (('model', model), ('optimizer', optimizer)):
    saved = {{}}
    for path, value in jax.tree_util.tree_flatten_with_path(parts[part])[0]:
      path = [_checkpoint_key(key) for key in path]
      path = path[:-1] if path and path[-1] == 'value' else path  # orbax's form of an nnx.State
      key = key_of(path[1:] if part == 'model' and not own else path)  # (Linen's collection: the Variable's type)
      if key in saved:
        problems.append(f'{{part}}: checkpoint values {{"/".join(path)}} and {{saved[key][0]}} have the same name')
      saved[key] = ('/'.join(path), value)
    for path, variable in nnx.to_flat_state(nnx.state(target)):
      if not own and isinstance(variable, nnx.RngState):
        continue  # a Linen checkpoint holds no RNG state: the model's streams go on
      name, value = saved.pop(key_of(path), (None, None))
      if name is None:
        problems.append(f'{{part}} {{"/".join(map(str, path))}}: not in the checkpoint')
      else:
        updates.append((variable, _fitted(variable.get_value(), value, name, problems)))
    problems += [f'checkpoint value {{name}}: no place for it in the {{part}}' for name, _ in saved.values()]
  values = {{}}
  for name in fields:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(getattr(state, name))
    found = []
    for path, leaf in leaves:
      value = tree.get(name)
      for key in path:
        value = value.get(_checkpoint_key(key)) if isinstance(value, dict) else None
      found.append(leaf if value is None and not hasattr(leaf, 'dtype') else _fitted(leaf, value, name, problems))
    values[name] = jax.tree_util.tree_unflatten(treedef, found)
  if problems:
    raise ValueError('the checkpoint does not fit the train state:\\n  ' + '\\n  '.join(problems))
  for variable, value in updates:
    variable.set_value(value)
  state = state.updated(model, optimizer)
  return state.replace(**values) if values else state


def _checkpoint_key(key):
  for attribute in ('key', 'name', 'idx'):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def _is_rng_key(value):
  return hasattr(value, 'dtype') and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)


def _fitted(current, value, name, problems):
  """`value` from a checkpoint as the variable holding `current` needs it, or `current`
  (with a problem noted) where it does not fit."""
  if value is None:
    problems.append(f'{{name}}: not in the checkpoint')
    return current
  current = current if hasattr(current, 'dtype') else jax.numpy.asarray(current)  # a field's Python number
  if _is_rng_key(current) and not _is_rng_key(value):
    value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(current))
  # where the variable's value lives (its devices, its sharding), whatever the format read
  value = jax.device_put(value, current.sharding) if isinstance(current, jax.Array) else jax.numpy.asarray(value)
  if value.shape != current.shape:
    problems.append(f'{{name}}: shape {{value.shape}} in the checkpoint, {{current.shape}} here')
  elif value.dtype != current.dtype:
    if not (jax.numpy.issubdtype(value.dtype, jax.numpy.integer) and jax.numpy.issubdtype(current.dtype, jax.numpy.integer)):
      problems.append(f'{{name}}: dtype {{value.dtype}} in the checkpoint, {{current.dtype}} here')
      return current
    value = value.astype(current.dtype)  # Linen's int32 step, NNX's uint32 one
  return value
'''

def helper_source(indent: str, save: str = SAVE, restore: str = RESTORE) -> str:
    """The helpers in the file's indentation (leading indentation only: the two spaces
    before an inline comment stay two)."""
    source = SOURCE.format(save=save, restore=restore)
    return re.sub(r"^(?:  )+", lambda m: indent * (len(m.group(0)) // 2), source, flags=re.M)


def add_helpers(module: cst.Module, save: str = SAVE, restore: str = RESTORE) -> cst.Module:
    """The module with the helpers defined before the first top-level statement that
    calls one of them."""
    body = list(module.body)
    for i, stmt in enumerate(body):
        text = module.code_for_node(stmt)
        if f"{save}(" in text or f"{restore}(" in text:
            helpers = cst.parse_module(helper_source(module.default_indent, save, restore)).body
            first = helpers[0].with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()] if i else [])
            body[i:i] = [first, *helpers[1:]]
            return module.with_changes(body=body)
    return module
