"""One call of each side, as `compare()` needs it: outputs, submodule records, state
changes and (optionally) gradients, compiled with `jax.jit` when possible.

Why compiled: run eagerly, JAX compiles every operation of a model one by one the first
time it meets it, and a backward pass has many more of them than the forward pass; a
check in a fresh process paid about three times what running both models costs. Each
call below is one program per side instead, cached by the model's setup (Linen module
fields / NNX graph, keywords, input shapes), so a second `compare()` of the same setup
compiles nothing. Both sides always run in the same mode, so a faithful port still
agrees bit for bit (NNX-FACTS: eager and jit of one model differ by ~1e-7).

Whatever cannot be a static argument of `jax.jit` (unhashable module fields or
keywords, non-array inputs) runs eagerly instead, with the same results.

Outputs leave the traced functions flattened ({leaf name: array}): `jit` and
`value_and_grad` hand back only pytrees, and a model may return a plain dataclass.
Dropout draws identical masks on both sides in every call (`identical_dropout`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
from flax import nnx

from nnx_migrate.equivalence.identical_dropout import identical_dropout
from nnx_migrate.equivalence.output_trees import FlatTree, flatten_outputs, projection_loss
from nnx_migrate.equivalence.recording import linen_call_records, record_nnx_calls

# XLA's backend optimisation level 0 compiles these programs about twice as fast, and a
# check runs each of them once or twice: compiling dominates. Both sides get the same
# options, so they still run the same arithmetic.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}

# Submodule paths recorded while tracing an NNX call, by the setup that was traced: a
# cached call does not trace again, and its recorded outputs come back in this order.
_TRACED_RECORD_PATHS: dict[Any, list] = {}


@dataclass
class LinenRun:
    outputs: FlatTree
    state: dict[str, Any]  # the non-param collections after the call
    records: dict[tuple[str, ...], list[FlatTree]]  # scope path -> outputs of each call
    grads: Any = None  # gradients of the params, when asked for


@dataclass
class NNXRun:
    outputs: FlatTree
    records: list[tuple[tuple, FlatTree]]  # (submodule path, outputs), in finishing order
    grads: Any = None  # an nnx.State of Param gradients, when asked for


def _static(kwargs: dict[str, Any]) -> tuple | None:
    """`kwargs` as a hashable tuple, or None when a value cannot be hashed."""
    frozen = tuple(sorted(kwargs.items()))
    try:
        hash(frozen)
    except TypeError:
        return None
    return frozen


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _all_arrays(tree: Any) -> bool:
    return all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(tree))


def _linen_rngs(seed: int) -> dict[str, jax.Array]:
    return {"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}


# -- Linen -------------------------------------------------------------------------------
def init_linen(module: nn.Module, inputs, method, kwargs, seed: int) -> dict[str, Any]:
    """`module.init(...)` on the example inputs.

    Eager on purpose: initializers compiled op by op are shared with the NNX module's own
    construction (the same random operations), which a compiled `init` would not share;
    in a fresh process that is the cheaper way, as it is for a user running both models.
    """
    return module.init(_linen_rngs(seed), *inputs, method=method, **kwargs)


def _linen_call(module, variables, params, inputs, method, kwargs, mutable, seed):
    with identical_dropout("linen"):
        output, updated = module.apply(
            {**variables, "params": params}, *inputs, method=method, capture_intermediates=True,
            mutable=list(mutable) + ["intermediates"], rngs=_linen_rngs(seed), **kwargs)
    flat = flatten_outputs(output)
    state = {c: v for c, v in updated.items() if c != "intermediates"}
    calls = linen_call_records(updated.get("intermediates", {}))
    records = {path: [flatten_outputs(output) for output in outputs] for path, outputs in calls.items()}
    return projection_loss(flat, seed), (flat, state, records)


def _linen_run(variables, inputs, *, module, method, kwargs, seed, with_grads):
    others = {c: v for c, v in variables.items() if c != "params"}
    mutable = [c for c in others]

    def loss(params):
        return _linen_call(module, others, params, inputs, method, dict(kwargs), mutable, seed)

    params = variables.get("params", {})
    if with_grads:
        (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params)
    else:
        (_, aux), grads = loss(params), None
    return aux, grads


_linen_run_compiled = jax.jit(_linen_run, static_argnames=("module", "method", "kwargs", "seed", "with_grads"),
                              compiler_options=COMPILER_OPTIONS)


def run_linen(module: nn.Module, variables, inputs, method, kwargs, *, with_grads: bool, seed: int) -> LinenRun:
    """One Linen call with every non-param collection mutable and every submodule output
    captured; with the gradients of the projection loss when `with_grads`."""
    static_kwargs = _static(kwargs)
    compiled = static_kwargs is not None and _hashable(module) and _all_arrays((variables, tuple(inputs)))
    run = _linen_run_compiled if compiled else _linen_run
    (flat, state, records), grads = run(
        variables, tuple(inputs), module=module, method=method,
        kwargs=static_kwargs if compiled else tuple(kwargs.items()), seed=seed, with_grads=with_grads)
    return LinenRun(flat, state, records, grads)


# -- NNX ---------------------------------------------------------------------------------
def _nnx_loss(model, inputs, method, kwargs, seed, record_paths: list):
    with identical_dropout("nnx"), record_nnx_calls(model) as records:
        output = getattr(model, method)(*inputs, **kwargs)
    record_paths[:] = [path for path, _ in records]
    flat = flatten_outputs(output)
    return projection_loss(flat, seed), (flat, [flatten_outputs(value) for _, value in records])


def param_value_and_grad(loss, model):
    """`loss(model)` (which returns `(value, aux)`) and its gradients over the model's
    `nnx.Param` only, as an `nnx.State`, in graph and tree mode alike.

    `nnx.value_and_grad(loss)(model)` differentiates only the Params in graph mode but
    every Variable in tree mode (`NNX_GRAPH_MODE=false`), where a Dropout's uint32 RNG
    count makes it raise; `nnx.DiffState` raises there too. Splitting the Params off and
    merging the model inside keeps the same Variable objects (`recreate_variables=False`),
    so the call's state changes (BatchNorm statistics, RNG counts) reach `model`.
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def of_params(params, rest):
        return loss(nnx.merge(graphdef, params, rest, recreate_variables=False))

    return nnx.value_and_grad(of_params, has_aux=True)(params, rest)


@functools.partial(jax.jit, static_argnames=("graphdef", "method", "kwargs", "seed", "with_grads", "record_key"),
                   compiler_options=COMPILER_OPTIONS)
def _nnx_run_compiled(params, rest, inputs, *, graphdef, method, kwargs, seed, with_grads, record_key):
    model = nnx.merge(graphdef, params, rest)
    paths: list = []
    loss = functools.partial(_nnx_loss, inputs=inputs, method=method, kwargs=dict(kwargs), seed=seed,
                             record_paths=paths)
    if with_grads:
        # the state changes (BatchNorm statistics, counters) land in `model`, which hands
        # them to the caller as its non-Param state
        (_, aux), grads = param_value_and_grad(loss, model)
    else:
        (_, aux), grads = loss(model), None
    _TRACED_RECORD_PATHS[record_key] = paths
    return aux, grads, nnx.state(model, nnx.Not(nnx.Param))


def run_nnx(model: nnx.Module, inputs, method, kwargs, *, with_grads: bool, seed: int) -> NNXRun:
    """One NNX call recording every submodule's outputs; the module's state is updated in
    place as a plain call would; with the Param gradients when `with_grads`."""
    static_kwargs = _static(kwargs)
    if static_kwargs is not None and _all_arrays(tuple(inputs)):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        if _hashable(graphdef):
            shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), (params, rest, tuple(inputs)))
            record_key = (graphdef, method, static_kwargs, seed, with_grads, str(shapes))
            (flat, values), grads, new_state = _nnx_run_compiled(
                params, rest, tuple(inputs), graphdef=graphdef, method=method, kwargs=static_kwargs,
                seed=seed, with_grads=with_grads, record_key=record_key)
            nnx.update(model, new_state)
            return NNXRun(flat, list(zip(_TRACED_RECORD_PATHS[record_key], values, strict=True)), grads)
    paths: list = []
    loss = functools.partial(_nnx_loss, inputs=tuple(inputs), method=method, kwargs=kwargs, seed=seed,
                             record_paths=paths)
    if with_grads:
        (_, (flat, values)), grads = param_value_and_grad(loss, model)
    else:
        (_, (flat, values)), grads = loss(model), None
    return NNXRun(flat, list(zip(paths, values, strict=True)), grads)
