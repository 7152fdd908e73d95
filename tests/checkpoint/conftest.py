"""One Linen training run, saved in every format, shared by the checkpoint tests."""

import sys
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="session")
def programs():
    """The Linen program and its NNX conversion, imported as modules."""
    sys.path.insert(0, str(PROGRAMS))
    try:
        import linen_net
        import nnx_net
    finally:
        sys.path.remove(str(PROGRAMS))
    return linen_net, nnx_net


@pytest.fixture(scope="session")
def linen_run(programs, tmp_path_factory):
    """Trains TRAINED_STEPS steps, saves in each format, then records the losses of the
    next RESUMED_STEPS steps (what a resumed run must reproduce)."""
    import orbax.checkpoint as ocp
    from flax import serialization
    from flax.training import checkpoints

    linen_net, _ = programs
    TRAINED_STEPS, RESUMED_STEPS = linen_net.TRAINED_STEPS, linen_net.RESUMED_STEPS
    root = tmp_path_factory.mktemp("linen_checkpoints")
    early, _ = linen_net.train(linen_net.create_state(), 1)
    state, _ = linen_net.train(early, TRAINED_STEPS - 1)

    standard = ocp.StandardCheckpointer()
    standard.save(root / "standard", state)
    standard.wait_until_finished()
    ocp.PyTreeCheckpointer().save(root / "pytree", state)
    with ocp.CheckpointManager(root / "manager") as manager:
        manager.save(1, args=ocp.args.StandardSave(early))  # an older step: the latest must be read
        manager.save(TRAINED_STEPS, args=ocp.args.StandardSave(state))
        manager.wait_until_finished()
    checkpoints.save_checkpoint(root / "flax_checkpoints", state, step=TRAINED_STEPS)
    (root / "state.msgpack").write_bytes(serialization.to_bytes(state))
    paths = {name: root / name for name in ("standard", "pytree", "manager", "flax_checkpoints")}
    paths["msgpack"] = root / "state.msgpack"

    resumed = state
    losses = []
    for i in range(TRAINED_STEPS, TRAINED_STEPS + RESUMED_STEPS):
        resumed, loss = linen_net.train_step(resumed, linen_net.BATCH * (1 + 0.1 * i), linen_net.TARGETS)
        losses.append(float(loss))
    return {"state": state, "paths": paths, "resumed_losses": losses, "root": root}
