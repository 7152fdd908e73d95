"""Runs the CLI as a separate process, as a user would, and (when the tests run as
root) without the capabilities that let root read and write past permission bits.

Root ignores `chmod`: a folder with mode 000 is still readable by root, because of the
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH capabilities. `setpriv` drops both from the
child's bounding set (so its exec'd Python has neither); the child is still uid 0, the
owner of the test's files, and the owner's permission bits (000, 555) really deny it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def cli(*args, cwd=None, permissions_apply: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """`nnx-migrate ARGS` in a subprocess; with `permissions_apply`, file permission bits
    apply to it even when the tests run as root."""
    command = [sys.executable, "-m", "nnx_migrate", *map(str, args)]
    if permissions_apply and os.geteuid() == 0:
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root's file capabilities"
        command = _DROP + command
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def denied(path: Path) -> bool:
    """Whether `cli(..., permissions_apply=True)` is really refused reading `path`: the
    tests check their setup works before they trust an outcome."""
    command = ["cat", str(path)] if path.is_file() else ["ls", str(path)]
    if os.geteuid() == 0:
        command = _DROP + command
    return subprocess.run(command, capture_output=True).returncode != 0


def unwritable(folder: Path) -> bool:
    command = ["touch", str(folder / ".probe")]
    if os.geteuid() == 0:
        command = _DROP + command
    ok = subprocess.run(command, capture_output=True).returncode == 0
    if ok:
        (folder / ".probe").unlink()
    return not ok


LINEN_MODEL = '''import flax.linen as nn


class Mlp(nn.Module):
  features: int = 3

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.features)(x)
'''

OLD_NNX = '''import optax
from flax import nnx

model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.sgd(0.1))
'''


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (links not followed) -> its bytes."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                try:
                    found[str(path.relative_to(root))] = path.read_bytes()
                except PermissionError:
                    found[str(path.relative_to(root))] = b"<unreadable>"
    return found
