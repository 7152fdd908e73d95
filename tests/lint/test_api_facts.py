"""rules/nnx_api.toml against the installed flax: a renamed or removed API fails here."""

from __future__ import annotations

import inspect

import pytest
from flax import nnx

from nnx_migrate.lint.api_facts import nnx_api

API = nnx_api()


def _public_subclasses(base):
    return {
        name
        for name in dir(nnx)
        if not name.startswith("_") and isinstance(getattr(nnx, name), type) and issubclass(getattr(nnx, name), base)
    }


def test_optimizer_facts():
    optimizer = getattr(nnx, API.optimizer)
    wrt = inspect.signature(optimizer.__init__).parameters["wrt"]
    assert wrt.kind is inspect.Parameter.KEYWORD_ONLY and wrt.default is inspect.Parameter.empty
    assert list(inspect.signature(optimizer.update).parameters)[1:3] == ["model", "grads"]
    for name in API.deprecated_optimizers:
        assert issubclass(getattr(nnx, name), optimizer)
        assert "deprecated" in getattr(nnx, name).__doc__
    assert getattr(nnx, API.default_wrt) is nnx.Param


def test_variable_types_are_exactly_the_public_variable_classes():
    assert set(API.variable_types) == _public_subclasses(nnx.Variable)


def test_module_types_are_exactly_the_public_module_classes():
    assert set(API.module_types) == _public_subclasses(nnx.Module)


def test_containers_and_filters():
    assert issubclass(getattr(nnx, API.list_container), nnx.Module)
    assert issubclass(getattr(nnx, API.dict_container), nnx.Module)
    for name in API.positional_filter_functions:
        params = inspect.signature(getattr(nnx, name)).parameters
        assert "filters" in params and params["filters"].kind is inspect.Parameter.VAR_POSITIONAL
        assert "filter" not in params
    assert getattr(nnx, API.filter_negate)(nnx.Param) is not None
    with pytest.raises(TypeError):
        getattr(nnx, API.filter_everything) - nnx.Param  # noqa: B018


def test_grad_transforms_exist():
    for name in API.grad_transforms:
        assert callable(getattr(nnx, name))


def test_tree_mode_facts():
    import functools

    for name in API.prefix_filters:
        assert isinstance(getattr(nnx, name), type)
    for name in API.compat_transforms:
        twin = getattr(nnx.compat, name)
        assert isinstance(twin, functools.partial) and twin.func is getattr(nnx, name), name
        assert twin.keywords.get("graph") is True, name
        if "graph_updates" in inspect.signature(getattr(nnx, name)).parameters:
            assert twin.keywords.get("graph_updates") is True, name
    for name in API.rng_holding_modules:
        assert "rngs" in inspect.signature(getattr(nnx, name).__init__).parameters or name == "Rngs"


def test_drift_facts():
    import warnings

    import jax.numpy as jnp

    for keyword in API.sharding_keywords:
        with pytest.warns(DeprecationWarning, match=API.sharding_keyword):
            variable = nnx.Param(jnp.ones(2), **{keyword: None})
        assert API.sharding_keyword in variable.get_metadata()
    for name in API.metadata_functions:
        assert "metadata" in inspect.signature(getattr(nnx, name)).parameters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nnx.Param(jnp.ones(2), **{API.sharding_keyword: None})
