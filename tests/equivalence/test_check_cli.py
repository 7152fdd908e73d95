"""`nnx-migrate check` from the command line: reports and exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnx_migrate.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(__file__).parent / "models"
LINEN = MODELS / "linen_models.py"
NNX = MODELS / "nnx_ports.py"


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nnx_migrate", "check", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_equivalent_port_exits_0():
    done = run_cli(f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--kwargs", '{"features": 16, "out": 4}',
                   "--input", "float32[3,10]", "--train-steps", "1")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "params/Dense_0/kernel -> dense_0.kernel" in done.stdout
    assert "loss at each of 1 optimizer steps: ok" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("EQUIVALENT")


def test_different_port_exits_1_with_json():
    done = run_cli(f"{LINEN}::MLP", f"{NNX}::MLPWrongActivation", "--input", "float32[3,10]", "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "not equivalent" and data["ok"] is False
    assert data["first_divergence"][0]["linen"] == "Dense_1"


def test_missing_file_exits_2_with_the_reason():
    done = run_cli(f"{MODELS}/nope.py::MLP", f"{NNX}::MLPRewrite", "--input", "float32[3,10]")
    assert done.returncode == 2
    assert "could not run" in done.stderr and "nope.py: no such file" in done.stderr


def test_hand_port_with_nnx_kwargs_and_call_flags(capsys):
    code = main(["check", f"{LINEN}::CNN", f"{NNX}::HandCNN", "--nnx-kwargs",
                 '{"channels": 3, "height": 6, "width": 6, "dropout_rate": 0.25}',
                 "--input", "float32[2,6,6,3]", "--call", '{"train": false}'])
    out = capsys.readouterr().out
    assert code == 1
    assert "outputs (forward): ok" in out
    assert "outputs (train-mode forward): DIFFERS" in out


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([f"{LINEN}::NoSuchModel", f"{NNX}::MLPRewrite", "--input", "float32[3,10]"], "no class 'NoSuchModel'"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "float32(3,10)"], "expected DTYPE[D0,D1,...]"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "complex7[3]"], "unknown dtype 'complex7'"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "float32[3]:0..4"], "range is for integer"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "float32[3,10]", "--kwargs", "{oops"], "--kwargs: not valid JSON"),
        ([f"{LINEN}", f"{NNX}::MLPRewrite", "--input", "float32[3,10]"], "expected FILE.py::ClassName"),
        ([f"{LINEN}::MLP", f"{NNX}::Counters", "--input", "float32[3,10]"], "not a flax.nnx Module class"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "float32[3,10]", "--kwargs", '{"width": 3}'],
         "unexpected keyword argument 'width'"),
        ([f"{LINEN}::MLP", f"{NNX}::MLPRewrite", "--input", "float32[3,7,10]", "--method", "encode"],
         "has no method 'encode'"),
    ],
)
def test_could_not_run_exits_2_with_the_reason(args, reason, capsys):
    assert main(["check", *args]) == 2
    captured = capsys.readouterr()
    assert reason in captured.err


def test_could_not_run_in_json_mode_prints_the_reason_as_json(capsys):
    assert main(["check", f"{LINEN}::Nope", f"{NNX}::MLPRewrite", "--input", "float32[3,10]", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data == {"ok": False, "status": "could not run", "reason": data["reason"]}
    assert "Nope" in data["reason"]


def test_bad_command_line_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", f"{LINEN}::MLP"])
    assert exit_info.value.code == 4


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([], "the following arguments are required: --input"),
        (["--input", "float32[3,10]", "--mapping", "{oops"], "--mapping: not valid JSON"),
        (["--input", "float32[3,10]", "--mapping", '["Dense_0"]'], "--mapping: expected a JSON object"),
        (["--input", "float32[3,10]", "--mapping", '{"Dense_0": 1}'], "expected non-empty strings"),
        (["--input", "float32[3,10]", "--rtol", "-0.5"], "--rtol: must be a finite number >= 0"),
        (["--input", "float32[3,10]", "--atol", "nan"], "--atol: must be a finite number >= 0"),
        (["--input", "float32[3,10]", "--atol", "x"], "--atol: not a number"),
    ],
)
def test_bad_arguments_exit_4_before_any_model_is_loaded(extra, reason, capsys, monkeypatch):
    """A bad command line is exit 4 (README's table), never 1 ("not equivalent") nor a
    traceback; and nothing is imported or run: the files named do not even exist."""
    import nnx_migrate.equivalence.loading as loading

    monkeypatch.setattr(loading, "load_target", lambda *a: pytest.fail("loaded a model"))
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "missing_linen.py::MLP", "missing_nnx.py::MLP", *extra])
    assert exit_info.value.code == 4
    assert reason in capsys.readouterr().err


def test_help_says_check_imports_and_runs_the_files(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Imports LINEN_FILE and NNX_FILE and runs their code" in out


def test_int_inputs_respect_the_range():
    from nnx_migrate.equivalence.example_inputs import make_input

    tokens = make_input("int32[50]:5..8", seed=0)
    assert tokens.dtype.name == "int32" and int(tokens.min()) >= 5 and int(tokens.max()) < 8
    assert make_input("float32[2,3]", seed=1).shape == (2, 3)


def test_cli_stays_light_until_check_runs():
    code = ("import sys; from nnx_migrate.cli import build_parser; build_parser(); "
            "print(any(m == 'jax' or m.startswith(('jax.', 'flax')) for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "False", done.stderr


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = capsys.readouterr().out
    for line in ("0  equivalent", "1  not equivalent", "2  could not run"):
        assert line in text


def test_mapping_several_inputs_and_methods_from_the_command_line(capsys):
    block = [f"{LINEN}::TransformerBlock", f"{NNX}::HandTransformerBlock", "--nnx-kwargs", '{"dim": 8}',
             "--input", "float32[2,4,8]"]
    # twin LayerNorms placed by the outputs, and the report says how
    assert main(["check", *block]) == 0
    assert "placed by the outputs: LayerNorm_0 -> ln1, LayerNorm_1 -> ln2" in capsys.readouterr().out
    # a port that agrees under no placement (another epsilon) cannot be placed: exit 2
    wrong_eps = [*block[:3], '{"dim": 8, "epsilon": 1e-5}', *block[4:]]
    assert main(["check", *wrong_eps]) == 2
    assert "agree under none" in capsys.readouterr().err
    assert main(["check", *block, "--mapping", '{"LayerNorm_0": "ln1", "LayerNorm_1": "ln2"}']) == 0
    capsys.readouterr()

    assert main(["check", f"{LINEN}::TwoInputs", f"{NNX}::TwoInputsRewrite",
                 "--input", "float32[3,10]", "--input", "float32[3,7]"]) == 0
    capsys.readouterr()

    encode = [f"{LINEN}::AutoEncoder", f"{NNX}::AutoEncoderWrongEncode", "--input", "float32[3,6]",
              "--method", "encode"]
    assert main(["check", *encode]) == 1  # init through encode alone leaves the decoder empty
    assert "--init-input" in capsys.readouterr().out
    assert main(["check", *encode, "--init-input", "float32[3,6]"]) == 1
    assert "outputs (method encode): DIFFERS" in capsys.readouterr().out
    assert main(["check", f"{LINEN}::AutoEncoder", f"{NNX}::AutoEncoderRewrite", "--input", "float32[3,6]",
                 "--method", "encode", "--init-input", "float32[3,6]"]) == 0
