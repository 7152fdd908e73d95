"""`compare()`: run a Linen module and its NNX port on the same weights and inputs.

The passes, each compared leaf by leaf:
1. inference call: every output leaf, and the gradients of a fixed scalar function of the
   outputs with respect to every parameter (one compiled `value_and_grad` per side, see
   `running`), and the state after it;
2. train-mode call (when the method takes `train`/`deterministic`/...; an NNX port
   without the flag is switched with `.train()`/`.eval()`): outputs, and the collections
   Linen returns with `mutable=` against the NNX variables updated in place (BatchNorm
   statistics); Dropout draws identical masks on both sides;
3. optionally N optimizer steps with the same optax transformation: the loss at each step
   and the parameters and state at the end.
Each pass records every submodule's output on both sides, so a difference is reported
with the first submodule where it appears.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
from flax import nnx

from nnx_migrate.equivalence.ambiguity import resolve_by_outputs
from nnx_migrate.equivalence.construction import build_from_linen
from nnx_migrate.equivalence.errors import EquivalenceSetupError
from nnx_migrate.equivalence.leaf_comparison import compare_leaf, compare_trees
from nnx_migrate.equivalence.mode_flags import (
    eval_and_train_kwargs,
    field_flag,
    flag_in_field,
    linen_in_mode,
    nnx_mode,
)
from nnx_migrate.equivalence.nnx_tree import format_nnx_path
from nnx_migrate.equivalence.perturbation import perturbed
from nnx_migrate.equivalence.result import Check, ComparisonResult, Divergence
from nnx_migrate.equivalence.running import LinenRun, NNXRun, init_linen, run_linen, run_nnx
from nnx_migrate.equivalence.weight_mapping import (
    TRANSIENT_COLLECTIONS,
    WeightMap,
    format_linen_path,
    map_weights,
)


def compare(
    linen_module: nn.Module,
    nnx_target: nnx.Module | type,
    *inputs: Any,
    call_kwargs: Mapping[str, Any] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    method: str | None = None,
    train_kwargs: Mapping[str, Any] | str | None = "auto",
    gradients: bool = True,
    train_steps: int = 0,
    optimizer: Any = None,
    variables: Mapping[str, Any] | None = None,
    init_inputs: Sequence[Any] | None = None,
    mapping: Mapping[str, Any] | None = None,
    match: str | None = None,
    seed: int = 0,
    perturb: bool | None = None,
) -> ComparisonResult:
    """Checks that `nnx_target` computes what `linen_module` computes.

    Args:
      linen_module: the Linen original (an unbound instance).
      nnx_target: an NNX module instance (a hand-written port; the Linen weights are
        copied into it) or an NNX class written by `nnx-migrate rewrite` (built here from
        the Linen fields, the input sizes, sizes left as arguments read off the Linen
        variables' shapes, and `nnx.Rngs(seed)`).
      *inputs: example positional inputs of the compared method.
      call_kwargs: keywords for both calls (the inference call adds the mode flag's
        inference value, e.g. `train=False`, unless given here).
      rtol, atol: |nnx - linen| <= atol + rtol * |linen| per element; None takes each
        leaf's dtype default (float32 1e-6, bfloat16 5e-2/1e-2, ...: see `tolerances`).
      method: compare this method instead of `__call__` (`apply(method=...)` in Linen,
        the attribute of the same name in NNX).
      train_kwargs: keywords for the train-mode call; 'auto' derives them from the mode
        flag in the method's signature; None skips the train-mode call.
      gradients: also compare the gradients of a scalar function of the outputs.
      train_steps: run this many optimizer steps on both sides and compare (0: none).
      optimizer: the optax transformation for those steps (default `optax.adam(1e-3)`).
      variables: Linen variables to use instead of `linen_module.init(...)`.
      init_inputs: positional inputs of `__call__` for `init` when `method` needs a
        model initialized by `__call__` (e.g. an autoencoder's `encode`).
      mapping: explicit placements, Linen path -> NNX path, e.g. `{'Dense_0': 'fc1',
        'Dense_1/kernel': ('out.w', lambda k: k.T)}`; a transform must be a re-layout
        (transpose, reshape) since gradients are moved with it too.
      match: 'names' (the rewrite's naming convention only; default for a class) or
        'structure' (names, then unique weight shapes; default for an instance).
      seed: seeds the Linen init, the NNX construction, the loss weights and `perturb`.
      perturb: move every floating weight by a small seeded amount before copying, so
        that no two layers hold equal init values (see `perturbation`); default: only
        the weights the harness initialises itself, never given `variables`.

    Returns a ComparisonResult; raises EquivalenceSetupError when the two models could
    not be run side by side (and AmbiguousMappingError, a subclass, when weights fit in
    more than one place and the outputs do not single out one placement).
    """
    call_kwargs = dict(call_kwargs or {})
    method_name = method or "__call__"
    linen_method = getattr(type(linen_module), method_name, None)
    if linen_method is None:
        raise EquivalenceSetupError(f"{type(linen_module).__name__} has no method {method_name!r}")
    eval_kwargs, train_call = eval_and_train_kwargs(linen_method, call_kwargs, train_kwargs)
    # a flag Linen takes from a field (`nn.merge_param`) stays in these keywords as the
    # pass's mode; `flag_in_field` moves it into the field at each call
    flag_field = field_flag(linen_module, linen_method, call_kwargs)

    user_variables = variables is not None
    if variables is None:
        variables = _init_linen(linen_module, inputs, method, init_inputs, eval_kwargs, seed, flag_field)
    variables = {c: v for c, v in dict(variables).items() if c not in TRANSIENT_COLLECTIONS}
    # Partitioning boxes (nn.with_logical_partitioning / nn.with_partitioning) only carry
    # axis names: compare and copy the arrays inside (Linen's apply accepts them unboxed).
    variables = _unboxed(variables)
    if (not user_variables) if perturb is None else perturb:
        variables = perturbed(variables, seed)

    size_inputs = inputs if init_inputs is None else init_inputs
    if isinstance(nnx_target, nnx.Module):
        nnx_module = nnx_target
        match = match or "structure"
    elif isinstance(nnx_target, type) and issubclass(nnx_target, nnx.Module):
        nnx_module = build_from_linen(nnx_target, linen_module, size_inputs, rngs_seed=seed,
                                      variables=variables)
        match = match or "names"
    else:
        raise EquivalenceSetupError(
            f"nnx_target must be an nnx.Module instance or class, not {type(nnx_target).__name__}"
        )
    if not callable(getattr(nnx_module, method_name, None)):
        raise EquivalenceSetupError(f"the NNX module {type(nnx_module).__name__} has no method {method_name!r}")
    _check_tree_mode_holds(nnx_module)

    weight_map = map_weights(variables, nnx_module, match=match, overrides=mapping, ambiguities="collect")
    notes = []
    if weight_map.ambiguities:
        agree = _outputs_agree(linen_module, nnx_module, variables, method_name, inputs, eval_kwargs, rtol, atol, seed,
                               flag_field)
        weight_map, note = resolve_by_outputs(variables, nnx_module, match, mapping, weight_map, agree)
        notes.append(note)
    result = ComparisonResult(variables, nnx_module, weight_map, rtol, atol, notes=notes)
    if not weight_map.complete:
        if weight_map.unfilled and method is not None and init_inputs is None and not user_variables:
            result.notes.append(
                f"Linen's init ran only {method_name!r}, which may not create every parameter; "
                f"give init_inputs= (CLI: --init-input) to initialize through __call__")
        return result
    weight_map.load(variables)

    pass_runner = _Passes(linen_module, nnx_module, variables, weight_map, method_name, inputs, rtol, atol, seed,
                          flag_field)
    label = "forward" if method is None else f"method {method_name}"
    pass_runner.inference(result, label, eval_kwargs, gradients)
    if train_call is not None:
        pass_runner.train_mode(result, f"train-mode {label}", train_call)
    if train_steps:
        from nnx_migrate.equivalence.training import compare_training

        compare_training(pass_runner, result, train_call if train_call is not None else eval_kwargs,
                         train_steps, optimizer)
    return result


def _outputs_agree(linen_module, nnx_module, variables, method_name, inputs, kwargs, rtol, atol, seed, flag_field):
    """A test of one placement of the weights: do the inference outputs agree under it?"""
    try:
        with flag_in_field(linen_module, nnx_module, flag_field, kwargs) as (module, linen_kwargs, _):
            linen = run_linen(module, variables, inputs, method_name, linen_kwargs, with_grads=False, seed=seed)
    except Exception as exc:
        raise EquivalenceSetupError(f"Linen {method_name} failed: {type(exc).__name__}: {exc}") from exc

    def agree(weight_map: WeightMap) -> bool:
        snapshot = _snapshot(nnx_module)
        try:
            with flag_in_field(linen_module, nnx_module, flag_field, kwargs) as (_, _, flagged), \
                    nnx_mode(nnx_module, method_name, flagged) as nnx_kwargs:
                nnx_run = run_nnx(nnx_module, inputs, method_name, nnx_kwargs, with_grads=False, seed=seed)
        except Exception:  # a placement under which the port cannot even run
            return False
        finally:
            _restore(snapshot)
        return all(diff.ok for diff in compare_trees(linen.outputs, nnx_run.outputs, rtol, atol))

    return agree


def _init_linen(linen_module, inputs, method, init_inputs, eval_kwargs, seed, flag_field=None):
    try:
        if init_inputs is not None:
            init_kwargs = eval_and_train_kwargs(type(linen_module).__call__, {}, None)[0]
            if field_flag(linen_module, type(linen_module).__call__, {}) is not None:
                init_kwargs = {}  # the field gives __call__ its mode
            return init_linen(linen_module, tuple(init_inputs), None, init_kwargs, seed)
        module, kwargs = linen_in_mode(linen_module, flag_field, eval_kwargs)
        return init_linen(module, inputs, method, kwargs, seed)
    except Exception as exc:
        raise EquivalenceSetupError(
            f"Linen {type(linen_module).__name__}.init failed: {type(exc).__name__}: {exc}"
        ) from exc


class _Passes:
    """Runs one call on both sides and turns the differences into checks."""

    def __init__(self, linen_module, nnx_module, variables, weight_map: WeightMap, method_name,
                 inputs, rtol, atol, seed, flag_field=None):
        self.linen_module = linen_module
        self.flag_field = flag_field
        self.nnx_module = nnx_module
        self.variables = variables
        self.weight_map = weight_map
        self.method_name = method_name
        self.inputs = inputs
        self.rtol = rtol
        self.atol = atol
        self.seed = seed
        self.state_collections = [c for c in variables if c != "params"]

    def nnx_call(self, model, kwargs):
        """Outputs of one plain NNX call (the training loop's)."""
        return getattr(model, self.method_name)(*self.inputs, **kwargs)

    def guarded(self, side: str, what: str, run: Callable):
        """`run()`, with a failure inside either model turned into a setup error that
        says which side and which call failed."""
        try:
            return run()
        except EquivalenceSetupError:
            raise
        except Exception as exc:
            raise EquivalenceSetupError(f"{side} {what} failed: {type(exc).__name__}: {exc}") from exc

    def _run_both(self, label: str, kwargs, with_grads: bool) -> tuple[LinenRun, NNXRun]:
        what = f"{label} with gradients" if with_grads else label
        with flag_in_field(self.linen_module, self.nnx_module, self.flag_field, kwargs) as (module, linen_kwargs, flagged):
            linen = self.guarded("Linen", what, lambda: run_linen(
                module, self.variables, self.inputs, self.method_name, linen_kwargs,
                with_grads=with_grads, seed=self.seed))
            with nnx_mode(self.nnx_module, self.method_name, flagged) as nnx_kwargs:
                nnx_run = self.guarded("NNX", what, lambda: run_nnx(
                    self.nnx_module, self.inputs, self.method_name, nnx_kwargs, with_grads=with_grads, seed=self.seed))
        return linen, nnx_run

    # -- the passes ------------------------------------------------------------------
    def inference(self, result: ComparisonResult, label: str, kwargs, gradients: bool) -> None:
        """Outputs, gradients and state after the inference call."""
        with_grads = gradients and "params" in self.variables and bool(self.weight_map.param_pairs())
        self._call_and_check(result, label, kwargs, with_grads)

    def train_mode(self, result: ComparisonResult, label: str, kwargs) -> None:
        """Outputs and updated state (BatchNorm statistics) of the train-mode call."""
        self._call_and_check(result, label, kwargs, with_grads=False)

    def _call_and_check(self, result: ComparisonResult, label: str, kwargs, with_grads: bool) -> None:
        snapshot = _snapshot(self.nnx_module)
        linen, nnx_run = self._run_both(label, kwargs, with_grads)
        outputs = self._output_check(label, linen.outputs, nnx_run.outputs)
        result.checks.append(outputs)
        if with_grads:
            result.checks.append(self._gradient_check(f"gradients ({label})", linen.grads, nnx_run.grads))
        state = None
        if self.weight_map.state_pairs():
            state = self._state_check(f"state after {label}", linen.state)
            result.checks.append(state)
        if not outputs.ok or (state is not None and not state.ok):
            self._add_divergence(result, label, linen.records, nnx_run.records, state)
        _restore(snapshot)

    # -- turning values into checks ---------------------------------------------------
    def _output_check(self, label, linen_flat, nnx_flat) -> Check:
        return Check(f"outputs ({label})", compare_trees(linen_flat, nnx_flat, self.rtol, self.atol))

    def _gradient_check(self, label, linen_grads, nnx_grads) -> Check:
        nnx_flat = {format_nnx_path(tuple(path)): leaf.get_value() for path, leaf in nnx.to_flat_state(nnx_grads)}
        leaves = []
        for pair in self.weight_map.param_pairs():
            expected = pair.linen_value(linen_grads, with_collection=False)
            actual = nnx_flat.get(pair.nnx_name)
            if actual is None:
                leaves.append(compare_trees({pair.linen_name: expected}, {}, self.rtol, self.atol,
                                            {pair.linen_name: pair.nnx_name})[0])
            else:
                leaves.append(compare_leaf(pair.linen_name, pair.nnx_name, expected, actual, self.rtol, self.atol))
        return Check(label, leaves)

    def _state_check(self, label, updated) -> Check:
        """Linen's updated collections against the NNX variables as they are now."""
        merged = {**self.variables, **{c: v for c, v in updated.items() if c != "intermediates"}}
        leaves = []
        for pair in self.weight_map.state_pairs():
            leaves.append(compare_leaf(pair.linen_name, pair.nnx_name, pair.linen_value(merged),
                                       pair.variable.get_value(), self.rtol, self.atol))
        return Check(label, leaves)

    def _add_divergence(self, result, label, linen_records, nnx_records, state: Check | None = None) -> None:
        divergence = first_divergence(label, linen_records, nnx_records, self.weight_map, self.rtol, self.atol)
        if divergence is None and state is not None and not state.ok:
            # Every output agrees: the difference is in what a submodule keeps (BatchNorm
            # statistics updated with another momentum, a counter stepped differently).
            leaf = next(leaf for leaf in state.leaves if not leaf.ok)
            pair = next(pair for pair in self.weight_map.state_pairs() if pair.linen_name == leaf.name)
            divergence = Divergence(
                label, format_linen_path(None, pair.linen_path[:-1]), format_nnx_path(pair.nnx_path[:-1]), 0,
                leaf.max_abs_diff, None, f" (its state {leaf.name} differs; every output agrees)")
        if divergence is not None:
            result.divergences.append(divergence)


def first_divergence(label, linen_records, nnx_records, weight_map: WeightMap, rtol, atol) -> Divergence | None:
    """Walks the NNX submodule calls in the order they finished and returns the first whose
    outputs differ from the matching Linen call (same module, same call count). Records
    are flattened outputs: Linen {scope path: [per call]}, NNX [(path, outputs)]."""
    by_nnx_path: dict = {}
    for linen_path in linen_records:
        if not linen_path:
            continue  # the root's own output is the model output, compared already
        nnx_path = weight_map.nnx_module_path(linen_path)
        if nnx_path is not None:
            by_nnx_path.setdefault(nnx_path, linen_path)
    calls_seen: dict = {}
    last_agreeing = None
    for nnx_path, nnx_output in nnx_records:
        index = calls_seen.get(nnx_path, 0)
        calls_seen[nnx_path] = index + 1
        linen_path = by_nnx_path.get(nnx_path)
        if linen_path is None or index >= len(linen_records[linen_path]):
            continue
        diffs = compare_trees(linen_records[linen_path][index], nnx_output, rtol, atol)
        linen_name = format_linen_path(None, linen_path)
        nnx_name = format_nnx_path(nnx_path)
        if all(diff.ok for diff in diffs):
            last_agreeing = linen_name if linen_name == nnx_name else f"{linen_name} (NNX {nnx_name})"
            continue
        worst = max(diff.max_abs_diff for diff in diffs)
        problems = "; ".join(d.problem for d in diffs if d.problem)
        return Divergence(label, linen_name, nnx_name, index, worst, last_agreeing,
                          f" ({problems})" if problems else "")
    return None


def _snapshot(module: nnx.Module) -> list[tuple[nnx.Variable, Any]]:
    """Every variable's current value (arrays are immutable: holding them is a copy)."""
    return [(variable, variable.get_value())
            for _, variable in nnx.graph.iter_graph(module) if isinstance(variable, nnx.Variable)]


def _restore(snapshot) -> None:
    for variable, value in snapshot:
        variable.set_value(value)


def _unboxed(tree):
    """`nn.meta.unbox` that keeps the order of the Linen variables (the report lists
    leaves in the Linen model's order; jax's tree_map would sort the keys)."""
    if isinstance(tree, Mapping):
        return {key: _unboxed(value) for key, value in tree.items()}
    if isinstance(tree, nn.meta.AxisMetadata):
        return tree.unbox()
    return tree


def _check_tree_mode_holds(nnx_module) -> None:
    """In NNX's tree mode (`NNX_GRAPH_MODE=false`) a model that holds one module twice
    (Linen's weight sharing; the rewrite marks such constructions TODO) cannot run at all:
    said as a setup error, not a traceback from deep inside Flax."""
    if nnx.set_graph_mode.current_value():
        return
    try:
        nnx.graphdef(nnx_module, graph=False)
    except ValueError as exc:
        if "shared references" not in str(exc):
            raise
        where = [line.strip()[2:] for line in str(exc).splitlines() if line.strip().startswith("- ")]
        raise EquivalenceSetupError(
            f"the NNX model holds one object at {' and '.join(where) or 'two places'}; NNX's tree mode "
            "(NNX_GRAPH_MODE=false) holds nothing twice: check it in graph mode (NNX_GRAPH_MODE=true "
            "NNX_GRAPH_UPDATES=true), or pass the shared module at call time"
        ) from exc
