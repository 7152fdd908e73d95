"""Shared test models (loaded by file path, as the `check` command loads them)."""

from pathlib import Path

import pytest

MODELS = Path(__file__).parent / "models"
LINEN_FILE = MODELS / "linen_models.py"
NNX_FILE = MODELS / "nnx_ports.py"


class _ModelFile:
    def __init__(self, path: Path):
        self.path = path

    def __getattr__(self, name):
        from nnx_migrate.equivalence.loading import load_target

        return load_target(f"{self.path}::{name}")


@pytest.fixture(scope="session")
def linen():
    """The Linen originals: `linen.MLP`, `linen.CNN`, ..."""
    return _ModelFile(LINEN_FILE)


@pytest.fixture(scope="session")
def ports():
    """The NNX ports, right and wrong: `ports.MLPRewrite`, `ports.HandCNN`, ..."""
    return _ModelFile(NNX_FILE)
