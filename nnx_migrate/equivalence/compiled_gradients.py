"""The inference pass with gradients, compiled with `jax.jit` and cached per model setup.

Run eagerly, a backward pass costs many times a forward pass in a fresh process: JAX
compiles every differentiated operation one by one. Compiled as one program per side it
costs about one compilation each, and a second `compare()` of the same configuration
(same Linen module fields, NNX graph, keywords, input shapes) reuses it. Both sides run
in the same mode (compiled), so a faithful port still agrees bit for bit.

Whatever cannot be a static argument (unhashable module fields or keywords, non-array
inputs) makes the caller fall back to the eager pass (`compiled_*` return None).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from flax import nnx

from nnx_migrate.equivalence.output_trees import flatten_outputs, projection_loss
from nnx_migrate.equivalence.recording import linen_call_records, record_nnx_calls

# Submodule paths recorded while tracing the NNX pass, by the setup that was traced: a
# cached call does not trace again, and its recorded outputs come back in this order.
_TRACED_RECORD_PATHS: dict[Any, list] = {}


def split_intermediates(updated):
    """(updated state collections, {Linen scope path: [flattened output of each call]})."""
    state = {c: v for c, v in updated.items() if c != "intermediates"}
    calls = linen_call_records(updated.get("intermediates", {}))
    return state, {path: [flatten_outputs(output) for output in outputs] for path, outputs in calls.items()}


def _static(kwargs: dict[str, Any]) -> tuple | None:
    frozen = tuple(sorted(kwargs.items()))
    try:
        hash(frozen)
    except TypeError:
        return None
    return frozen


def _all_arrays(tree: Any) -> bool:
    return all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(tree))


@functools.partial(jax.jit, static_argnames=("module", "method", "kwargs", "mutable", "seed"))
def _linen_pass(params, others, inputs, dropout_key, *, module, method, kwargs, mutable, seed):
    def loss(p):
        output, updated = module.apply(
            {**others, "params": p}, *inputs, method=method, capture_intermediates=True,
            mutable=list(mutable), rngs={"dropout": dropout_key}, **dict(kwargs))
        flat = flatten_outputs(output)
        return projection_loss(flat, seed), (flat, split_intermediates(updated))

    return jax.value_and_grad(loss, has_aux=True)(params)


def compiled_linen_pass(module, variables, inputs, method, kwargs, mutable, seed):
    """((loss, (flat outputs, (state, records))), grads), or None when it cannot be compiled."""
    static_kwargs = _static(kwargs)
    if static_kwargs is None or not _all_arrays((variables, inputs)):
        return None
    try:
        hash(module)
    except TypeError:
        return None
    others = {c: v for c, v in variables.items() if c != "params"}
    return _linen_pass(variables["params"], others, tuple(inputs), jax.random.key(seed + 1), module=module,
                       method=method, kwargs=static_kwargs, mutable=tuple(mutable), seed=seed)


@functools.partial(jax.jit, static_argnames=("graphdef", "method", "kwargs", "seed", "record_key"))
def _nnx_pass(params, rest, inputs, *, graphdef, method, kwargs, seed, record_key):
    model = nnx.merge(graphdef, params, rest)

    def loss(m):
        with record_nnx_calls(m) as records:
            output = getattr(m, method)(*inputs, **dict(kwargs))
        _TRACED_RECORD_PATHS[record_key] = [path for path, _ in records]
        flat = flatten_outputs(output)
        return projection_loss(flat, seed), (flat, [flatten_outputs(value) for _, value in records])

    # nnx.value_and_grad writes state changes (BatchNorm statistics, counters) back to
    # `model`, which returns them to the caller as the non-Param state.
    result = nnx.value_and_grad(loss, has_aux=True)(model)
    return result, nnx.state(model, nnx.Not(nnx.Param))


def compiled_nnx_pass(model, inputs, method, kwargs, seed):
    """((loss, (flat outputs, [(path, flat outputs)])), grads) with the model's non-Param
    state updated in place, or None when it cannot be compiled."""
    static_kwargs = _static(kwargs)
    if static_kwargs is None or not _all_arrays(inputs):
        return None
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    try:
        hash(graphdef)
    except TypeError:
        return None
    shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), (params, rest, tuple(inputs)))
    record_key = (graphdef, method, static_kwargs, seed, str(shapes))
    ((loss, (flat, values)), grads), new_rest = _nnx_pass(
        params, rest, tuple(inputs), graphdef=graphdef, method=method, kwargs=static_kwargs, seed=seed,
        record_key=record_key)
    nnx.update(model, new_rest)
    records = list(zip(_TRACED_RECORD_PATHS[record_key], values))
    return (loss, (flat, records)), grads
