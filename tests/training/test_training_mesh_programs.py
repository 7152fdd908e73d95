"""Logically partitioned programs on a 2x2 mesh (fixtures/training/mesh_*): the Linen
program and its conversion, from the same initial weights, give the same loss at every
step (float32 round-off), and every converted parameter is sharded with the PartitionSpec
of its Linen counterpart, when created and after training; in both train styles and both
NNX modes (mesh_programs.configs). All of it runs in one subprocess with four forced CPU devices
(mesh_programs.py), since this process has one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mesh_programs import configs

from training_programs import ROOT, STYLES, mesh_cases

RTOL, ATOL = 1e-5, 1e-6
RUNS = [(case, style, mode) for case in mesh_cases() for style, mode in configs(case, STYLES)]


@pytest.fixture(scope="module")
def results():
    """The one subprocess, shared by every comparison."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("mesh_programs.py"))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found["linen"], {(r["case"], r["style"], r["mode"]): r for r in found["nnx"]}


def test_there_are_mesh_cases():
    assert len(mesh_cases()) >= 2 and len(RUNS) >= 5


@pytest.mark.parametrize("case,style,mode", RUNS, ids=[":".join(r) for r in RUNS])
def test_converted_program_trains_like_linen_on_the_mesh(results, case, style, mode):
    linen, converted = results
    ours = converted[case, style, mode]
    np.testing.assert_allclose(ours["losses"], linen[case]["losses"], rtol=RTOL, atol=ATOL, err_msg="loss per step")
    assert len(set(np.round(linen[case]["losses"], 4))) > 1, "the loss must change from step to step"
    for when in ("created", "trained"):
        assert ours[when] == linen[case][when], when
    # not vacuous: some parameter is split over a mesh axis
    assert any(axis is not None for spec in linen[case]["created"].values() for axis in spec)
