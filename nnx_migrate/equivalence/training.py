"""N optimizer steps on both sides with the same optax transformation.

Each side starts from the mapped weights, minimises the same scalar function of its
outputs (the fixed random projection of `output_trees.projection_loss`) in train mode
when the model has one, with identical Dropout masks, and updates its state as it goes
(Linen through `mutable=`, NNX in place). Compared: the loss at every step, then every
parameter and state variable after the last step. The NNX steps run on a clone, so
`result.nnx_module` keeps the starting weights.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import optax
from flax import nnx

from nnx_migrate.equivalence.identical_dropout import identical_dropout
from nnx_migrate.equivalence.leaf_comparison import compare_leaf
from nnx_migrate.equivalence.mode_flags import flag_in_field, linen_in_mode, nnx_mode
from nnx_migrate.equivalence.output_trees import flatten_outputs, projection_loss
from nnx_migrate.equivalence.result import Check, ComparisonResult
from nnx_migrate.equivalence.running import param_value_and_grad

DEFAULT_LEARNING_RATE = 1e-3


def compare_training(passes, result: ComparisonResult, kwargs: dict[str, Any], steps: int, optimizer=None) -> None:
    tx = optimizer if optimizer is not None else optax.adam(DEFAULT_LEARNING_RATE)
    linen_losses, linen_params, linen_state = _linen_steps(passes, kwargs, steps, tx)
    nnx_losses, model = _nnx_steps(passes, kwargs, steps, tx)

    result.checks.append(Check(
        f"loss at each of {steps} optimizer steps",
        [compare_leaf(f"step {i + 1}", f"step {i + 1}", a, b, passes.rtol, passes.atol)
         for i, (a, b) in enumerate(zip(linen_losses, nnx_losses, strict=True))],
    ))
    final = {"params": linen_params, **linen_state}
    result.checks.append(Check(
        f"parameters and state after {steps} optimizer steps",
        [compare_leaf(pair.linen_name, pair.nnx_name, pair.linen_value(final),
                      _value_at(model, pair.nnx_path), passes.rtol, passes.atol)
         for pair in passes.weight_map.pairs],
    ))


def _linen_steps(passes, kwargs, steps, tx):
    params = passes.variables["params"]
    state = {c: passes.variables[c] for c in passes.state_collections}
    opt_state = tx.init(params)
    losses = []
    module, kwargs = linen_in_mode(passes.linen_module, passes.flag_field, kwargs)

    def loss_fn(p, state):
        output, updated = module.apply(
            {**passes.variables, **state, "params": p}, *passes.inputs, method=passes.method_name,
            mutable=list(passes.state_collections), rngs={"dropout": jax.random.key(passes.seed + 1)}, **kwargs)
        return projection_loss(flatten_outputs(output), passes.seed), updated

    with identical_dropout("linen"):
        for _ in range(steps):
            (loss, updated), grads = passes.guarded(
                "Linen", "optimizer step",
                functools.partial(jax.value_and_grad(loss_fn, has_aux=True), params, state))
            state = {**state, **updated}
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            losses.append(loss)
    return losses, params, state


def _nnx_steps(passes, kwargs, steps, tx):
    model = nnx.clone(passes.nnx_module)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    losses = []

    with identical_dropout("nnx"), flag_in_field(passes.linen_module, model, passes.flag_field, kwargs) as (_, _, flagged), \
            nnx_mode(model, passes.method_name, flagged) as nnx_kwargs:

        def loss_fn(m):
            return projection_loss(flatten_outputs(passes.nnx_call(m, nnx_kwargs)), passes.seed), None

        for _ in range(steps):
            # over the Params only, in graph and tree mode alike
            (loss, _), grads = passes.guarded("NNX", "optimizer step", lambda: param_value_and_grad(loss_fn, model))
            optimizer.update(model, grads)
            losses.append(loss)
    return losses, model


def _value_at(model, path):
    node: Any = model
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node.get_value()
