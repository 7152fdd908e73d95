"""The constructs of the class conversion: found by discovery, documented, catalogued."""

import ast
import pkgutil
import sys
from pathlib import Path

import libcst as cst
import pytest

from nnx_migrate.rewrite.classes import constructs as package
from nnx_migrate.rewrite.classes.constructs import constructs, transform_of
from nnx_migrate.rewrite.classes.constructs.catalogue import COMMAND, SECTIONS, render, sections
from nnx_migrate.rewrite.names import ImportMap

ROOT = Path(__file__).resolve().parents[2]
FOLDER = Path(package.__file__).parent
CONSTRUCTS = constructs()


def test_the_registry_finds_every_module_of_the_folder():
    modules = {info.name for info in pkgutil.iter_modules([str(FOLDER)])} - {"base", "catalogue"}
    assert modules == {type(c).__module__.rsplit(".", 1)[1] for c in CONSTRUCTS}
    assert {"child_module", "layer", "mode", "remat", "rng", "scan_layers", "scan_time", "sequential", "sow", "unknown_layer", "variables"} <= modules
    assert len(CONSTRUCTS) == len(modules)  # one construct per module


@pytest.mark.parametrize("construct", CONSTRUCTS, ids=lambda c: type(c).__name__)
def test_each_construct_documents_itself(construct):
    summary, parts = sections(sys.modules[type(construct).__module__].__doc__)
    assert summary and construct.title
    assert all(parts[key] for key in SECTIONS)
    for key in ("Before", "After"):
        ast.parse(parts[key])  # the examples are Python


@pytest.mark.parametrize("construct", CONSTRUCTS, ids=lambda c: type(c).__name__)
def test_nothing_outside_the_folder_names_a_construct(construct):
    # the generic conversion reaches each construct through the registry only
    names = {*getattr(construct, "linen", ()), type(construct).__module__}
    for path in (ROOT / "nnx_migrate" / "rewrite" / "classes").rglob("*.py"):
        if FOLDER in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        assert not [n for n in names if n in text], path


def test_a_transform_call_finds_its_construct():
    imports = ImportMap(cst.parse_module("import flax.linen as nn\n"))
    found = {
        src: type(transform_of(imports, cst.parse_expression(src))).__name__
        for src in ("nn.remat(Block)", "nn.checkpoint(Block)", "nn.scan(Block, variable_axes={'params': 0}, length=3)",
                    "nn.scan(Cell, variable_broadcast='params', split_rngs={'params': False})")
    }
    assert list(found.values()) == ["Remat", "Remat", "ScanLayers", "ScanTime"]
    assert transform_of(imports, cst.parse_expression("nn.vmap(Block)")) is None


def test_the_catalogue_is_current():
    assert (ROOT / "docs" / "constructs.md").read_text(encoding="utf-8") == render(), f"run: {COMMAND}"
