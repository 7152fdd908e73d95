"""Times lint and rewrite on one generated file at 1x, 2x, 4x and 8x its base size.

Both must grow linearly with the size of the file and the number of findings: the table
gives each size's CPU time (of a fresh process per measurement: the process's own CPU
seconds, so that other load on a shared machine counts as little as it can), its peak
memory (resident set) and the growth ratio `time(kx) / (k * time(1x))`, which is 1.0 for
a linear tool. Target (issue 17): every ratio within 1.3. Before each tool, a `parse-`
row times LibCST's parse alone on the same files: the floor's own growth (memory and
caches make even a plain parse grow a little faster than the file).

    python benchmarks/scaling.py [--base N] [--sizes 1,2,4,8] [--tool lint|rewrite|both]

lint file: N small NNX classes written for Flax 0.10, 3 findings each (a plain list of
layers, `Variable.value`, `Optimizer` without `wrt`), so 800 classes give 2,400 findings.
rewrite file: N times two small Linen classes (a compact MLP with Dropout, a setup() block)
and a function that builds one with init/apply.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LINT_HEADER = "import optax\nimport jax.numpy as jnp\nfrom flax import nnx\n\n"
LINT_BLOCK = '''
class Block{i}(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = [nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 4, rngs=rngs)]
        self.count = nnx.Variable(jnp.array(0))

    def __call__(self, x):
        self.count.value += 1
        return self.layers[1](self.layers[0](x))


def make{i}():
    model = Block{i}(nnx.Rngs({i}))
    return nnx.Optimizer(model, optax.sgd(0.1))
'''

REWRITE_HEADER = "import jax\nimport flax.linen as nn\n\n"
REWRITE_BLOCK = '''
class Mlp{i}(nn.Module):
    features: int = {width}
    rate: float = 0.1

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(self.features)(x)
        x = nn.relu(x)
        x = nn.Dropout(self.rate, deterministic=not train)(x)
        return nn.Dense(2)(x)


class Head{i}(nn.Module):
    def setup(self):
        self.proj = nn.Dense(3)
        self.norm = nn.LayerNorm()

    def __call__(self, x):
        return self.norm(self.proj(x))


def predict{i}(x):
    model = Mlp{i}()
    params = model.init(jax.random.PRNGKey({i}), x)
    return model.apply(params, x)
'''


def generate(tool: str, n: int) -> str:
    if tool == "lint":
        return LINT_HEADER + "".join(LINT_BLOCK.format(i=i) for i in range(n))
    return REWRITE_HEADER + "".join(REWRITE_BLOCK.format(i=i, width=8 + i % 5) for i in range(n))


def _measure_one(tool: str, path: str) -> dict:
    """In a fresh process: time one run over `path`; the peak RSS is this process's."""
    sys.path.insert(0, str(ROOT))
    from nnx_migrate.files import read_source

    if tool.startswith("parse"):
        import libcst as cst

        text = read_source(Path(path)).text
        start = time.process_time()
        cst.parse_module(text)
        seconds = time.process_time() - start
        count = 0
    elif tool == "lint":
        from nnx_migrate.lint.runner import LintOptions, lint_paths

        start = time.process_time()
        run = lint_paths([path], LintOptions())
        seconds = time.process_time() - start
        assert not run.errors, run.errors[0].error
        count = len(run.findings)
    else:
        from nnx_migrate.rewrite.runner import rewrite_files

        start = time.process_time()
        [result] = rewrite_files([Path(path)], jobs=1)
        seconds = time.process_time() - start
        count = len(result.classes)
        assert result.status != "failed", result.error
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "count": count}


def measure(tool: str, n: int, repeat: int) -> dict:
    kind = tool.split("-")[-1]  # "parse-lint" parses the lint file
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"generated_{kind}.py")
        Path(path).write_text(generate(kind, n))
        size = os.path.getsize(path)
        runs = []
        for _ in range(repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--one", tool, path],
                check=True, capture_output=True, text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "bytes": size}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=100, help="classes in the 1x file (default 100)")
    parser.add_argument("--sizes", default="1,2,4,8")
    parser.add_argument("--tool", choices=("lint", "rewrite", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest counts")
    parser.add_argument("--one", nargs=2, metavar=("TOOL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_measure_one(*args.one)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = ("lint", "rewrite") if args.tool == "both" else (args.tool,)
    worst = 0.0
    for tool in [t for name in tools for t in (f"parse-{name}", name)]:
        print(f"{tool}: {args.base} classes per 1x")
        print(f"{'size':>5}{'KB':>9}{'found':>8}{'CPU s':>10}{'peak MB':>9}{'growth':>8}")
        first = None
        for k in sizes:
            row = measure(tool, args.base * k, args.repeat)
            first = first or (row, k)
            growth = row["seconds"] / (first[0]["seconds"] * k / first[1])
            if not tool.startswith("parse"):
                worst = max(worst, growth)
            print(f"{k:>4}x{row['bytes'] / 1024:9.0f}{row['count']:8d}{row['seconds']:10.2f}"
                  f"{row['peak_mb']:9.0f}{growth:8.2f}", flush=True)
    print(f"worst growth ratio: {worst:.2f} (target <= 1.30)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
