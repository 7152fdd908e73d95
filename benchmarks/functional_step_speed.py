"""Step speed of the functional form (plain optax loops, training/functional.py) against
the Linen program it comes from.

    python benchmarks/functional_step_speed.py [--steps N] [--repeats R]

A Linen script (module-level 3-layer MLP 32-64-64-1 with Dropout, `model.init` at module
level, a jitted optax step taking `model.apply` as a static argument and a dropout key per
step, batch 16, Adam) is converted by the tool itself (`rewrite_source`); both run the
same number of steps, interleaved, R times; the median time per step is reported.
Measured here, never asserted in tests (shared CPUs are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.step_speed import device  # noqa: E402
from nnx_migrate.equivalence.loading import load_python_file  # noqa: E402
from nnx_migrate.rewrite import rewrite_source  # noqa: E402

PROGRAM = '''
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


class Model(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(64)(x))
    x = nn.Dropout(0.1, deterministic=not train)(x)
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(1)(x)


@functools.partial(jax.jit, static_argnums=0)
def train_step(forward, params, opt_state, x, y, key):
  def loss_fn(p):
    return jnp.mean((forward(p, x, train=True, rngs={'dropout': key}) - y) ** 2)
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


model = Model()
params = model.init(jax.random.key(0), jnp.ones((1, 32)))
tx = optax.adam(1e-3)


def run(steps, x, y, state=None):
  p, opt_state, key = state if state is not None else (params, tx.init(params), jax.random.key(3))
  for _ in range(steps):
    key, step_key = jax.random.split(key)
    p, opt_state, loss = train_step(model.apply, p, opt_state, x, y, step_key)
  return (p, opt_state, key), loss
'''


def programs(folder: Path) -> dict:
    result = rewrite_source(PROGRAM, "bench_functional.py")
    assert result.status == "changed" and not result.todos and "merged_apply" in result.new_text, (result.todos, result.error)
    loaded = {}
    for name, source in (("linen", PROGRAM), ("functional", result.new_text)):
        path = folder / f"bench_{name}.py"
        path.write_text(source)
        loaded[name] = load_python_file(path, f"bench_functional_{name}")
    return loaded


def main(argv=None) -> int:
    import jax

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    x, y = jax.random.normal(jax.random.key(1), (16, 32)), jax.random.normal(jax.random.key(2), (16, 1))
    with tempfile.TemporaryDirectory() as tmp:
        loaded = programs(Path(tmp))
        states, samples = {}, {name: [] for name in loaded}
        for name, program in loaded.items():  # compile and warm up
            states[name], loss = program.run(10, x, y)
            jax.block_until_ready(loss)
        for _ in range(args.repeats):
            for name, program in loaded.items():  # interleaved, so load changes hit both alike
                start = time.perf_counter()
                states[name], loss = program.run(args.steps, x, y, states[name])
                jax.block_until_ready(loss)
                samples[name].append((time.perf_counter() - start) / args.steps)
    t = {name: statistics.median(values) for name, values in samples.items()}
    print(f"device: {device()}; median of {args.repeats} runs of {args.steps} steps\n")
    print("| program | Linen `jax.jit` + optax | functional form |")
    print("|---|---|---|")
    print(f"| MLP 32-64-64-1 + Dropout, batch 16, Adam | {t['linen'] * 1e6:.0f} us (1.00x) | {t['functional'] * 1e6:.0f} us ({t['functional'] / t['linen']:.2f}x) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
