"""A Linen checkpoint, in each format Linen programs write, resumes in the converted NNX
model: the NNX run's losses equal the Linen run's resumed losses to float32 round-off
(BatchNorm statistics, Adam moments, schedule counts and the step carried over)."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from nnx_migrate.checkpoint import load_linen_checkpoint, restore_nnx_checkpoint

FORMATS = ["standard", "pytree", "manager", "flax_checkpoints", "msgpack"]
ROOT = Path(__file__).resolve().parents[2]
NNX_FILE = Path(__file__).parent / "programs" / "nnx_net.py"
TRAINED_STEPS = RESUMED_STEPS = 3  # as programs/linen_net.py runs them (checked below)


def test_the_linen_program_runs_the_steps_this_file_expects(programs):
    assert (programs[0].TRAINED_STEPS, programs[0].RESUMED_STEPS) == (TRAINED_STEPS, RESUMED_STEPS)


def fresh(programs, seed=1):
    linen_net, nnx_net = programs
    model = nnx_net.Net(layers_0_in_features=6, rngs=nnx.Rngs(seed))
    return model, nnx.Optimizer(model, linen_net.make_tx(), wrt=nnx.Param)


def resume(programs, model, optimizer):
    linen_net, nnx_net = programs
    return nnx_net.train(model, optimizer, linen_net.BATCH, linen_net.TARGETS, RESUMED_STEPS, TRAINED_STEPS)


def assert_carried(model, optimizer, linen_state):
    assert int(optimizer.step[...]) == TRAINED_STEPS
    np.testing.assert_array_equal(model.norm.mean[...], linen_state.batch_stats["norm"]["mean"])
    np.testing.assert_array_equal(model.stack.dense_0.kernel[...], linen_state.params["stack"]["Dense_0"]["kernel"])
    adam = optimizer.opt_state[1][0]
    np.testing.assert_array_equal(adam.mu["layers"][1]["kernel"][...],
                                  linen_state.opt_state[1][0].mu["layers_1"]["kernel"])
    assert int(optimizer.opt_state[1][1].count[...]) == TRAINED_STEPS  # the schedule's count


@pytest.mark.parametrize("fmt", FORMATS)
def test_api_loads_each_format_and_training_resumes_with_linen_losses(programs, linen_run, fmt):
    model, optimizer = fresh(programs)
    report = load_linen_checkpoint(linen_run["paths"][fmt], model, optimizer)
    assert report.step == TRAINED_STEPS
    assert_carried(model, optimizer, linen_run["state"])
    np.testing.assert_allclose(resume(programs, model, optimizer), linen_run["resumed_losses"], rtol=1e-6)


def test_without_the_checkpoint_the_losses_differ(programs, linen_run):
    # the comparison above can fail: a fresh model resumes with other losses
    model, optimizer = fresh(programs)
    assert not np.allclose(resume(programs, model, optimizer), linen_run["resumed_losses"], rtol=1e-3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_converts_each_format_and_the_nnx_checkpoint_resumes(programs, linen_run, fmt, tmp_path):
    from nnx_migrate.cli import main

    destination = tmp_path / "nnx"
    assert main(["convert-checkpoint", str(linen_run["paths"][fmt]), str(destination),
                 "--model", f"{NNX_FILE}::Net"]) == 0
    model, optimizer = fresh(programs, seed=2)
    restore_nnx_checkpoint(destination, model, optimizer)
    assert_carried(model, optimizer, linen_run["state"])
    np.testing.assert_allclose(resume(programs, model, optimizer), linen_run["resumed_losses"], rtol=1e-6)


def test_converted_checkpoint_restores_with_plain_orbax_into_an_abstract_state(programs, linen_run, tmp_path):
    import orbax.checkpoint as ocp

    from nnx_migrate.cli import main

    linen_net, nnx_net = programs
    destination = tmp_path / "nnx"
    assert main(["convert-checkpoint", str(linen_run["paths"]["standard"]), str(destination),
                 "--model", f"{NNX_FILE}::Net", "--input", "float32[4,2,3]"]) == 0

    def build():
        model = nnx_net.Net(layers_0_in_features=6, rngs=nnx.Rngs(0))
        return model, nnx.Optimizer(model, linen_net.make_tx(), wrt=nnx.Param)

    abstract_model, abstract_optimizer = nnx.eval_shape(build)
    target = {"model": nnx.state(abstract_model), "optimizer": nnx.state(abstract_optimizer)}
    restored = ocp.StandardCheckpointer().restore(destination.resolve(), target)
    model, optimizer = fresh(programs, seed=3)
    nnx.update(model, restored["model"])
    nnx.update(optimizer, restored["optimizer"])
    np.testing.assert_allclose(resume(programs, model, optimizer), linen_run["resumed_losses"], rtol=1e-6)


def test_cli_reports_sizes_read_off_the_shapes_and_runs_as_a_subprocess(linen_run, tmp_path):
    destination = tmp_path / "nnx"
    done = subprocess.run(
        [sys.executable, "-m", "nnx_migrate", "convert-checkpoint", str(linen_run["paths"]["manager"]),
         str(destination), "--model", f"{NNX_FILE}::Net", "--kwargs", '{"hidden": 8}'],
        cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "layers_0_in_features=6" in done.stdout
    assert f"step {TRAINED_STEPS} of 2" in done.stdout  # the manager's latest step was read
    assert (destination / "_CHECKPOINT_METADATA").is_file()


def test_an_earlier_step_can_be_chosen(programs, linen_run):
    model, optimizer = fresh(programs)
    report = load_linen_checkpoint(linen_run["paths"]["manager"], model, optimizer, step=1)
    assert report.step == 1 and int(optimizer.step[...]) == 1


def test_model_alone_needs_the_optimizer_state_dropped_explicitly(programs, linen_run):
    from nnx_migrate.checkpoint import CheckpointMismatchError

    model, _ = fresh(programs)
    with pytest.raises(CheckpointMismatchError, match=r"ignore=\('opt_state',\)"):
        load_linen_checkpoint(linen_run["paths"]["standard"], model)
    load_linen_checkpoint(linen_run["paths"]["standard"], model, ignore=("opt_state",))
    np.testing.assert_array_equal(model.head.kernel[...], linen_run["state"].params["head"]["kernel"])
    out = model(programs[0].BATCH)
    linen_out = linen_run["state"].apply_fn(
        {"params": linen_run["state"].params, "batch_stats": linen_run["state"].batch_stats}, programs[0].BATCH)
    np.testing.assert_allclose(out, linen_out, rtol=1e-6, atol=1e-6)
    assert jax.tree.leaves(out)


def test_the_rewrites_own_output_takes_the_checkpoint_with_its_open_sizes(programs, linen_run, tmp_path):
    # the class `nnx-migrate rewrite` writes for linen_net.Net leaves sizes open (today
    # the setup list's inputs, BatchNorm's features, the stack's input): all are read off
    # the checkpoint, and every leaf finds its place by the rewrite's names
    from nnx_migrate.checkpoint import convert_checkpoint
    from nnx_migrate.equivalence.construction import missing_arguments
    from nnx_migrate.equivalence.loading import load_python_file
    from nnx_migrate.rewrite.runner import rewrite_files

    [result] = rewrite_files([Path(programs[0].__file__)])
    converted = tmp_path / "net_nnx.py"
    converted.write_text(result.new_text)
    nnx_class = load_python_file(converted, "checkpoint_rewritten_net").Net
    report = convert_checkpoint(linen_run["paths"]["standard"], tmp_path / "nnx", nnx_class)
    # (the names are the rewrite's choice; the values are the flattened input, 6, and the width, 8)
    assert set(report.sizes) == set(missing_arguments(nnx_class, {})) and report.sizes
    assert report.sizes.get("dense_0_in_features", 6) == 6 and set(report.sizes.values()) <= {6, 8}
    assert report.step == TRAINED_STEPS and not report.notes
