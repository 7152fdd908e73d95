"""A train state used in module-level code (an `if __name__ == '__main__':` block) gets the
treatment a function that only reads a state gets: `state.step` / `state.params` become the
helper state's eager forms, and what has no such form there (`state.apply_fn(...)`) is marked
and reported. The converted program is run and prints the Linen program's step count."""

from __future__ import annotations

import contextlib
import io
import runpy
from pathlib import Path

import pytest

from nnx_migrate.rewrite import rewrite_source

PROGRAM = """\
import jax, jax.numpy as jnp, optax
import flax.linen as nn
from flax.training import train_state


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x)


def create_state(key):
  model = MLP()
  params = model.init(key, jnp.ones((1, 3)))['params']
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(0.1))


@jax.jit
def step(state, x, y):
  def loss_fn(params):
    return jnp.mean((state.apply_fn({'params': params}, x) - y) ** 2)
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


if __name__ == '__main__':
  state = create_state(jax.random.key(0))
  for _ in range(3):
    state, loss = step(state, jnp.ones((4, 3)), jnp.zeros((4, 2)))
  print('STEP', int(state.step))
"""


def _run(folder: Path, name: str, text: str) -> str:
    """Runs the file as a script (`__name__ == '__main__'`) in this process: no second
    interpreter and jax import; an exception in the program fails the test."""
    path = folder / name
    path.write_text(text)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runpy.run_path(str(path), run_name="__main__")
    return next(line for line in printed.getvalue().splitlines() if line.startswith("STEP"))


@pytest.fixture(scope="module")
def linen_step_line(tmp_path_factory):
    """The Linen program's output, run once for both styles."""
    return _run(tmp_path_factory.mktemp("linen_prog"), "linen_prog.py", PROGRAM)


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_module_level_step_read_is_converted_and_the_program_prints_linens_step_count(tmp_path, style, linen_step_line):
    result = rewrite_source(PROGRAM, "prog.py", train_style=style)
    assert result.todos == []
    assert "print('STEP', int(state.optimizer.step[...]))" in result.new_text
    linen = linen_step_line
    assert linen == "STEP 3"
    assert _run(tmp_path, "nnx_prog.py", result.new_text) == linen


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_module_level_params_read_takes_the_eager_form(style):
    source = PROGRAM + "  n = len(jax.tree.leaves(state.params))\n"
    text = rewrite_source(source, "prog.py", train_style=style).new_text
    assert "  n = len(jax.tree.leaves(state.model))\n" in text


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_module_level_apply_fn_is_marked_and_reported_at_its_line(style):
    source = PROGRAM + "  print(state.apply_fn({'params': state.params}, jnp.ones((1, 3))))\n"
    result = rewrite_source(source, "prog.py", train_style=style)
    line = len(source.splitlines())
    assert [(t.line, t.construct) for t in result.todos] == [(line, "state.apply_fn")]
    lines = result.new_text.splitlines()
    at = next(i for i, text in enumerate(lines) if "state.apply_fn(" in text)
    assert lines[at - 1] == "  # TODO(nnx-migrate): " + result.todos[0].why


def test_a_module_level_name_that_is_no_train_state_is_left_alone():
    # `env.step` / `cfg.params` of objects that never came from TrainState.create
    source = PROGRAM + "  cfg = load()\n  print(cfg.params, cfg.step)\n"
    text = rewrite_source(source, "prog.py").new_text
    assert "  print(cfg.params, cfg.step)\n" in text
