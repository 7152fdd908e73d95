"""How much one `compare()` costs next to simply running both models once.

Model: a mid-size CNN classifier (2 conv layers with BatchNorm, Dropout, 2 dense layers,
~0.55M parameters) on a batch of 16 32x32x3 images, as Linen and as an NNX class in the
rewrite's form. Both sides run eagerly, the way `compare()` runs them.

- bare: what a user does to run both models once: Linen `init` + `apply`, NNX
  construction + call (eval mode), blocking on the results.
- check: one default `compare(linen, NNXClass, x)`: builds and maps, then compares the
  inference outputs, the gradients of every parameter, and a train-mode call (BatchNorm
  statistics, identical Dropout masks).

Two measurements, both reported:
- one run (the headline): what `nnx-migrate check` or a CI test pays. Each of bare and
  check runs once in its own fresh Python process (after the imports), so neither gets
  the other's compiled JAX operations for free; median over --processes runs each.
- warm: in this process, after one untimed run of each, the median of --repeats runs.
  This isolates the arithmetic: the backward pass of the gradient check costs several
  forward passes, so it is printed with and without gradients.

Prints the ratios check / bare. Target: <= 2x. Timings are never asserted in tests.

    python benchmarks/check_speed.py [--repeats 5] [--processes 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from nnx_migrate.equivalence import compare  # noqa: E402


class LinenCNN(nn.Module):
    classes: int = 10
    dropout_rate: float = 0.3

    @nn.compact
    def __call__(self, x, train: bool = False):
        for features in (32, 64):
            x = nn.Conv(features, (3, 3))(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            x = nn.relu(x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(128)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.classes)(x)


class NNXCNN(nnx.Module):
    """What `nnx-migrate rewrite` writes for LinenCNN (names by the shared convention)."""

    def __init__(self, classes: int = 10, dropout_rate: float = 0.3, *, in_features: int, rngs: nnx.Rngs):
        self.conv_0 = nnx.Conv(in_features, 32, (3, 3), rngs=rngs)
        self.batch_norm_0 = nnx.BatchNorm(32, rngs=rngs)
        self.conv_1 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
        self.batch_norm_1 = nnx.BatchNorm(64, rngs=rngs)
        self.dense_0 = nnx.Linear(8 * 8 * 64, 128, rngs=rngs)
        self.dropout_0 = nnx.Dropout(dropout_rate, rngs=rngs)
        self.dense_1 = nnx.Linear(128, classes, rngs=rngs)

    def __call__(self, x, train: bool = False):
        for conv, norm in ((self.conv_0, self.batch_norm_0), (self.conv_1, self.batch_norm_1)):
            x = nnx.relu(norm(conv(x), use_running_average=not train))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nnx.relu(self.dense_0(x))
        x = self.dropout_0(x, deterministic=not train)
        return self.dense_1(x)


def bare(x) -> None:
    linen = LinenCNN()
    variables = linen.init(jax.random.key(0), x)
    jax.block_until_ready(linen.apply(variables, x))
    model = NNXCNN(in_features=x.shape[-1], rngs=nnx.Rngs(0))
    jax.block_until_ready(model(x))


def check(x) -> None:
    result = compare(LinenCNN(), NNXCNN, x)
    assert result.ok, str(result)


def timed(fn, x, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def example_input():
    return jax.random.normal(jax.random.key(1), (16, 32, 32, 3), jnp.float32)


def one_run_in_fresh_process(which: str) -> float:
    """Seconds for one `bare` or `check` in a new interpreter (imports not counted)."""
    done = subprocess.run([sys.executable, __file__, "--only", which], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--only", choices=["bare", "check"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    x = example_input()
    if args.only:  # child process: time exactly one run
        start = time.perf_counter()
        (bare if args.only == "bare" else check)(x)
        print(time.perf_counter() - start)
        return

    params = sum(v.size for v in jax.tree.leaves(LinenCNN().init(jax.random.key(0), x)["params"]))
    print(f"model: CNN, {params:,} parameters, input {tuple(x.shape)}, {jax.devices()[0].platform}, "
          f"{os.cpu_count()} cores")
    # Interleaved, so a change in machine load hits both sides alike.
    runs = [(one_run_in_fresh_process("bare"), one_run_in_fresh_process("check")) for _ in range(args.processes)]
    cold_bare = statistics.median(b for b, _ in runs)
    cold_check = statistics.median(c for _, c in runs)
    print(f"one run, fresh process each (median of {args.processes}): bare {cold_bare:.2f} s, "
          f"check {cold_check:.2f} s, ratio {cold_check / cold_bare:.2f}x (target <= 2x)")

    bare(x)
    check(x)
    check_no_grads = lambda x: compare(LinenCNN(), NNXCNN, x, gradients=False)  # noqa: E731
    check_no_grads(x)
    bare_s, check_s, no_grads_s = (
        statistics.median(values)
        for values in zip(*[(timed(bare, x, 1), timed(check, x, 1), timed(check_no_grads, x, 1))
                            for _ in range(args.repeats)], strict=True)
    )
    print(f"warm (median of {args.repeats}): bare {bare_s * 1e3:.0f} ms, check {check_s * 1e3:.0f} ms "
          f"({check_s / bare_s:.2f}x), check without gradients {no_grads_s * 1e3:.0f} ms "
          f"({no_grads_s / bare_s:.2f}x)")


if __name__ == "__main__":
    main()
