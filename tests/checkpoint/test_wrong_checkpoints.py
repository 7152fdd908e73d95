"""A checkpoint that does not fit the model is refused with every problem listed, the
CLI exits 2, and nothing is written or changed."""

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from nnx_migrate.checkpoint import CheckpointError, CheckpointMismatchError, load_linen_checkpoint
from nnx_migrate.cli import main

NNX_FILE = Path(__file__).parent / "programs" / "nnx_net.py"


def save(path, tree):
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, tree)
    checkpointer.wait_until_finished()
    return path


def convert(source, destination, *extra):
    return main(["convert-checkpoint", str(source), str(destination), "--model", f"{NNX_FILE}::Net",
                 "--input", "float32[4,2,3]", *extra])


class OtherModel(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(8)(x.reshape((x.shape[0], -1)))))


def test_another_models_checkpoint_lists_what_has_no_place_and_what_stays_empty(tmp_path, capsys):
    variables = OtherModel().init(jax.random.key(0), jnp.ones((4, 2, 3)))
    source = save(tmp_path / "other", variables)
    assert convert(source, tmp_path / "out", "--kwargs", '{"layers_0_in_features": 6}') == 2
    error = capsys.readouterr().err
    assert "does not fit the NNX model" in error
    assert "Linen leaf with no NNX counterpart: params/Dense_0/kernel" in error
    assert "NNX variable not filled from Linen: head.kernel" in error
    assert "NNX variable not filled from Linen: norm.mean" in error  # a BatchStat too
    assert not (tmp_path / "out").exists()


def test_a_missing_layer_is_named(programs, linen_run, tmp_path, capsys):
    state = linen_run["state"]
    params = {k: v for k, v in state.params.items() if k != "head"}
    source = save(tmp_path / "no_head", {"params": params, "batch_stats": state.batch_stats})
    assert convert(source, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "NNX variable not filled from Linen: head.kernel (Param, shape (8, 3))" in error
    assert "head.bias" in error
    model = programs[1].Net(layers_0_in_features=6, rngs=nnx.Rngs(0))
    before = np.asarray(model.layers[0].kernel[...])
    with pytest.raises(CheckpointMismatchError) as raised:
        load_linen_checkpoint(source, model)
    assert len(raised.value.problems) == 2
    np.testing.assert_array_equal(model.layers[0].kernel[...], before)  # nothing half-loaded


def test_a_changed_width_is_a_shape_mismatch_for_every_affected_leaf(programs, tmp_path, capsys):
    wide = programs[0].create_state(hidden=5)
    source = save(tmp_path / "wide", wide)
    assert convert(source, tmp_path / "out", "--kwargs", '{"hidden": 8}') == 2
    error = capsys.readouterr().err
    assert "params/layers_1/kernel: shape (5, 5) in Linen, (8, 8) at NNX layers[1].kernel" in error
    assert "batch_stats/norm/mean: shape (5,) in Linen, (8,) at NNX norm.mean" in error
    # the optimizer moments of the same layers are named as well
    assert "opt_state/1/0/mu/layers_1/kernel" in error
    model = programs[1].Net(layers_0_in_features=6, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, programs[0].make_tx(), wrt=nnx.Param)
    with pytest.raises(CheckpointMismatchError, match=r"shape \(5, 5\) in Linen, \(8, 8\)"):
        load_linen_checkpoint(source, model, optimizer)


def test_another_optimizer_is_refused(programs, linen_run):
    import optax

    model = programs[1].Net(layers_0_in_features=6, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1, momentum=0.9), wrt=nnx.Param)
    with pytest.raises(CheckpointMismatchError) as raised:
        load_linen_checkpoint(linen_run["paths"]["standard"], model, optimizer)
    message = str(raised.value)
    assert "Linen optimizer leaf with no NNX counterpart: opt_state/1/0/nu/head/kernel" in message
    assert "NNX optimizer variable not filled from the checkpoint: opt_state[0].trace.head.kernel" in message


def test_an_unknown_trainstate_field_must_be_dropped_by_name(linen_run, tmp_path, capsys):
    state = linen_run["state"]
    tree = {"step": state.step, "params": state.params, "opt_state": state.opt_state,
            "batch_stats": state.batch_stats, "dropout_rng": jax.random.key_data(jax.random.key(3))}
    source = save(tmp_path / "extra", tree)
    assert convert(source, tmp_path / "out") == 2
    assert "checkpoint entry 'dropout_rng'" in capsys.readouterr().err
    assert convert(source, tmp_path / "out", "--ignore", "dropout_rng") == 0


def test_not_a_checkpoint_and_an_existing_destination(linen_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert convert(tmp_path / "empty", tmp_path / "out") == 2
    assert "not a checkpoint" in capsys.readouterr().err
    (tmp_path / "junk.msgpack").write_bytes(b"\x00not msgpack")
    with pytest.raises(CheckpointError, match="msgpack"):
        load_linen_checkpoint(tmp_path / "junk.msgpack", None)
    (tmp_path / "taken").mkdir()
    assert convert(linen_run["paths"]["standard"], tmp_path / "taken") == 2
    assert "already exists" in capsys.readouterr().err
    assert convert(linen_run["paths"]["standard"], tmp_path / "taken", "--force") == 0


def test_a_size_the_checkpoint_cannot_give_is_reported(linen_run, tmp_path, capsys):
    # without the input spec, and with the params under other names, no size is found
    tree = {"params": {"Other_0": {"kernel": jnp.ones((6, 8))}}}
    source = save(tmp_path / "renamed", tree)
    assert convert(source, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "no value for required argument(s) layers_0_in_features" in error
    assert "not readable from the Linen variables' shapes" in error
