"""`nnx-migrate lint` as a user and a CI job use it: exit codes, formats, files."""

from __future__ import annotations

import json
import os

import pytest

BROKEN = "from flax import nnx\nopt = nnx.Optimizer(model, tx)\n"
FIXED = "from flax import nnx\nopt = nnx.Optimizer(model, tx, wrt=nnx.Param)\n"
UNFIXABLE = "from flax import nnx\ndef step(optimizer: nnx.Optimizer, grads):\n    optimizer.update(grads)\n"


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "broken.py").write_text(BROKEN)
    (tmp_path / "pkg" / "clean.py").write_text(FIXED)
    (tmp_path / "pkg" / "notes.txt").write_text(BROKEN)  # not a .py file
    for skipped in (".git", ".venv", "build", "node_modules", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text(BROKEN)
    (tmp_path / "myenv").mkdir()
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "myenv" / "y.py").write_text(BROKEN)
    return tmp_path


def test_clean_tree_exits_0(cli, tmp_path):
    (tmp_path / "a.py").write_text(FIXED)
    result = cli("lint", tmp_path)
    assert result.code == 0
    assert result.out == ""
    assert "1 file checked, 0 findings" in result.err


def test_findings_exit_1_and_skip_vcs_venv_and_build_folders(cli, tree):
    result = cli("lint", tree)
    assert result.code == 1
    assert result.out == f"{tree / 'pkg' / 'broken.py'}:2:7: NNX001 " + result.out.split(" NNX001 ")[1]
    assert result.out.count("\n") == 1
    assert "2 files checked" in result.err and "1 fixable with --fix" in result.err


def test_fix_rewrites_in_place_and_exits_0(cli, tree):
    result = cli("lint", "--fix", tree)
    assert result.code == 0
    assert (tree / "pkg" / "broken.py").read_text() == FIXED
    assert (tree / ".venv" / "x.py").read_text() == BROKEN  # skipped folders untouched
    leftovers = [n for n in os.listdir(tree / "pkg") if n.endswith(".tmp")]
    assert leftovers == []
    assert cli("lint", tree / "pkg").code == 0  # a second run finds nothing


def test_fix_leaves_unfixable_findings_and_exits_1(cli, tmp_path):
    path = tmp_path / "step.py"
    path.write_text(UNFIXABLE)
    result = cli("lint", "--fix", path)
    assert result.code == 1
    assert "NNX002" in result.out
    assert path.read_text() == UNFIXABLE


def test_diff_shows_fix_and_writes_nothing(cli, tree):
    result = cli("lint", "--diff", tree / "pkg")
    assert result.code == 1
    assert "-opt = nnx.Optimizer(model, tx)\n+opt = nnx.Optimizer(model, tx, wrt=nnx.Param)\n" in result.out
    assert (tree / "pkg" / "broken.py").read_text() == BROKEN


def test_unparsable_and_non_utf8_files_are_reported_and_the_run_goes_on(cli, tmp_path):
    (tmp_path / "a_bad.py").write_text("from flax import nnx\nopt = nnx.Optimizer(:\n")
    (tmp_path / "b_latin1.py").write_bytes(b"# caf\xe9\nimport nnx\n")
    (tmp_path / "c_broken.py").write_text(BROKEN)
    result = cli("lint", tmp_path)
    assert result.code == 1 | 2
    assert f"{tmp_path / 'a_bad.py'}:1:1: E902 cannot parse (line 2" in result.out
    assert f"{tmp_path / 'b_latin1.py'}:1:1: E902 not valid utf-8" in result.out
    assert "c_broken.py:2:7: NNX001" in result.out


def test_coding_cookie_and_crlf_are_kept_by_fixes(cli, tmp_path):
    path = tmp_path / "legacy.py"
    source = "# -*- coding: latin-1 -*-\r\n# caf\xe9\r\nfrom flax import nnx\r\nopt = nnx.Optimizer(m, tx)\r\n"
    path.write_bytes(source.encode("latin-1"))
    assert cli("lint", "--fix", path).code == 0
    assert path.read_bytes() == source.replace("tx)", "tx, wrt=nnx.Param)").encode("latin-1")


@pytest.mark.parametrize(
    "args",
    [
        ["lint"],  # no path
        ["lint", "--bogus", "."],
        ["lint", "--format", "xml", "."],
        ["lint", "--jobs", "-1", "."],
        ["lint", "/no/such/path"],
        ["lint", "--select", "XYZ", "."],
    ],
)
def test_usage_errors_exit_4(cli, args):
    assert cli(*args).code == 4


def test_bad_config_exits_4(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.nnx-migrate]\nselcet = ["NNX001"]\n')
    (tmp_path / "a.py").write_text(BROKEN)
    result = cli("lint", tmp_path / "a.py")
    assert result.code == 4
    assert "unknown [tool.nnx-migrate] keys: selcet" in result.err


def test_select_and_ignore_by_prefix(cli, tmp_path):
    (tmp_path / "a.py").write_text(BROKEN + "s = nnx.state(model, filter=nnx.Param)\n")
    both = cli("lint", tmp_path).out
    assert "NNX001" in both and "NNX006" in both
    only = cli("lint", "--select", "NNX00", "--ignore", "NNX006", tmp_path).out
    assert "NNX001" in only and "NNX006" not in only
    assert "NNX001" not in cli("lint", "--select", "nnx006", tmp_path).out


def test_pyproject_config_is_discovered(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.nnx-migrate]\nignore = ["NNX001"]\nexclude = ["generated"]\n'
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text(BROKEN + "s = nnx.state(model, filter=nnx.Param)\n")
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "b.py").write_text(BROKEN + "s = nnx.state(model, filter=nnx.Param)\n")
    result = cli("lint", tmp_path / "src", tmp_path / "generated")
    assert "NNX006" in result.out and "NNX001" not in result.out
    assert "b.py" not in result.out


def test_unsafe_fixes_need_the_flag(cli, tmp_path):
    source = (
        "from flax import nnx\n"
        "opt = nnx.ModelAndOptimizer(model, tx)\n"
        "grads = nnx.grad(loss)(model)\n"
        "opt.update(grads)\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    assert cli("lint", "--fix", path).code == 1
    assert path.read_text() == source
    assert cli("lint", "--fix", "--unsafe-fixes", path).code == 0
    assert path.read_text() == source.replace(
        "nnx.ModelAndOptimizer(model, tx)", "nnx.Optimizer(model, tx, wrt=nnx.Param)"
    ).replace("opt.update(grads)", "opt.update(model, grads)")


def test_json_format(cli, tree):
    result = cli("lint", "--format", "json", tree)
    document = json.loads(result.out)
    (finding,) = document["findings"]
    assert finding["code"] == "NNX001" and finding["line"] == 2 and finding["column"] == 7
    assert finding["fix"] == "safe" and finding["path"].endswith("broken.py")
    assert document["errors"] == []


def test_github_format(cli, tree):
    result = cli("lint", "--format", "github", tree)
    assert result.out.startswith("::warning file=")
    assert ",line=2,col=7," in result.out and "title=NNX001::NNX001 " in result.out


def test_sarif_format(cli, tree):
    document = json.loads(cli("lint", "--format", "sarif", tree).out)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} >= {"NNX001", "NNX006"}
    (result,) = run["results"]
    assert result["ruleId"] == "NNX001"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 2


def test_jobs_give_the_same_results(cli, tmp_path):
    for i in range(12):
        (tmp_path / f"m{i:02}.py").write_text(BROKEN if i % 3 else FIXED)
    one = cli("lint", "--jobs", "1", tmp_path)
    two = cli("lint", "--jobs", "2", tmp_path)
    assert one.code == two.code == 1
    assert one.out == two.out and one.out.count("NNX001") == 8


def test_explain(cli):
    result = cli("explain", "NNX001")
    assert result.code == 0
    assert "## Why" in result.out and "## Fix safety" in result.out and "## Before" in result.out
    assert cli("explain", "optimizer-without-wrt").out == result.out
    listing = cli("explain")
    assert all(code in listing.out for code in ("NNX001", "NNX006"))
    assert cli("explain", "NNX999").code == 4


def test_python_dash_m_and_help(run_python):
    result = run_python("-m", "nnx_migrate", "lint", "--help")
    assert result.returncode == 0
    assert "exit status" in result.stdout and "--unsafe-fixes" in result.stdout


def test_lint_never_imports_jax_or_flax(run_python, tmp_path):
    (tmp_path / "a.py").write_text(BROKEN)
    script = (
        "import sys\n"
        "from nnx_migrate.cli import main\n"
        f"code = main(['lint', '--fix', {str(tmp_path)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax'))\n"
        "print(code, heavy)\n"
    )
    result = run_python("-c", script)
    assert result.stdout.strip() == "0 []", result.stderr
