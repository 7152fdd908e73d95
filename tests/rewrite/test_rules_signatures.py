"""Every entry of rules/*.toml checked against the installed flax.linen and flax.nnx, so a
Flax release that renames or re-defaults something fails here, not in users' numbers."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
from flax import linen as nn
from flax import nnx

from nnx_migrate.rewrite.rules import load_rules

RULES = load_rules()
LAYERS = sorted(RULES.layers.values(), key=lambda r: r.linen)


def resolve(qualified: str):
    module_name, _, attr = qualified.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError:
        return getattr(resolve(module_name), attr)


def linen_params(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]


def params_of(func) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(func).parameters)


@pytest.mark.parametrize("rule", LAYERS, ids=[r.linen for r in LAYERS])
def test_layer_rule_matches_installed_signatures(rule):
    linen_cls = getattr(nn, rule.linen)
    nnx_cls = resolve(rule.nnx)
    assert issubclass(nnx_cls, nnx.Module)
    # Positional order must be Linen's, or positional arguments would be misnamed.
    assert list(rule.linen_args) == linen_params(linen_cls)
    nnx_init = params_of(nnx_cls.__init__)
    for arg in rule.linen_args:
        if arg in rule.checked:
            assert arg not in nnx_init, f"{arg} is checked and dropped but NNX takes it"
            continue
        if arg in rule.unsupported:
            # `axis` exists in NNX but then needs one input size per axis, which the rewrite
            # does not compute: passing it stays a TODO.
            assert rule.rename.get(arg, arg) not in nnx_init or arg == "axis", f"{arg} is listed unsupported but NNX takes it"
            continue
        assert rule.rename.get(arg, arg) in nnx_init, f"{rule.linen}.{arg} -> {rule.nnx} has no {rule.rename.get(arg, arg)}"
    if rule.cell_arg:
        assert rule.cell_arg in rule.linen_args and rule.cell_arg in nnx_init
    if rule.in_size:
        assert rule.in_size in nnx_init
        assert nnx_init[rule.in_size].default is inspect.Parameter.empty
    assert "rngs" in nnx_init
    assert rule.out_size in ("", "input") or rule.out_size in rule.linen_args
    nnx_call = params_of(nnx_cls.__call__)
    for old, new in rule.call_rename.items():
        assert old in params_of(linen_cls.__call__)
        assert new in nnx_call
    linen_call = list(params_of(linen_cls.__call__))[2:]  # after self and the input
    assert list(rule.call_keywords) == linen_call[: len(rule.call_keywords)]
    for key in rule.call_keywords:
        if key in rule.call_unsupported:  # named so that it is reported, not passed on
            assert key not in nnx_call
            continue
        assert nnx_call[rule.call_rename.get(key, key)].kind is inspect.Parameter.KEYWORD_ONLY
    for key in rule.call_time:
        assert key in nnx_init and key in nnx_call and key in params_of(linen_cls.__call__)


@pytest.mark.parametrize("rule", [r for r in LAYERS if r.defaults], ids=[r.linen for r in LAYERS if r.defaults])
def test_explicit_defaults_restore_linen_behaviour(rule):
    """Each explicit default is needed (the libraries differ) and equals Linen's."""
    linen_defaults = {f.name: f.default for f in dataclasses.fields(getattr(nn, rule.linen))}
    nnx_init = params_of(resolve(rule.nnx).__init__)
    for key, source in rule.defaults.items():
        value = eval(source, {"nnx": nnx})  # noqa: S307 - our own data file
        linen_default = linen_defaults[key]
        nnx_default = nnx_init[key].default
        if callable(linen_default):
            assert value.__qualname__ == linen_default.__qualname__
            assert getattr(nnx_default, "__qualname__", None) != linen_default.__qualname__
        else:
            assert value == linen_default
            assert nnx_default != linen_default


def test_function_renames_are_the_same_function_or_signature():
    for old, new in RULES.renames.items():
        a, b = resolve(old), resolve(new)
        if inspect.ismodule(a):
            exported = [n for n in dir(a) if not n.startswith("_") and n not in ("zeros_init", "ones_init")]
            missing = [n for n in exported if not hasattr(b, n)]
            assert not missing, f"{new} lacks {missing}"
            continue
        assert a is b or inspect.signature(a) == inspect.signature(b), old


def test_collections_map_to_variable_types():
    for collection, qualified in RULES.collections.items():
        assert issubclass(resolve(qualified), nnx.Variable), collection


def test_shape_preserving_functions_exist():
    for qualified in RULES.keep_last_dim:
        assert callable(resolve(qualified)), qualified


CELLS = [r for r in LAYERS if r.initialize_carry]


@pytest.mark.parametrize("rule", CELLS, ids=[r.linen for r in CELLS])
def test_initialize_carry_rules_swap_key_and_shape(rule):
    """Linen's `initialize_carry(rng, input_shape)` is NNX's `initialize_carry(input_shape, rngs)`."""
    linen = list(params_of(getattr(nn, rule.linen).initialize_carry))
    ours = list(params_of(resolve(rule.nnx).initialize_carry))
    assert linen[1:3] == ["rng", "input_shape"]
    assert ours[1:3] == ["input_shape", "rngs"]


def test_names_left_for_a_person_exist_in_linen_and_have_no_rename():
    for qualified, why in RULES.unconverted.items():
        assert callable(resolve(qualified)), qualified
        assert qualified not in RULES.renames and qualified not in RULES.helpers and why


def test_gru_cell_is_left_because_nnx_lacks_the_recurrent_candidate_bias():
    """rules/linen_functions.toml [unconverted] GRUCell: when NNX gains Linen's `hn` bias,
    this fails and the cell can get a rule."""
    import jax
    import jax.numpy as jnp

    assert "flax.linen.GRUCell" in RULES.unconverted and "flax.linen.GRUCell" not in RULES.layers
    x, h = jnp.ones((1, 3)), jnp.ones((1, 4))
    linen = nn.GRUCell(4).init(jax.random.key(0), h, x)["params"]
    assert "bias" in linen["hn"]
    cell = nnx.GRUCell(3, 4, rngs=nnx.Rngs(0))
    assert cell.dense_h.bias is None
