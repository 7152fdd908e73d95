"""The wheel must carry every subpackage and the rules/ data."""

import tomllib
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
