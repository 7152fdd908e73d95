"""Checkpoint calls of the training pass (training/checkpoint_calls.py): each API's save
and restore of a train state, before and after, and what is left TODO (the whole-program
fixture checkpoint_resume_dropout runs them)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from nnx_migrate.rewrite import rewrite_source

HEADER = '''\
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from flax import linen as nn
from flax import serialization
from flax.training import checkpoints, orbax_utils, train_state


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x)


def create(key):
  model = Net()
  params = model.init(key, jnp.ones((1, 4)))['params']
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(0.1))


'''


def _convert(body: str, style: str = "flat-state"):
    result = rewrite_source(HEADER + textwrap.dedent(body), "snippet.py", train_style=style)
    assert result.error is None
    ast.parse(result.new_text)
    return result.new_text.rsplit("\n\n\n", 1)[-1], result


@pytest.mark.parametrize(
    "before,after",
    [
        pytest.param("ckptr = ocp.StandardCheckpointer()\nckptr.save(path, state, force=True)\nstate = ckptr.restore(path, state)\n",
                     "ckptr = ocp.StandardCheckpointer()\nckptr.save(path, checkpoint_tree(state), force=True)\nstate = restored_from_checkpoint(state, ckptr.restore(path, None))\n",
                     id="standard-checkpointer-bound-to-a-name"),
        pytest.param("ocp.PyTreeCheckpointer().save(path, state, save_args=orbax_utils.save_args_from_target(state))\n"
                     "state = ocp.PyTreeCheckpointer().restore(path, item=state, restore_args=orbax_utils.restore_args_from_target(state))\n",
                     "ocp.PyTreeCheckpointer().save(path, checkpoint_tree(state), save_args=orbax_utils.save_args_from_target(checkpoint_tree(state)))\n"
                     "state = restored_from_checkpoint(state, ocp.PyTreeCheckpointer().restore(path, item=None))\n",
                     id="pytree-checkpointer-with-save-and-restore-args"),
        pytest.param("with ocp.CheckpointManager(path) as manager:\n  manager.save(3, args=ocp.args.StandardSave(state))\n"
                     "  state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(state))\n",
                     "with ocp.CheckpointManager(path) as manager:\n  manager.save(3, args=ocp.args.StandardSave(checkpoint_tree(state)))\n"
                     "  state = restored_from_checkpoint(state, manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(None)))\n",
                     id="checkpoint-manager"),
        pytest.param("checkpoints.save_checkpoint(path, target=state, step=state.step)\nstate = checkpoints.restore_checkpoint(path, state)\n",
                     "checkpoints.save_checkpoint(path, target=checkpoint_tree(state), step=state.optimizer.step[...])\n"
                     "state = restored_from_checkpoint(state, checkpoints.restore_checkpoint(path, None))\n",
                     id="flax-training-checkpoints"),
        pytest.param("data = serialization.to_bytes(state)\nstate = serialization.from_bytes(state, data)\n"
                     "state = serialization.from_state_dict(state, serialization.to_state_dict(state))\n",
                     "data = serialization.to_bytes(checkpoint_tree(state))\nstate = restored_from_checkpoint(state, serialization.from_bytes(None, data))\n"
                     "state = restored_from_checkpoint(state, serialization.from_state_dict(None, serialization.to_state_dict(checkpoint_tree(state))))\n",
                     id="flax-serialization"),
    ],
)
@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_checkpoint_calls_on_a_train_state_convert(before, after, style):
    body = "def run(key, path):\n  state = create(key)\n" + textwrap.indent(before, "  ") + "  return state\n"
    text, result = _convert(body, style)
    assert text == "def run(key, path):\n  state = create(key)\n" + textwrap.indent(after, "  ") + "  return state\n"
    assert result.todos == []
    assert "def checkpoint_tree(state):" in result.new_text and "def restored_from_checkpoint(state, tree):" in result.new_text
    assert result.new_text.startswith("import re\n")
    again = rewrite_source(result.new_text, "snippet.py", train_style=style)
    assert again.new_text in (None, result.new_text)


@pytest.mark.parametrize(
    "line,api",
    [
        pytest.param("checkpoints.save_checkpoint(path, state.params, step=0)", "checkpoints.save_checkpoint", id="linen-params-saved"),
        pytest.param("params = ocp.StandardCheckpointer().restore(path)", "ocp.StandardCheckpointer().restore", id="orbax-restore-without-target"),
        pytest.param("state = ocp.StandardCheckpointer().restore(path, state, transforms=make(state))", "ocp.StandardCheckpointer().restore", id="target-feeds-another-argument"),
        pytest.param("variables = serialization.from_bytes({'params': params}, data)", "serialization.from_bytes", id="linen-variables-restored"),
    ],
)
def test_checkpoint_calls_on_anything_else_are_marked_and_left(line, api):
    body = f"def run(key, path, params, data, make):\n  state = create(key)\n  {line}\n  return state\n"
    text, result = _convert(body)
    [todo] = [t for t in result.todos if t.construct.startswith(api.split("(")[0])]
    assert todo.line == (HEADER + body).splitlines().index(f"  {line}") + 1
    assert f"  # TODO(nnx-migrate): {todo.why}\n  {line.split('(')[0]}(" in text  # (`state.params` is `state.model` now)
    assert "checkpoint_tree" not in result.new_text and "import re" not in result.new_text


def test_a_state_the_data_flow_cannot_follow_is_marked():
    """`save(path, state)`, called from nowhere in the file: `state` may be anything."""
    text, result = _convert("def save(path, state):\n  checkpoints.save_checkpoint(path, state, step=0)\n")
    assert [t.construct for t in result.todos] == ["checkpoints.save_checkpoint(...)"]
    assert "# TODO(nnx-migrate): Linen checkpoint of a value that is not the train state" in text


def test_helper_names_taken_by_the_file_get_a_prefix():
    body = "def checkpoint_tree(x):\n  return x\n\n\ndef run(key, path):\n  state = create(key)\n  checkpoints.save_checkpoint(path, state, step=0)\n"
    text, result = _convert(body)
    assert "checkpoints.save_checkpoint(path, nnx_checkpoint_tree(state), step=0)" in text
    assert "def nnx_checkpoint_tree(state):" in result.new_text and result.todos == []


def test_a_state_mapped_leaf_by_leaf_before_saving_is_still_the_state():
    """flat-state: `jax.tree_util.tree_map(f, state)` (Flax's imagenet example makes the
    arrays global before saving) keeps the state's pytree; nnx-jit's state is a Module."""
    body = ("def save(path, key):\n  state = create(key)\n"
            "  replicated = jax.tree_util.tree_map(ocp.utils.fully_replicated_host_local_array_to_global_array, state)\n"
            "  checkpoints.save_checkpoint_multiprocess(path, replicated, 3)\n")
    text, result = _convert(body)
    assert "checkpoints.save_checkpoint_multiprocess(path, checkpoint_tree(replicated), 3)" in text and result.todos == []
    text, result = _convert(body, "nnx-jit")
    assert [t.construct for t in result.todos] == ["checkpoints.save_checkpoint_multiprocess(...)"]


def test_helpers_take_the_file_s_indentation():
    source = (HEADER + "def run(key, path):\n  state = create(key)\n  checkpoints.save_checkpoint(path, state, 0)\n").replace("  ", "    ")
    new = rewrite_source(source, "four.py").new_text
    assert "\n    model, optimizer = state.merge()\n" in new
    assert "\n            continue  # a static field" in new  # (the comment keeps its two spaces)


def test_a_file_that_converts_nothing_else_keeps_its_checkpoint_calls_unmarked():
    """A weight-porting utility reads a Linen checkpoint raw: its values are still the
    Linen ones it expects (the rewrite converts nothing in it)."""
    source = ("from flax.serialization import from_bytes\nfrom flax.training import checkpoints\n\n\n"
              "def load(folder):\n  with open(checkpoints.latest_checkpoint(folder), 'rb') as f:\n    params = from_bytes(None, f.read())\n  return params\n")
    result = rewrite_source(source, "port.py")
    assert result.new_text in (None, source) and result.todos == []
