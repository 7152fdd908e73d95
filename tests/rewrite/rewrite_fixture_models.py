"""Loading the model fixtures in fixtures/modules/ and building their example inputs.

Each `<case>.in.py` defines `EXAMPLES = {ClassName: {"fields": {...}, "inputs": [...]}}`
(plain Python, so the file also survives the rewrite unchanged and the `.out.py` has the
same table). An input is a shape tuple (float32 normal), a list of shapes (a tuple of
arrays, e.g. an LSTM carry), or ("int", shape, high) (integer tokens in [0, high)).
Optional "nnx_kwargs" are extra constructor arguments for classes with TODO sites.
"""

from __future__ import annotations

from pathlib import Path

from nnx_migrate.equivalence.loading import load_python_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "modules"


# Fewer cases than this means a folder was emptied or moved: the glob would then collect
# nothing and every test over it would pass vacuously.
MIN_CASES = 40


def cases() -> list[str]:
    found = sorted(p.name[: -len(".in.py")] for p in FIXTURES.glob("*.in.py"))
    assert len(found) >= MIN_CASES, f"{FIXTURES}: {len(found)} cases, expected at least {MIN_CASES}"
    return found


# Fixture programs are imported as fresh modules, the way `nnx-migrate check` does.
load_module = load_python_file


def make_input(spec, key):
    import jax
    import jax.numpy as jnp

    if spec is None:
        return None
    if isinstance(spec, list):
        keys = jax.random.split(key, len(spec))
        return tuple(make_input(s, k) for s, k in zip(spec, keys, strict=True))
    if isinstance(spec, tuple) and spec and spec[0] == "int":
        _, shape, high = spec
        return jax.random.randint(key, shape, 0, high)
    return jax.random.normal(key, spec, jnp.float32)
