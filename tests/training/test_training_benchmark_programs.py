"""The step-speed benchmark's programs convert without TODO sites in both styles and their
converted steps compute the Linen step's loss from the same weights, in NNX's graph and
tree mode (speed itself is only measured by benchmarks/step_speed.py, never asserted)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from training_programs import ROOT, start_from_linen_weights


def _step_speed():
    spec = importlib.util.spec_from_file_location("step_speed_benchmark", ROOT / "benchmarks" / "step_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_mlp_benchmark_programs_agree(tmp_path, nnx_mode):
    import jax

    bench = _step_speed()
    loaded = bench.programs("mlp", tmp_path, nnx_mode)  # asserts: changed, no TODO sites
    spec = bench.MODELS["mlp"]
    x = jax.random.normal(jax.random.key(1), spec["batch"])
    y = jax.random.normal(jax.random.key(2), spec["out"])
    linen_state = loaded["linen"].create_train_state(jax.random.key(0))
    _, linen_loss = loaded["linen"].train_step(linen_state, x, y)
    for style in bench.STYLES[1:]:
        state, _ = start_from_linen_weights(loaded[style].create_train_state(jax.random.key(0)), linen_state)
        _, loss = loaded[style].train_step(state, x, y)
        np.testing.assert_allclose(float(loss), float(linen_loss), rtol=1e-5, err_msg=style)
