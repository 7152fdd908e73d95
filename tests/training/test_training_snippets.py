"""Small before/after cases of the training pass (the whole-program fixtures cover the
common path; these pin the edges)."""

from __future__ import annotations

import textwrap

import pytest

from nnx_migrate.rewrite import rewrite_source

HEADER = '''\
import jax
import jax.numpy as jnp
from flax import linen as nn


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x)

  def embed(self, x):
    return x


'''


def _convert(body: str) -> str:
    result = rewrite_source(HEADER + textwrap.dedent(body), "snippet.py")
    assert result.error is None
    return result.new_text.split("\n\n\n", 2)[-1]


@pytest.mark.parametrize(
    "before,after",
    [
        pytest.param(
            "def init(key):\n  return Net().init(key, jnp.ones((1, 4)))\n",
            "def init(key):\n  # TODO(nnx-migrate): `init` of a converted model outside `variables = model.init(...)`: build the NNX model with rngs= instead\n  return Net().init(key, jnp.ones((1, 4)))\n",
            id="init-elsewhere-is-todo",
        ),
        pytest.param(
            "def make(key, x):\n  variables = Net().init({'params': key, 'dropout': key}, x)\n  return Net().apply(variables, x)\n",
            "def make(key, x):\n  model = Net(in_features=x.shape[-1], rngs=nnx.Rngs(key, params=key, dropout=key))\n  return model(x)\n",
            id="inline-init-rngs-dict-and-apply-on-its-result",
        ),
        pytest.param(
            "def make(key):\n  net = Net(\n  )\n  params = net.init(random_key(key), jnp.ones((3, 4)))['params']\n  return params\n",
            "def make(key):\n  # TODO(nnx-migrate): `params` held Linen variables from `init`; NNX keeps them in the model (use nnx.state(model))\n  net = Net(in_features=4, rngs=nnx.Rngs(random_key(key)))\n  return params\n",
            id="multi-line-constructor-and-init-result-used-elsewhere",
        ),
        pytest.param(
            "def emb(params, x):\n  return Net().apply({'params': params}, x, method=Net.embed)\n",
            "def emb(params, x):\n  return params.embed(x)\n",
            id="apply-method",
        ),
        pytest.param(
            "def make(key):\n  net = Net()\n  variables = jax.jit(net.init)(key, jnp.ones((1, 4)))\n  del variables\n  return net\n",
            "def make(key):\n  net = Net(in_features=4, rngs=nnx.Rngs(key))\n  return net\n",
            id="jitted-init-moves-the-constructor-and-del-of-its-result-goes",
        ),
        pytest.param(
            "def evaluate(state, x):\n  variables = {'params': state.params, 'batch_stats': state.batch_stats}\n  return state.apply_fn(variables, x, mutable=False)\n",
            "def evaluate(state, x):\n  model, _ = state.merge()\n  return model(x)\n",
            id="variables-dict-read-only-by-a-converted-apply-goes",
        ),
    ],
)
def test_snippet(before, after):
    converted = _convert(before)
    assert converted == (before if after is None else after)


def test_gradients_of_plain_functions_in_a_step_stay_jax():
    body = '''\
    def step(state, x):
      def loss_fn(params):
        return jnp.sum(state.apply_fn({'params': params}, x))

      def curvature(z):
        return jnp.sum(z ** 3)

      bend = jax.grad(curvature)(x)
      grads = jax.grad(loss_fn)(state.params)
      return state.apply_gradients(grads=grads), bend
    '''
    converted = _convert(body)
    assert "bend = jax.grad(curvature)(x)" in converted and "def curvature(z):" in converted
    assert "grads = param_grad(nnx.grad, loss_fn)(model)" in converted and "def loss_fn(model):" in converted
    assert "optimizer.update(model, grads)\n  return state.updated(model, optimizer), bend" in converted


def test_a_state_rebound_inside_a_step_is_a_todo():
    body = '''\
    def steps(state, xs):
      for x in xs:
        grads = jax.grad(lambda p: jnp.sum(state.apply_fn({'params': p}, x)))(state.params)
        state = other(state, grads)
      return state
    '''
    converted = _convert(body)
    assert "# TODO(nnx-migrate): `state` is rebound in this function" in converted


def test_the_gradient_helper_takes_a_free_name():
    """A file that already has a `param_grad` of its own keeps it: the helper the converted
    step calls is defined under another name, before its first use."""
    body = """\
    def param_grad(x):
      return x

    def step(state, x):
      grads = jax.grad(lambda p: jnp.sum(state.apply_fn({'params': p}, x)))(state.params)
      return state.apply_gradients(grads=grads)
    """
    converted = _convert(body)
    assert "grads = nnx_param_grad(nnx.grad, lambda p: jnp.sum(p(x)))(model)" in converted
    assert "def param_grad(x):\n  return x" in converted
    assert converted.index("def nnx_param_grad(transform, loss_fn, **options):") < converted.index("def step(state, x):")


def test_gradient_of_a_lambda_over_params_becomes_a_model_gradient():
    body = """\
    def step(state, x):
      grads = jax.grad(lambda p: jnp.sum(state.apply_fn({'params': p}, x)))(state.params)
      return state.apply_gradients(grads=grads)
    """
    converted = _convert(body)
    assert "grads = param_grad(nnx.grad, lambda p: jnp.sum(p(x)))(model)" in converted


def test_gradient_of_a_lambda_at_state_params_becomes_a_model_gradient():
    # The lambda receives the model after conversion even when its body only passes the
    # parameters on: a plain jax.grad over an NNX model differentiates every Variable (a
    # Dropout's RNG key: TypeError) and drops state changes made inside.
    body = """\
    def loss_of(state, params, x):
      return jnp.sum(state.apply_fn({'params': params}, x))

    def step(state, x):
      grads = jax.grad(lambda p: loss_of(state, p, x))(state.params)
      grad_fn = jax.value_and_grad(lambda q: (loss_of(state, q, x), x), has_aux=True)
      (loss, _), more = grad_fn(state.params)
      bend = jax.grad(lambda z: jnp.sum(z ** 2))(x)
      return state.apply_gradients(grads=grads), loss, more, bend
    """
    converted = _convert(body)
    assert "grads = param_grad(nnx.grad, lambda p: loss_of(state, p, x))(model)" in converted
    assert "grad_fn = param_grad(nnx.value_and_grad, lambda q: (loss_of(state, q, x), x), has_aux=True)" in converted
    assert "bend = jax.grad(lambda z: jnp.sum(z ** 2))(x)" in converted  # not at the parameters: untouched


def test_a_model_initialized_in_a_helper_becomes_a_factory_there():
    body = """\
    def initial_params(key, model):
      params = model.init(key, jnp.ones((1, 4)))['params']
      return params

    def create(key):
      model = Net()
      return initial_params(key, model)
    """
    converted = _convert(body)
    assert "model = model(in_features=4, rngs=nnx.Rngs(key))\n  return model" in converted
    assert "model = functools.partial(Net)" in converted
    # `init` in a form the pass does not convert (here: inside `return`): neither side changes
    converted = _convert(body.replace("params = model.init(key, jnp.ones((1, 4)))['params']\n      return params", "return model.init(key, jnp.ones((1, 4)))['params']"))
    assert "functools.partial" not in converted and "model = Net()" in converted


def test_a_model_used_for_anything_else_stays_as_it_was():
    # `model.apply` outside TrainState.create, an attribute read: the built model would
    # no longer be a model if it became a factory, so nothing of the flow is converted
    for use in ("print(model.apply)", "print(model.features)"):
        body = (
            "def initial_params(key, model):\n"
            "  params = model.init(key, jnp.ones((1, 4)))['params']\n"
            "  return params\n\n"
            "def create(key):\n"
            "  model = Net()\n"
            f"  {use}\n"
            "  return initial_params(key, model)\n"
        )
        converted = _convert(body)
        assert "functools.partial" not in converted and "model.init(key, jnp.ones((1, 4)))" in converted, converted


def test_a_called_step_attribute_is_no_train_state():
    body = """\
    def act(env, state, x):
      env.step(state.apply_fn({'params': state.params}, x))
      return state.step
    """
    converted = _convert(body)
    assert "env.step(model(x))" in converted and "return optimizer.step[...]" in converted


def test_the_rewrite_path_imports_neither_jax_nor_flax():
    import subprocess
    import sys

    from training_programs import FIXTURES, ROOT

    code = (
        "import sys; from nnx_migrate.rewrite import rewrite_source; "
        f"r = rewrite_source(open({str(FIXTURES / 'bn_dropout_trainstate.in.py')!r}).read(), 'x.py'); "
        "assert r.status == 'changed'; print(sorted(m for m in ('jax', 'flax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


SCALED = '''\
import jax.numpy as jnp
from flax import linen as nn


class Scaled(nn.Module):
  scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(x) * self.scale


def make(key, x):
  variables = Scaled(scale=1.0).init(key, x)
  return variables['params']


'''


def test_apply_on_a_model_built_with_other_arguments_is_reported_not_merged():
    """Linen ran `Scaled(scale=2.0)` on the weights `Scaled(scale=1.0)` made; calling the
    one NNX model would silently use scale 1.0."""
    result = rewrite_source(SCALED + "def predict(params, x):\n  return Scaled(scale=2.0).apply({'params': params}, x)\n", "s.py")
    assert "return Scaled(scale=2.0).apply({'params': params}, x)" in result.new_text
    assert any("another scale" in t.why and t.line == 19 for t in result.todos), [t.render() for t in result.todos]


def test_apply_on_a_model_built_like_every_other_is_a_call():
    result = rewrite_source(SCALED + "def predict(params, x):\n  return Scaled(scale=1.0).apply({'params': params}, x)\n", "s.py")
    assert "return params(x)" in result.new_text
    assert not any("another" in t.why for t in result.todos)


def test_models_of_a_parsed_file_are_known_without_the_class_pass_results():
    """training/models.py `summaries_of` (used when no class-pass results are at hand)
    reads the same classes the class pass converts."""
    import libcst as cst

    from nnx_migrate.rewrite.training.models import ModelIndex

    module = cst.parse_module(SCALED)
    index = ModelIndex(module, "s.py")
    assert index.lookup(cst.parse_expression("Scaled")) is not None
    assert index.lookup(cst.parse_expression("make")) is None


def test_apply_compares_with_field_defaults():
    default_vs_other = rewrite_source(SCALED + "def predict(params, x):\n  return Scaled().apply({'params': params}, x)\n\n\ndef other(params, x):\n  return Scaled(2.0).apply({'params': params}, x)\n", "s.py")
    # Scaled() is Scaled(scale=1.0), the init site: only the call with 2.0 differs from it, and both differ from each other
    assert [t.line for t in default_vs_other.todos if "another scale" in t.why] == [19, 23]


def test_apply_on_a_model_built_from_another_name_is_converted_and_reported():
    """`Scaled(scale=s)` vs the init's `Scaled(scale=1.0)`: maybe the same, maybe an eval
    configuration; converted (the likely case runs) and listed for a person."""
    result = rewrite_source(SCALED + "def predict(params, x, s):\n  return Scaled(scale=s).apply({'params': params}, x)\n", "s.py")
    assert "return params(x)" in result.new_text
    assert any(t.line == 19 and "if the two configurations differ" in t.why for t in result.todos), [t.render() for t in result.todos]


def test_an_apply_function_passed_in_is_listed_unless_every_caller_passes_a_state_apply_fn():
    """`evaluate(eval_model.apply, params, x)`: Linen ran the eval configuration; the one NNX
    model is the training one, so the call is listed for a person."""
    body = SCALED + (
        "def evaluate(apply_fn, params, x):\n  return apply_fn({'params': params}, x)\n\n\n"
        "def run(params, x):\n  return evaluate(Scaled(scale=2.0).apply, params, x)\n")
    result = rewrite_source(body, "s.py")
    assert any("an apply function passed in" in t.why for t in result.todos), [t.render() for t in result.todos]


def test_mutable_updates_linen_threw_away_are_listed():
    source = '''\
import jax.numpy as jnp
from flax import linen as nn
from flax.training import train_state


class Net(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    return nn.BatchNorm(use_running_average=not train)(nn.Dense(2)(x))


def probe(state, x):
  y, updates = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, x, mutable=['batch_stats'])
  return y
'''
    result = rewrite_source(source, "p.py")
    assert any("Linen discarded `updates`" in t.why for t in result.todos), [t.render() for t in result.todos]


MODE_MODEL = '''\
import jax
import jax.numpy as jnp
from flax import linen as nn


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Dense(4)(x)
    return nn.BatchNorm(use_running_average=not self.is_mutable_collection('batch_stats'))(x)


def run(key, x):
  model = Net()
  variables = model.init(key, x)
  y, updates = model.apply(variables, x, mutable=['batch_stats'])
  return model.apply({'params': variables['params'], 'batch_stats': updates['batch_stats']}, x)
'''


def test_evaluation_apply_of_a_model_that_decides_its_mode_is_reported():
    """Linen's apply without mutable= evaluates such a model; the NNX model runs in the mode
    it is in (training, as built), so the converted call would silently train."""
    result = rewrite_source(MODE_MODEL, "mode.py")
    reported = [(t.line, t.why) for t in result.todos if t.construct == "apply"]
    assert len(reported) == 1 and reported[0][0] == 17, result.todos
    assert "model.eval()" in reported[0][1]
    # the training apply (mutable=['batch_stats']) is not reported
    assert "self.use_running_average = False" in result.new_text


PMAP_DROPOUT = '''\
import functools
from functools import partial

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.training import train_state


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dropout(0.5, deterministic=False)(nn.Dense(2)(x))


@functools.partial(jax.pmap, axis_name='batch')
def decorated_step(state, x, rng):
  rng = jax.random.fold_in(rng, jax.lax.axis_index('batch'))
  def loss_fn(params):
    return jnp.sum(state.apply_fn({'params': params}, x, rngs={'dropout': rng}))
  return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))


@partial(jax.pmap, axis_name='batch')
def partial_step(state, x, rng):
  return jnp.sum(state.apply_fn({'params': state.params}, x, rngs={'dropout': rng}))


def shared_loss(state, x, rng):
  return jnp.sum(state.apply_fn({'params': state.params}, x, rngs={'dropout': rng}))


def called_step(state, x, rng):
  return shared_loss(state, x, rng)


def wrapped_step(state, x, rng, scale):
  return scale * jnp.sum(state.apply_fn({'params': state.params}, x, rngs={'dropout': rng}))


p_called = jax.pmap(called_step, axis_name='batch')
p_wrapped = jax.pmap(functools.partial(wrapped_step, scale=2.0), axis_name='batch')


@jax.jit
def jitted_step(state, x, rng):
  return jnp.sum(state.apply_fn({'params': state.params}, x, rngs={'dropout': rng}))
'''


@pytest.mark.parametrize("style", ["flat-state", "nnx-jit"])
def test_rngs_dropped_under_pmap_is_reported(style):
    """Under jax.pmap over a replicated state Linen's per-device keys gave each device its
    own dropout masks; the model's own RNG stream is the same on every device, so dropping
    `rngs=` there would silently give every device the same masks. Each pmapped site
    (decorator, functools.partial decorator, `jax.pmap(f)`, `jax.pmap(partial(f, ...))`,
    a top-level function a pmapped one calls) is marked and listed; a jitted one is not."""
    result = rewrite_source(PMAP_DROPOUT, "pmap_dropout.py", train_style=style)
    assert result.error is None
    lines = PMAP_DROPOUT.splitlines()
    expected = sorted(i + 1 for i, line in enumerate(lines) if "rngs={'dropout'" in line and "def jitted_step" not in lines[i - 1])
    reported = sorted(t.line for t in result.todos if t.construct == "rngs=" and "same dropout masks" in t.why)
    assert reported == expected and len(expected) == 4, [t.render() for t in result.todos]
    jitted = result.new_text.split("def jitted_step", 1)[1]
    assert "TODO(nnx-migrate)" not in jitted and "model(x)" in jitted
    assert result.new_text.count("# TODO(nnx-migrate): rngs= dropped under jax.pmap") == 4


def test_a_model_bound_only_for_its_apply_is_not_left_behind():
    """`model = Net(); model.apply({'params': p}, x)` -> `p(x)`: the Linen blueprint is dead,
    and left in place it would build an NNX model without sizes and rngs (seq2seq's
    `decode`: a TypeError at run time)."""
    body = "def predict(params, x):\n  model = Net()\n  return model.apply({'params': params}, x)\n"
    assert _convert(body) == "def predict(params, x):\n  return params(x)\n"
    kept = "def predict(params, x):\n  model = Net()\n  print(model)\n  return model.apply({'params': params}, x)\n"
    assert "model = Net()" in _convert(kept)


def test_the_step_prologue_goes_after_a_docstring_and_never_splits_a_line():
    body = '''\
    def step(state, x):
      """One step."""
      grads = jax.grad(lambda p: jnp.sum(state.apply_fn({'params': p}, x)))(state.params)
      return state.apply_gradients(grads=grads)

    def other(state, x):
      "Not only a docstring"; y = x + 1
      grads = jax.grad(lambda p: jnp.sum(state.apply_fn({'params': p}, y)))(state.params)
      return state.apply_gradients(grads=grads)
    '''
    converted = _convert(body)
    assert '"""One step."""\n  model, optimizer = state.merge()\n' in converted
    assert 'def other(state, x):\n  model, optimizer = state.merge()\n  "Not only a docstring"; y = x + 1\n' in converted


def test_batch_stats_from_elsewhere_are_a_todo_not_dropped():
    """`replace(batch_stats=...)` of a value that is not the `mutable=` call's updates (nor
    their pmean) would be silently ignored by NNX: reported instead."""
    body = '''\
    @jax.jit
    def step(state, x, stats):
      def loss_fn(params):
        y, updates = state.apply_fn({'params': params, 'batch_stats': state.batch_stats}, x, mutable=['batch_stats'])
        return jnp.sum(y), updates
      (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      state = state.apply_gradients(grads=grads)
      return state.replace(batch_stats=stats), state.replace(batch_stats=jax.lax.pmean(updates['batch_stats'], 'b'))
    '''
    converted = _convert(body)
    assert "# TODO(nnx-migrate): TrainState fields ['batch_stats'] given a value other than" in converted
    assert "return state.replace(batch_stats=stats)" in converted


def test_pmean_of_the_updates_becomes_an_nnx_update():
    body = '''\
    @jax.jit
    def step(state, x):
      def loss_fn(params):
        y, updates = state.apply_fn({'params': params, 'batch_stats': state.batch_stats}, x, mutable=['batch_stats'])
        return jnp.sum(y), updates
      (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      state = state.apply_gradients(grads=grads)
      state = state.replace(batch_stats=jax.lax.pmean(updates['batch_stats'], axis_name='b'))
      return state
    '''
    converted = _convert(body)
    assert "  state = state.updated(model, optimizer)\n  nnx.update(model, jax.lax.pmean(nnx.state(model, nnx.BatchStat), axis_name='b'))\n  return state\n" in converted
    assert "TODO" not in converted


def test_replace_on_a_state_the_step_only_reads_reports_fields_it_does_not_carry():
    # `other` is a train state by data flow: the caller passes it a TrainState.create value
    body = '''\
    def run(x, tx):
      s = TrainState.create(apply_fn=None, params={}, tx=tx)
      return step(s, s, x)

    def step(state, other, x):
      def loss_fn(params):
        return jnp.sum(state.apply_fn({'params': params}, x))
      grads = jax.grad(loss_fn)(state.params)
      state = state.apply_gradients(grads=grads)
      return state, other.replace(batch_stats=x) if other.step > 0 else other
    '''
    converted = _convert(body)
    assert "# TODO(nnx-migrate): TrainState fields ['batch_stats'] have no NNX counterpart here\n  return state, other.replace(batch_stats=x)" in converted


def test_an_object_with_params_is_no_train_state_unless_one_flows_into_it():
    """A custom struct state of an optax loop (or a pretrained model) with `.params` and
    `.replace` is left alone even in a file that uses TrainState elsewhere."""
    body = '''\
    def make(tx):
      return TrainState.create(apply_fn=None, params={}, tx=tx)

    def step(algo_state, clip, x):
      grads = jax.grad(lambda p: jnp.sum(p['w'] * x))(algo_state.params)
      return algo_state.replace(params=grads, step=algo_state.step + 1), clip.params
    '''
    converted = _convert(body)
    assert "  grads = jax.grad(lambda p: jnp.sum(p['w'] * x))(algo_state.params)\n" in converted
    assert "algo_state.replace(params=grads, step=algo_state.step + 1), clip.params\n" in converted
    assert "merge()" not in converted
