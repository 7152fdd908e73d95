"""Train-step speed: the Linen step against each step style `nnx-migrate rewrite` emits.

    python benchmarks/step_speed.py [--steps N] [--repeats R] [--modes graph tree]

Each model is a whole Linen program (model, TrainState, `jax.jit` train step) that is
converted by the tool itself (`rewrite_source`, once per `--train-style`); the three
programs then run the same number of steps, interleaved, R times, and the median time per
step is reported. Models:
- `mlp`: 3-layer MLP 32-64-64-1, batch 16, Adam: dispatch-bound, the style decides.
- `bn_dropout`: the fixture program fixtures/training/bn_dropout_trainstate.in.py (its
  TrainState carries batch_stats, its step takes a dropout key).
- `cnn`: three 3x3 convolutions (32, 64, 10 channels), global mean, on 28x28x1, batch 64, SGD
  with momentum: compute-bound, the style should not matter.
Each model runs in NNX's graph mode (Flax 0.12's default) and in its tree mode
(`NNX_GRAPH_MODE=false NNX_GRAPH_UPDATES=false`, the default Flax plans): the converted
programs are imported and run inside `nnx.set_graph_mode` / `nnx.set_graph_updates`, since
transforms take the mode they are built in; the Linen program is timed beside each.
Speed is measured here, never asserted in tests (shared CPUs are noisy).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnx_migrate.equivalence.loading import load_python_file  # noqa: E402
from nnx_migrate.rewrite import rewrite_source  # noqa: E402

PROGRAM = '''
import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state

{model}

def create_train_state(key):
  model = Model()
  params = model.init(key, jnp.ones({input_shape}))['params']
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx={tx})


@jax.jit
def train_step(state, x, y):
  def loss_fn(params):
    pred = state.apply_fn({{'params': params}}, x)
    return jnp.mean((pred - y) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  state = state.apply_gradients(grads=grads)
  return state, loss
'''

MODELS = {
    "mlp": dict(
        model='''class Model(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(64)(x))
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(1)(x)''',
        input_shape=(1, 32), batch=(16, 32), out=(16, 1), tx="optax.adam(1e-3)",
        description="3-layer MLP 32-64-64-1, batch 16, Adam",
    ),
    "cnn": dict(
        model='''class Model(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.Conv(10, (3, 3))(x)
    return jnp.mean(x, axis=(1, 2))''',
        input_shape=(1, 28, 28, 1), batch=(64, 28, 28, 1), out=(64, 10), tx="optax.sgd(1e-2, 0.9)",
        description="CNN conv32-pool-conv64-conv10-mean on 28x28x1, batch 64, SGD+momentum",
    ),
    # A whole fixture program: BatchNorm statistics and the Dropout RNG live in the state.
    "bn_dropout": dict(
        fixture=ROOT / "fixtures" / "training" / "bn_dropout_trainstate.in.py",
        description="fixture bn_dropout_trainstate: Dense-BatchNorm-Dropout-Dense, batch 16, SGD+momentum",
    ),
}

STYLES = ("linen", "flat-state", "nnx-jit")


def _load(source: str, name: str, folder: Path):
    path = folder / f"{name}.py"
    path.write_text(source)
    return load_python_file(path, name)


@contextlib.contextmanager
def nnx_mode(mode: str):
    from flax import nnx

    graph = mode == "graph"
    with nnx.set_graph_mode(graph), nnx.set_graph_updates(graph):
        yield


def programs(model: str, folder: Path, mode: str = "graph") -> dict:
    spec = MODELS[model]
    if "fixture" in spec:
        linen = spec["fixture"].read_text()
    else:
        linen = PROGRAM.format(model=spec["model"], input_shape=spec["input_shape"], tx=spec["tx"])
    loaded = {"linen": _load(linen, f"bench_{model}_linen_{mode}", folder)}
    for style in STYLES[1:]:
        result = rewrite_source(linen, f"bench_{model}.py", train_style=style)
        assert result.status == "changed" and not result.todos, (style, result.todos, result.error)
        loaded[style] = _load(result.new_text, f"bench_{model}_{style.replace('-', '_')}_{mode}", folder)
    return loaded


def time_steps(program, args, steps: int, state=None):
    import jax

    if state is None:
        # template programs take a key; fixture programs a key and a learning rate
        state = program.create_train_state(jax.random.key(0), 0.05) if hasattr(program, "synthetic_batches") else program.create_train_state(jax.random.key(0))
        for _ in range(10):  # compile and warm up
            state, out = program.train_step(state, *args)
        jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(steps):
        state, out = program.train_step(state, *args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps, state


def measure(model: str, steps: int, repeats: int, folder: Path, mode: str = "graph") -> dict[str, float]:
    with nnx_mode(mode):
        return _measure(model, steps, repeats, folder, mode)


def _measure(model: str, steps: int, repeats: int, folder: Path, mode: str) -> dict[str, float]:
    import jax

    spec = MODELS[model]
    loaded = programs(model, folder, mode)
    if "fixture" in spec:
        args = (loaded["linen"].synthetic_batches(jax.random.key(1), 1)[0], jax.random.key(2))
    else:
        args = (jax.random.normal(jax.random.key(1), spec["batch"]), jax.random.normal(jax.random.key(2), spec["out"]))
    states = {style: None for style in STYLES}
    samples = {style: [] for style in STYLES}
    for _ in range(repeats):
        for style in STYLES:  # interleaved, so load changes hit every style alike
            seconds, states[style] = time_steps(loaded[style], args, steps, states[style])
            samples[style].append(seconds)
    return {style: statistics.median(values) for style, values in samples.items()}


def device() -> str:
    import jax

    d = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    return f"{d.platform.upper()} ({getattr(d, 'device_kind', '')}; {cpu}; jax {jax.__version__})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps per timed run (default 300)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved timed runs per style (default 7)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=["graph", "tree"], choices=["graph", "tree"],
                        help="NNX modes to run the converted programs in (default both)")
    args = parser.parse_args(argv)
    print(f"device: {device()}; median of {args.repeats} runs of {args.steps} steps\n")
    print("| model | NNX mode | Linen `jax.jit` + TrainState | flat-state (default) | nnx-jit (textbook) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            steps = max(20, args.steps // 10) if model == "cnn" else args.steps
            for mode in args.modes:
                t = measure(model, steps, args.repeats, Path(tmp), mode)
                base = t["linen"]
                cells = [f"{t[s] * 1e6:.0f} us ({t[s] / base:.2f}x)" for s in STYLES]
                print(f"| {model}: {MODELS[model]['description']} | {mode} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
