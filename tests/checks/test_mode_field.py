"""A mode flag that is both a field and a call argument (`nn.merge_param`), on
fixtures/checks/mode_field: the check passes it once, where Linen takes it (the field, set
per pass on a clone), and sets the converted class's attribute of the same name."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnx_migrate.checks.running import load_checks_file, run_case
from nnx_migrate.cli import main

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "checks" / "mode_field"


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mode_field")
    code = main(["rewrite", str(FIXTURE), "--output-dir", str(tmp / "out"), "--emit-checks", str(tmp / "test_checks.py"), "-q"])
    assert code in (0, 8)
    cases, _ = load_checks_file(tmp / "test_checks.py")
    return tmp, {case["id"]: case for case in cases}


def test_the_field_flag_is_passed_once_in_each_mode(emitted):
    tmp, cases = emitted
    tagger = cases["models.py::Tagger"]
    assert tagger["kwargs"] == {"classes": 5, "deterministic": True} and tagger["call"] == {}
    outcome = run_case(tagger, list(cases.values()), tmp)
    assert outcome.ok, outcome.message
    assert "outputs (train-mode forward): ok" in outcome.message
    # the child gets the flag from its parent's call, as a call argument
    child = run_case(cases["models.py::NoisyHead"], list(cases.values()), tmp)
    assert child.ok and child.example == "the inputs models.py::Tagger passes it", child.message


def test_train_mode_really_runs_with_the_field_at_its_train_value(emitted):
    tmp, cases = emitted
    text = (tmp / "out" / "mode_field" / "models.py").read_text()
    assert text.count("nnx.Dropout(rate=0.25,") == 1
    # another file: the check loads each file once per process
    (tmp / "wrong").mkdir()
    (tmp / "wrong" / "models.py").write_text(text.replace("nnx.Dropout(rate=0.25,", "nnx.Dropout(rate=0.5,"))
    outcome = run_case({**cases["models.py::Tagger"], "nnx": "wrong/models.py::Tagger"}, list(cases.values()), tmp)
    assert outcome.verdict == "not equivalent"
    assert "outputs (forward): ok" in outcome.message  # inference: dropout off on both sides
    assert "outputs (train-mode forward): DIFFERS" in outcome.message
    assert outcome.first_divergence == "Dropout_0 (last agreeing: -)"


def test_optimizer_steps_run_in_train_mode_through_the_field(emitted):
    from nnx_migrate.equivalence import compare
    from nnx_migrate.equivalence.example_inputs import make_input
    from nnx_migrate.equivalence.loading import load_target

    tmp, cases = emitted
    linen = load_target(str(FIXTURE / "models.py::Tagger"))
    converted = load_target(str(tmp / "out" / "mode_field" / "models.py::Tagger"))
    result = compare(linen(classes=5, deterministic=True), converted, make_input("float32[3,6]", 0), train_steps=2)
    assert result.ok, str(result)
    assert "loss at each of 2 optimizer steps: ok" in str(result)
    assert result.nnx_module.deterministic is True  # put back after each pass
