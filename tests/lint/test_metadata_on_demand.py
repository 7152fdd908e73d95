"""Lint resolves LibCST metadata (scopes, parents) only for sites whose names can come from
a flax import: NNX code that never touches such a site costs a parse, not a scope analysis
(the tree-mode rules made lint 3x its floor on flax's own sources before this)."""

from __future__ import annotations

import pytest
from libcst.metadata import MetadataWrapper

from nnx_migrate.lint import engine
from nnx_migrate.lint.rules import all_rules

# The tree-mode rules' trigger texts are here (nnx, grad, jit, +=, StateAxes), but no
# site's names come from flax.nnx: `jax.jit`/`jax.grad` are JAX's, `x` and `count` plain values.
NO_NNX_SITE = """\
import jax
from flax import nnx  # nnx.StateAxes is not used here

count = 0
grad_fn = jax.grad(lambda x: x)
step = jax.jit(grad_fn)


def loop(x):
    global count
    for _ in range(3):
        x += step(x)
        count += 1
    return x
"""

NNX_SITE = """\
import jax.numpy as jnp
from flax import nnx

w = nnx.Param(jnp.ones((2,)))
w += 1
"""


def test_no_metadata_for_a_file_without_nnx_sites(monkeypatch):
    def refuse(self, provider):
        raise AssertionError(f"resolved {provider.__name__} for a file without NNX sites")

    monkeypatch.setattr(MetadataWrapper, "resolve", refuse)
    assert engine.lint_source(NO_NNX_SITE, all_rules()).findings == []


def test_a_real_site_still_gets_its_metadata_and_its_finding(monkeypatch):
    resolved = []
    original = MetadataWrapper.resolve

    def record(self, provider):
        resolved.append(provider.__name__)
        return original(self, provider)

    monkeypatch.setattr(MetadataWrapper, "resolve", record)
    findings = engine.lint_source(NNX_SITE, all_rules()).findings
    assert [f.code for f in findings] == ["NNX012"], findings  # in-place operator on a Variable
    assert "ScopeProvider" in resolved


@pytest.mark.parametrize("alias", ["import flax.nnx as fx\n", "from flax import nnx as fx\n"])
def test_aliases_of_flax_nnx_are_followed(alias):
    source = "import jax.numpy as jnp\n" + alias + "w = fx.Param(jnp.ones((2,)))\nw += 1\n"
    assert [f.code for f in engine.lint_source(source, all_rules()).findings] == ["NNX012"]
