"""Which names in a file hold an `nnx.Optimizer`, and which model each one optimizes.

Shared by the `update(grads)` rule (NNX002) and the `ModelAndOptimizer` rule (NNX005).
A name holds an optimizer when it is assigned `nnx.Optimizer(...)`, is a parameter
annotated with it, or is a parameter of a function in this file that some call passes an
optimizer to (`train_step(model, optimizer, batch)`). The model of an `update(grads)` is
read, in this order, from where `grads` came from (`nnx.grad(loss)(model, ...)`), or from
the optimizer's construction, carried through the same calls. Each use says whether that
model is proven: the name, written at the use, still means the object it meant where it
was seen (bindings.py), every call into a step passes the same optimizer and model, the
gradients' model is the optimizer's, and `optimizer.model` is never assigned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.analysis import FileAnalysis
from nnx_migrate.lint.bindings import attribute_is_written, same_object_doubt


@dataclass(eq=False)
class OptimizerBinding:
    kind: str  # the nnx class: "Optimizer" or "ModelAndOptimizer"
    model: cst.BaseExpression | None  # names the model where this binding is visible
    origin: OptimizerBinding | None = None  # the construction this came from, if carried
    construction: cst.Call | None = None
    # Where `model` names the model (a node in the tree: the construction's argument, or
    # the step's parameter the model is passed to), and why it may not be that model.
    model_source: cst.CSTNode | None = None
    doubt: str | None = None

    @property
    def root(self) -> OptimizerBinding:
        return self.origin.root if self.origin is not None else self


@dataclass
class OptimizerUse:
    binding: OptimizerBinding
    node: cst.CSTNode  # `opt.update(...)` call or `opt.model` attribute
    model: cst.BaseExpression | None  # the model at this use, if known
    doubt: str | None = None  # why `model` is not proven to be the optimizer's model here
    written: bool = False  # `opt.model = ...` / `del opt.model`: not a read to replace


@dataclass
class OptimizerTracker:
    analysis: FileAnalysis
    _by_target: dict[int, OptimizerBinding] = field(default_factory=dict)
    # `self.opt = nnx.Optimizer(...)` in a method: (id of the class, attribute) -> binding
    _by_attribute: dict[tuple[int, str], OptimizerBinding] = field(default_factory=dict)
    one_arg_updates: list[OptimizerUse] = field(default_factory=list)
    model_attributes: list[OptimizerUse] = field(default_factory=list)

    def binding_of(self, expr: cst.BaseExpression, cls: cst.ClassDef | None = None) -> OptimizerBinding | None:
        if cls is not None and m.matches(expr, m.Attribute(value=m.Name("self"), attr=m.Name())):
            return self._by_attribute.get((id(cls), expr.attr.value))
        if not isinstance(expr, cst.Name) or not self._by_target:
            return None
        bindings = {id(b): b for a in self.analysis.assignments_of(expr) if (b := self._by_target.get(id(a.node)))}
        return next(iter(bindings.values())) if len(bindings) == 1 else None

    def constructed(self) -> list[OptimizerBinding]:
        """Bindings made by an `nnx.Optimizer(...)`-style call in this file."""
        bindings = [*self._by_target.values(), *self._by_attribute.values()]
        return [b for b in bindings if b.construction is not None]

    def uses_of(self, root: OptimizerBinding) -> list[OptimizerUse]:
        return [u for u in self.one_arg_updates + self.model_attributes if u.binding.root is root]


def optimizer_tracker(analysis: FileAnalysis) -> OptimizerTracker:
    """The file's tracker, built once and shared by the rules that need it."""
    return analysis.shared(_build)


def _build(analysis: FileAnalysis) -> OptimizerTracker:
    tracker = OptimizerTracker(analysis)
    collector = _Collector(analysis)
    analysis.module.visit(collector)
    optimizer_kinds = {analysis.api.optimizer, *analysis.api.deprecated_optimizers}

    for assign, cls in collector.assigns:
        kind = analysis.called_nnx_symbol(assign.value, optimizer_kinds)
        if kind is None or len(assign.targets) != 1:
            continue
        target = assign.targets[0].target
        model = _constructed_model(assign.value)
        if isinstance(target, cst.Name):
            tracker._by_target[id(target)] = OptimizerBinding(kind, model, construction=assign.value, model_source=model)
        elif cls is not None and m.matches(target, m.Attribute(value=m.Name("self"), attr=m.Name())):
            # Other methods see the model only if it is itself an attribute of self.
            shared_model = model if m.matches(model, m.Attribute(value=m.Name("self"))) else None
            tracker._by_attribute[(id(cls), target.attr.value)] = OptimizerBinding(
                kind, shared_model, construction=assign.value, model_source=shared_model
            )
    for param in collector.params:
        if param.annotation is not None:
            kind = analysis.nnx_symbol(param.annotation.annotation, optimizer_kinds)
            if kind is not None:
                tracker._by_target[id(param)] = OptimizerBinding(kind, None)

    if not tracker._by_target and not tracker._by_attribute:
        return tracker  # no optimizer in this file: skip the scope analysis below
    # Carry bindings into the functions they are passed to (twice: steps call helpers).
    if tracker._by_target:
        for _ in range(2):
            for call, _cls in collector.calls:
                _carry_through_call(tracker, call)

    for call, cls in collector.calls:
        func = call.func
        if not m.matches(func, m.Attribute(attr=m.Name("update"))):
            continue
        binding = tracker.binding_of(func.value, cls)
        if binding is None:
            continue
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if len(call.args) == 1 and len(positional) == 1:
            tracker.one_arg_updates.append(_update_use(analysis, binding, call, positional[0].value))
    for attribute, cls in collector.attributes:
        if attribute.attr.value == "model":
            binding = tracker.binding_of(attribute.value, cls)
            if binding is not None:
                use = OptimizerUse(binding, attribute, binding.model, written=attribute_is_written(analysis, attribute))
                use.doubt = _doubt_at(analysis, binding, binding.model_source, attribute)
                tracker.model_attributes.append(use)
    reassigned = {id(u.binding.root) for u in tracker.model_attributes if u.written}
    for use in tracker.one_arg_updates + tracker.model_attributes:
        if id(use.binding.root) in reassigned and use.model is not None:
            use.doubt = use.doubt or "`optimizer.model` is assigned in this file (the old API's way to swap the model)"
    return tracker


def _doubt_at(analysis: FileAnalysis, binding: OptimizerBinding, source: cst.CSTNode | None, at: cst.CSTNode) -> str | None:
    """Why the binding's model, written at `at`, may not be the model it was seen as."""
    if binding.model is None:
        return None
    if binding.doubt is not None:
        return binding.doubt
    if source is None:
        return "cannot tell where the model was named"
    return same_object_doubt(analysis, source, at)


def _update_use(analysis: FileAnalysis, binding: OptimizerBinding, call: cst.Call, grads: cst.BaseExpression) -> OptimizerUse:
    """`opt.update(grads)`: the model from the gradients' `nnx.grad(...)(model, ...)`, else the
    optimizer's; when both are known they must be the same object."""
    from_grads = _model_from_grads(analysis, grads)
    if from_grads is None:
        return OptimizerUse(binding, call, binding.model, doubt=_doubt_at(analysis, binding, binding.model_source, call))
    doubt = same_object_doubt(analysis, from_grads, call)
    if doubt is None and binding.model is not None:
        built_with = _doubt_at(analysis, binding, binding.model_source, call)
        if built_with is not None:
            doubt = built_with
        elif analysis.code(from_grads) != analysis.code(binding.model) or (
            same_object_doubt(analysis, binding.model_source, from_grads) is not None
        ):
            doubt = (f"the gradients are of `{analysis.code(from_grads)}`, the optimizer was built with "
                     f"`{analysis.code(binding.model)}`")
    return OptimizerUse(binding, call, from_grads, doubt=doubt)


def _constructed_model(call: cst.Call) -> cst.BaseExpression | None:
    for index, arg in enumerate(call.args):
        if (arg.keyword is None and index == 0 and not arg.star) or (
            arg.keyword is not None and arg.keyword.value == "model"
        ):
            return arg.value if isinstance(arg.value, (cst.Name, cst.Attribute)) else None
    return None


def _carry_through_call(tracker: OptimizerTracker, call: cst.Call) -> None:
    analysis = tracker.analysis
    if not isinstance(call.func, cst.Name):
        return
    functions = [a.node for a in analysis.assignments_of(call.func) if isinstance(a.node, cst.FunctionDef)]
    if len(functions) != 1:
        return
    params = functions[0].params
    positional_params = [*params.posonly_params, *params.params]
    by_name = {p.name.value: p for p in [*positional_params, *params.kwonly_params]}

    def param_for(index: int, arg: cst.Arg) -> cst.Param | None:
        if arg.star:
            return None
        if arg.keyword is not None:
            return by_name.get(arg.keyword.value)
        return positional_params[index] if index < len(positional_params) else None

    for index, arg in enumerate(call.args):
        binding = tracker.binding_of(arg.value)
        param = param_for(index, arg)
        carried = tracker._by_target.get(id(param)) if param is not None else None
        if carried is not None and carried.origin is None:
            continue  # annotated `optimizer: nnx.Optimizer`: known without the calls
        if binding is None:
            if carried is not None and carried.model is not None and carried.doubt is None:
                carried.doubt = f"`{call.func.value}` is also called with an optimizer this file does not track"
            continue
        if param is None:
            continue
        model_param, doubt = None, binding.doubt
        if isinstance(binding.model, cst.Name):
            for other_index, other in enumerate(call.args):
                if isinstance(other.value, cst.Name) and other.value.value == binding.model.value:
                    model_param = param_for(other_index, other)
                    doubt = doubt or same_object_doubt(analysis, binding.model_source, other.value)
        if carried is not None:
            # A second call into the same step: it must pass the same optimizer and model.
            same = carried.origin is binding and carried.model_source is model_param
            if not same and carried.model is not None and carried.doubt is None:
                carried.doubt = f"`{call.func.value}` is called with different optimizers or models"
            if same and doubt and carried.doubt is None:
                carried.doubt = doubt
            continue
        model = cst.Name(model_param.name.value) if model_param is not None else None
        tracker._by_target[id(param)] = OptimizerBinding(
            binding.kind, model, origin=binding, model_source=model_param, doubt=doubt if model is not None else None
        )


def _model_from_grads(analysis: FileAnalysis, grads: cst.BaseExpression) -> cst.BaseExpression | None:
    """`grads` from `nnx.grad(f)(model, ...)` / `nnx.value_and_grad(f)(model, ...)` -> `model`."""
    if not isinstance(grads, cst.Name):
        return None
    assignments = analysis.assignments_of(grads)
    if len(assignments) != 1:
        return None
    node = assignments[0].node
    while node is not None and not isinstance(node, cst.Assign):
        if not isinstance(node, (cst.Name, cst.Element, cst.Tuple, cst.List, cst.AssignTarget)):
            return None
        node = analysis.parent(node)
    if node is None or not isinstance(node.value, cst.Call):
        return None
    outer = node.value
    transform = outer.func
    if isinstance(transform, cst.Name):
        transform = analysis.assigned_value(transform)
    if not isinstance(transform, cst.Call):
        return None
    if analysis.nnx_symbol(transform.func, analysis.api.grad_transforms) is None:
        return None
    if any(a.keyword is not None and a.keyword.value in ("argnums", "wrt") for a in transform.args):
        return None  # differentiates w.r.t. something else than the first argument
    first = outer.args[0] if outer.args else None
    if first is None or first.keyword is not None or first.star:
        return None
    return first.value if isinstance(first.value, (cst.Name, cst.Attribute)) else None


class _Collector(cst.CSTVisitor):
    """Assignments, parameters, calls and attributes, each with its enclosing class."""

    def __init__(self, analysis: FileAnalysis) -> None:
        self.assigns: list[tuple[cst.Assign, cst.ClassDef | None]] = []
        self.params: list[cst.Param] = []
        self.calls: list[tuple[cst.Call, cst.ClassDef | None]] = []
        self.attributes: list[tuple[cst.Attribute, cst.ClassDef | None]] = []
        self._classes: list[cst.ClassDef] = []

    def _cls(self) -> cst.ClassDef | None:
        return self._classes[-1] if self._classes else None

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        self.assigns.append((node, self._cls()))

    def visit_Param(self, node: cst.Param) -> None:
        self.params.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append((node, self._cls()))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.attributes.append((node, self._cls()))
