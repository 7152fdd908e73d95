"""Linen model API the passes could not convert is reported, never left silently broken:
a converted class built without `rngs=` (a module-level `model = MLP()` initialised in
another function), and `init` / `apply` on such an object (training/leftovers.py)."""

from __future__ import annotations

import ast
import textwrap

from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.runner import rewrite_files

MODEL = """\
import flax.linen as nn


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(x)
"""

PROGRAM = MODEL + """

model = MLP()


def loss_fn(params, x):
  return model.apply(params, x).sum()


def main(x):
  if x is not None:
    params = model.init(0, x)
  return params
"""


def test_blueprint_model_init_and_apply_are_marked_and_reported_at_their_lines():
    result = rewrite_source(PROGRAM, "prog.py")
    sites = {(t.line, t.construct) for t in result.todos}
    assert sites == {(10, "MLP(...)"), (14, "model.apply(...)"), (19, "model.init(...)")}
    assert all("rngs=" in t.why or "holds its weights" in t.why for t in result.todos)
    text = result.new_text
    ast.parse(text)
    lines = text.splitlines()
    for statement in ("model = MLP()", "return model.apply(params, x).sum()", "params = model.init(0, x)"):
        at = next(i for i, line in enumerate(lines) if line.strip() == statement)
        assert lines[at - 1].strip().startswith("# TODO(nnx-migrate):"), statement
        assert lines[at - 1][: len(lines[at - 1]) - len(lines[at - 1].lstrip())] == lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    again = rewrite_source(text, "prog.py")
    assert again.new_text == text


def test_a_model_the_training_pass_converts_is_not_reported():
    source = MODEL + textwrap.dedent("""

        def create(key, x):
          model = MLP()
          params = model.init(key, x)['params']
          return model, params
        """)
    result = rewrite_source(source, "prog.py")
    assert "MLP(in_features=" in result.new_text and "rngs=nnx.Rngs(key)" in result.new_text
    assert not [t for t in result.todos if "without rngs=" in t.why or "holds its weights" in t.why]


def test_a_model_imported_from_another_file_of_the_run_is_checked_too(tmp_path):
    (tmp_path / "models.py").write_text(MODEL)
    (tmp_path / "check.py").write_text("from models import MLP\n\n\ndef build():\n  return MLP().apply({}, 1)\n")
    results = {r.path.rsplit("/", 1)[-1]: r for r in rewrite_files([str(tmp_path / "models.py"), str(tmp_path / "check.py")])}
    check = results["check.py"]
    assert [(t.line, t.construct) for t in check.todos] == [(5, "MLP(...)")]
    assert "# TODO(nnx-migrate): builds the NNX class `MLP` without rngs=" in check.new_text


AGENT = """\
import jax.numpy as jnp
import optax

from pkg import networks


class Agent:
  def __init__(self, key, obs, network=networks.MLP):
    self.net = network()
    self.params = self.net.init(key, obs)
    self.opt_state = optax.adam(1e-3).init(self.params)

  def loss(self, params, x):
    return jnp.mean(self.net.apply(params, x))
"""

ALGO = """\
import flax.linen as nn
import flax.struct
import optax


@flax.struct.dataclass
class Algo:
  q_network: nn.Module
  optimizer: optax.GradientTransformation

  def init(self, key, obs):
    params = self.q_network.init(key, obs)
    return params, self.optimizer.init(params)
"""


def test_models_through_parameters_fields_and_files_without_linen_are_reported(tmp_path):
    """A file that imports no Linen but builds a converted class through a parameter's
    default (`network=networks.MLP`) and calls `init`/`apply` on the `self.` attribute it
    went to, and a dataclass field typed `nn.Module` (now `nnx.Module`): every site is
    marked and reported; optax's own `init` is not."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "networks.py").write_text(MODEL)
    (package / "agent.py").write_text(AGENT)
    (package / "algo.py").write_text(ALGO)
    results = {r.path.rsplit("/", 1)[-1]: r for r in rewrite_files(sorted(package.glob("*.py")))}
    agent = results["agent.py"]
    assert {(t.line, t.construct) for t in agent.todos} == {(9, "network(...)"), (10, "self.net.init(...)"), (14, "self.net.apply(...)")}
    lines = agent.new_text.splitlines()
    for statement in ("self.net = network()", "self.params = self.net.init(key, obs)", "return jnp.mean(self.net.apply(params, x))"):
        at = next(i for i, line in enumerate(lines) if line.strip() == statement)
        assert lines[at - 1].strip().startswith("# TODO(nnx-migrate):"), statement
    assert "merge()" not in agent.new_text  # `self.params` is no TrainState
    algo = results["algo.py"]
    assert {(t.line, t.construct) for t in algo.todos} == {(12, "self.q_network.init(...)")}


def test_an_attribute_a_base_class_of_another_file_set_holds_a_model(tmp_path):
    """`class Rainbow(dqn.Agent)` in another file: `self.net`, which the base class built
    from a converted class, is a model there too (the run's index carries each class's
    model attributes), and so is a function's parameter it is passed to."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "networks.py").write_text(MODEL)
    (package / "agent.py").write_text(AGENT)
    (package / "rainbow.py").write_text(
        "from pkg import agent\n\n\n"
        "def q_values(net, params, x):\n  return net.apply(params, x)\n\n\n"
        "class Rainbow(agent.Agent):\n"
        "  def act(self, x):\n    return q_values(self.net, self.params, x), self.net.apply(self.params, x)\n")
    results = {r.path.rsplit("/", 1)[-1]: r for r in rewrite_files(sorted(package.glob("*.py")))}
    rainbow = results["rainbow.py"]
    assert {(t.line, t.construct) for t in rainbow.todos} == {(5, "net.apply(...)"), (10, "self.net.apply(...)")}
