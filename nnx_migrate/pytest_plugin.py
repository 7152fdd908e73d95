"""pytest plugin: the `nnx_equivalence` fixture, so a port's CI test is a few lines.

    def test_port_matches_linen(nnx_equivalence):
        nnx_equivalence(LinenMLP(features=32), NNXMLP, jnp.ones((4, 10)))

The fixture calls `nnx_migrate.equivalence.compare` with the same arguments and fails
the test with the full report when the two models differ; it returns the result.
Registered through the `pytest11` entry point; jax and flax are imported only when the
fixture is used, so installing nnx-migrate costs other test suites nothing.

Options: `--nnx-rtol` / `--nnx-atol` change the default tolerances for the whole run
(a test's own `rtol=`/`atol=` still wins).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnx-migrate", "Linen/NNX numerical equivalence")
    group.addoption("--nnx-rtol", type=float, default=None,
                    help="default relative tolerance of the nnx_equivalence fixture (1e-6)")
    group.addoption("--nnx-atol", type=float, default=None,
                    help="default absolute tolerance of the nnx_equivalence fixture (1e-6)")


@pytest.fixture
def nnx_equivalence(request: pytest.FixtureRequest):
    """`nnx_equivalence(linen_module, nnx_class_or_instance, *inputs, **compare_kwargs)`:
    fails the test with the report unless the NNX port computes what Linen computes."""
    rtol = request.config.getoption("nnx_rtol")
    atol = request.config.getoption("nnx_atol")

    def check(linen_module, nnx_target, *inputs, **kwargs):
        from nnx_migrate.equivalence import compare

        if rtol is not None:
            kwargs.setdefault("rtol", rtol)
        if atol is not None:
            kwargs.setdefault("atol", atol)
        result = compare(linen_module, nnx_target, *inputs, **kwargs)
        if not result.ok:
            pytest.fail(str(result), pytrace=False)
        return result

    return check
