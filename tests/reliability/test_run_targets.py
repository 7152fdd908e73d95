"""--report and --output-dir: a bad path is found before anything is written (exit 4,
the sources untouched); --output-dir never writes into the input tree, and writes a
complete copy that runs on its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from reliability_helpers import LINEN_MODEL, cli, snapshot


@pytest.fixture()
def project(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "model.py").write_text(LINEN_MODEL)
    (src / "pkg" / "helpers.py").write_text("import json\n\ndef load(path):\n  return json.load(open(path))\n")
    (src / "pkg" / "config.json").write_text('{"features": 3}\n')
    (src / "main.py").write_text(
        "import pathlib\n\nimport jax.numpy as jnp\nfrom flax import nnx\n\nfrom pkg import helpers, model\n\n"
        "config = helpers.load(pathlib.Path(__file__).parent / 'pkg' / 'config.json')\n"
        "m = model.Mlp(config['features'], in_features=2, rngs=nnx.Rngs(0))\n"
        "print('out', m(jnp.ones((1, 2))).shape)\n"
    )
    return tmp_path, src


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (".", "is a folder; give a file name"),
        ("{tmp}", "is a folder; give a file name"),
        ("{tmp}/missing/report", "the folder {tmp}/missing does not exist"),
        ("{tmp}/taken", "{tmp}/taken.json is a folder"),
    ],
)
def test_bad_report_path_is_found_before_anything_is_written(project, report, message):
    tmp, src = project
    (tmp / "taken.json").mkdir()
    before = snapshot(tmp)
    done = cli("rewrite", "--write", src, "--report", report.format(tmp=tmp), cwd=tmp)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert message.format(tmp=tmp) in done.stderr
    assert snapshot(tmp) == before  # --write converted nothing


@pytest.mark.parametrize("output_dir", [".", "src", "src/pkg/out", "{tmp}/src"])
def test_output_dir_in_the_input_tree_is_refused(project, output_dir):
    tmp, src = project
    before = snapshot(tmp)
    done = cli("rewrite", "--output-dir", output_dir.format(tmp=tmp), "src", cwd=tmp)
    assert done.returncode == 4, done.stderr
    assert "--output-dir" in done.stderr and ("inside the input tree" in done.stderr or "over src itself" in done.stderr)
    assert snapshot(tmp) == before


def test_output_dir_writes_a_complete_tree_that_runs_on_its_own(project):
    tmp, src = project
    before = snapshot(src)
    done = cli("rewrite", "--output-dir", tmp / "nnx", src, "--report", tmp / "report", cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert snapshot(src) == before  # sources untouched
    copy = tmp / "nnx" / "src"
    files = snapshot(copy)
    assert sorted(files) == sorted(before)  # every file, the unchanged ones too
    assert files["pkg/helpers.py"] == before["pkg/helpers.py"]
    assert files["pkg/config.json"] == before["pkg/config.json"]
    assert b"nnx.Module" in files["pkg/model.py"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ran = subprocess.run([sys.executable, "main.py"], cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "out (1, 3)"


def test_output_dir_that_cannot_be_made_is_found_before_anything_is_written(project):
    tmp, src = project
    (tmp / "afile").write_text("")
    before = snapshot(tmp)
    done = cli("rewrite", "--output-dir", tmp / "afile" / "out", src, cwd=tmp)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert f"--output-dir {tmp / 'afile' / 'out'}: {tmp / 'afile'} is a file" in done.stderr
    assert snapshot(tmp) == before
