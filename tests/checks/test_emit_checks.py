"""`rewrite --emit-checks` and `check --from` end to end on fixtures/checks/project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "fixtures" / "checks" / "project"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


# The true entry point (`python -m nnx_migrate`, its exit status) runs in a subprocess for
# the emitted file, `check --from`'s table and the import probe below; the other runs call
# the CLI in this process (the `cli` fixture), which starts no interpreter and no jax import.
def nnx_migrate(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "nnx_migrate", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True)


def pytest_on(path: Path):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", str(path)],
                          cwd=path.parent, env=ENV, capture_output=True, text=True)


def load_cases(path: Path):
    from nnx_migrate.checks.running import load_checks_file

    return load_checks_file(path)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("emit")
    shutil.copytree(PROJECT, tmp / "project")
    done = nnx_migrate("rewrite", tmp / "project", "--output-dir", tmp / "out", "--emit-checks",
                       tmp / "test_checks.py", "--examples", tmp / "project" / "examples.toml")
    assert done.returncode in (0, 8), done.stderr  # 8: TODO sites (sizes left as arguments)
    return tmp


def test_emitted_file_lists_every_converted_class_with_its_example_source(emitted):
    cases, examples = load_cases(emitted / "test_checks.py")
    by_id = {case["id"]: case for case in cases}
    assert sorted(by_id) == ["models.py::CNN", "models.py::MLPHead", "models.py::TokenClassifier"]
    cnn = by_id["models.py::CNN"]
    assert (cnn["kwargs"], cnn["inputs"], cnn["call"]) == ({"features": 4, "classes": 3}, ["float32[2,12,12,1]"], {"train": False})
    assert cnn["example"] == "project/train.py:15"
    assert cnn["linen"] == "project/models.py::CNN" and cnn["nnx"] == "out/project/models.py::CNN"
    # the child and the class nobody inits get theirs when the check runs
    assert "inputs" not in by_id["models.py::MLPHead"] and "inputs" not in by_id["models.py::TokenClassifier"]
    assert examples == "project/examples.toml"


def test_emitted_tests_pass_then_one_changed_activation_fails_exactly_its_class(emitted):
    passed = pytest_on(emitted / "test_checks.py")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "3 passed" in passed.stdout

    converted = emitted / "out" / "project" / "models.py"
    text = converted.read_text()
    assert text.count("x = nnx.relu(x)\n") == 1  # CNN's own activation, not MLPHead's
    converted.write_text(text.replace("x = nnx.relu(x)\n", "x = nnx.gelu(x)\n"))
    try:
        failed = pytest_on(emitted / "test_checks.py")
    finally:
        converted.write_text(text)
    assert failed.returncode == 1
    assert "2 passed" in failed.stdout and "1 failed" in failed.stdout
    assert "FAILED test_checks.py::test_nnx_matches_linen[models.py::CNN]" in failed.stdout
    assert "models.py::CNN: not equivalent" in failed.stdout
    assert "first diverging submodule: MLPHead_0" in failed.stdout


def test_check_from_prints_the_table_and_exit_code(emitted):
    done = nnx_migrate("check", "--from", emitted / "test_checks.py")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["class", "verdict", "max", "abs", "diff", "first", "diverging", "submodule"]
    assert sorted(line.split()[:2] for line in lines[1:]) == [
        ["models.py::CNN", "equivalent"], ["models.py::MLPHead", "equivalent"], ["models.py::TokenClassifier", "equivalent"]]


def test_class_without_example_fails_naming_it_and_the_line_to_add(tmp_path, cli):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lonely.py").write_text(
        "import flax.linen as nn\n\n\nclass Lonely(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        return nn.tanh(nn.Dense(3)(x))\n")
    done = cli("rewrite", tmp_path / "src", "--output-dir", tmp_path / "out", "--emit-checks", tmp_path / "checks_test.py")
    assert done.code in (0, 8), done.err
    ran = cli("check", "--from", tmp_path / "checks_test.py")
    assert ran.code == 2
    assert "lonely.py::Lonely  no example" in ran.out
    assert "no example inputs for Lonely" in ran.err
    assert f"add this line to {tmp_path / 'nnx-examples.toml'}" in ran.err
    assert '"src/lonely.py::Lonely" = { kwargs = {}, inputs = ["float32[1,16]"], call = {} }' in ran.err

    # the line, filled in, is all it takes
    (tmp_path / "nnx-examples.toml").write_text('"src/lonely.py::Lonely" = { inputs = ["float32[2,5]"] }\n')
    assert cli("check", "--from", tmp_path / "checks_test.py").code == 0


def test_write_keeps_the_originals_the_checks_point_at(tmp_path, cli):
    shutil.copytree(PROJECT, tmp_path / "project")
    originals = (tmp_path / "project" / "models.py").read_text()
    done = cli("rewrite", tmp_path / "project", "--write", "--emit-checks", tmp_path / "ci" / "test_checks.py",
               "--examples", tmp_path / "project" / "examples.toml")
    assert done.code in (0, 8), done.err
    assert "nnx.Module" in (tmp_path / "project" / "models.py").read_text()
    kept = tmp_path / "ci" / ".nnx-migrate" / "originals" / "project"
    assert (kept / "models.py").read_text() == originals
    assert (kept / "train.py").is_file()
    cases, _ = load_cases(tmp_path / "ci" / "test_checks.py")
    assert {case["linen"].rpartition("::")[0] for case in cases} == {".nnx-migrate/originals/project/models.py"}
    assert {case["nnx"].rpartition("::")[0] for case in cases} == {"../project/models.py"}
    ran = cli("check", "--from", tmp_path / "ci" / "test_checks.py")
    assert ran.code == 0, ran.out + ran.err


@pytest.mark.parametrize("args", [["--emit-checks", "x.py"], ["--diff", "--emit-checks", "x.py"],
                                  ["--check", "--output-dir", "out", "--emit-checks", "x.py"],
                                  ["--write", "--examples", "e.toml"]])
def test_emit_checks_needs_written_conversions(tmp_path, args, cli, monkeypatch):
    shutil.copytree(PROJECT, tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    done = cli("rewrite", tmp_path / "project", *args)
    assert done.code == 4
    assert not (tmp_path / "x.py").exists()
    assert (tmp_path / "project" / "models.py").read_text() == (PROJECT / "models.py").read_text()
    assert not (tmp_path / "out").exists()


def test_check_needs_two_targets_or_from(cli):
    assert cli("check").code == 4
    assert cli("check", "a.py::A", "--from", "x.py").code == 4


def test_emitting_checks_imports_neither_jax_nor_flax(tmp_path):
    shutil.copytree(PROJECT, tmp_path / "project")
    probe = ("import sys; from nnx_migrate.cli import main; "
             f"code = main(['rewrite', {str(tmp_path / 'project')!r}, '--output-dir', {str(tmp_path / 'out')!r}, "
             f"'--emit-checks', {str(tmp_path / 'checks_test.py')!r}, '-q']); "
             "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert done.stdout.split(maxsplit=1) == ["8", "[]\n"], done.stdout + done.stderr
    assert (tmp_path / "checks_test.py").is_file()


def test_each_example_comes_from_where_the_docs_say(emitted):
    from nnx_migrate.checks.running import run_checks_file

    outcomes = {o.case_id: o for o in run_checks_file(emitted / "test_checks.py")}
    assert outcomes["models.py::CNN"].example == "project/train.py:15"
    assert outcomes["models.py::MLPHead"].example == "the inputs models.py::CNN passes it"
    assert outcomes["models.py::TokenClassifier"].example == "project/examples.toml"
    assert all(o.ok and o.max_abs_diff == 0.0 for o in outcomes.values()), [o.message for o in outcomes.values()]
