"""The wheel must carry every subpackage and the rules/ data."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "nnx_migrate").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert config["package-dir"]["nnx_migrate._rules"] == "rules"


def test_rules_data_is_importable_as_package_resources():
    from importlib.resources import files

    names = {p.name for p in files("nnx_migrate._rules").iterdir()}
    assert any(name.endswith(".toml") for name in names)


def test_built_wheel_holds_every_subpackage_and_the_rules(tmp_path):
    """Builds the wheel for real (from a copy of the sources, so the checkout gets no
    build/ folder) and looks inside it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "nnx_migrate", src / "nnx_migrate", ignore=ignore)
    shutil.copytree(ROOT / "rules", src / "rules", ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("nnx_migrate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = sorted(p.name for p in (ROOT / "rules").glob("*.toml"))
    assert rules, "rules/ holds the rewrite's layer tables"
    assert {f"nnx_migrate/_rules/{name}" for name in rules} <= names
    for init in (ROOT / "nnx_migrate").rglob("__init__.py"):
        assert str(init.relative_to(ROOT)) in names
    assert "nnx_migrate/run_files/lock.py" in names
