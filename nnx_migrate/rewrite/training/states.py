"""Which names hold a Linen TrainState, by data flow (never by attribute names).

A value is a train state where it comes from `TrainState.create(...)` (Flax's class, a
subclass, through any import alias), from a state's own `apply_gradients(...)` /
`replace(...)`, from a function of the file that returns one, or where it is a parameter
that a state flows into at a call of the file (directly, through `jax.jit(f)` /
`jax.pmap(f)` / `functools.partial(f, ...)` aliases), or a parameter annotated with a
TrainState class. A parameter that calls TrainState's own methods (`apply_gradients`,
`apply_fn`) is one too: a step the file never calls itself (a library's trainer calls it).
Any other object with a `.params` (a pretrained model, a custom `flax.struct` state of an
optax loop) is not a train state, whatever its attributes are called.

The answer is per top-level function (and per method of a top-level class), keyed by the
node: a fixpoint over the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.visitors import FastVisitor

# TrainState's own methods: a parameter that calls them is a state whoever passes it.
_STATE_METHODS = ("apply_gradients", "apply_fn")
_DERIVING = ("apply_gradients", "replace")
_WRAPPERS = ("jax.jit", "jax.pmap", "functools.partial", "jax.checkpoint", "jax.named_call")


@dataclass
class _Scope:
    node: cst.CSTNode
    params: list[str] = field(default_factory=list)  # positional, `self`/`cls` of a method left out
    kwonly: list[str] = field(default_factory=list)
    states: set[str] = field(default_factory=set)
    assigns: list[tuple[list[str | None], cst.BaseExpression]] = field(default_factory=list)
    returns: list[cst.BaseExpression] = field(default_factory=list)
    calls: list[cst.Call] = field(default_factory=list)
    aliases: dict[str, tuple[str, int, frozenset[str]]] = field(default_factory=dict)  # g -> (f, positional offset, bound keywords)


class _Collect(FastVisitor):
    def __init__(self, scope: _Scope, is_state_class) -> None:
        self.scope = scope
        self.is_state_class = is_state_class

    def visit_ClassDef(self, node):
        return False

    def visit_Param(self, node):
        if node.annotation is not None and self.is_state_class(node.annotation.annotation):
            self.scope.states.add(node.name.value)

    def visit_Assign(self, node):
        for target in node.targets:
            t = target.target
            if isinstance(t, cst.Name):
                self.scope.assigns.append(([t.value], node.value))
            elif isinstance(t, (cst.Tuple, cst.List)):
                self.scope.assigns.append(([e.value.value if isinstance(e.value, cst.Name) else None for e in t.elements], node.value))

    def visit_Return(self, node):
        if node.value is not None:
            self.scope.returns.append(node.value)

    def visit_Call(self, node):
        self.scope.calls.append(node)
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value in _STATE_METHODS and isinstance(f.value, cst.Name):
            self.scope.states.add(f.value.value)

    def visit_Attribute(self, node):
        if node.attr.value == "apply_fn" and isinstance(node.value, cst.Name):
            self.scope.states.add(node.value.value)


class StateFlow:
    """`names(function_node)`: the names of that function that hold a train state."""

    def __init__(self, module: cst.Module, imports: ImportMap, is_state_class) -> None:
        self.imports = imports
        self.is_state_class = is_state_class
        self.scopes: list[_Scope] = []
        self.functions: dict[str, _Scope] = {}  # top-level function name -> scope
        module_scope = _Scope(module)
        for stmt in module.body:
            if isinstance(stmt, cst.FunctionDef):
                self.functions[stmt.name.value] = self._scope(stmt, method=False)
            elif isinstance(stmt, cst.ClassDef):
                for inner in stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ():
                    if isinstance(inner, cst.FunctionDef):
                        self._scope(inner, method=not _is_static(inner))
            else:
                _Collect(module_scope, is_state_class).walk(stmt)
        self.scopes.append(module_scope)
        for scope in self.scopes:
            self._aliases(scope)
        self.returning: set[tuple[str, int | None]] = set()  # (function, tuple position or None)
        self._solve()

    def names(self, node: cst.CSTNode) -> set[str]:
        for scope in self.scopes:
            if scope.node is node:
                return scope.states
        return set()

    def _scope(self, func: cst.FunctionDef, method: bool) -> _Scope:
        scope = _Scope(func)
        params = [p.name.value for p in (*func.params.posonly_params, *func.params.params)]
        scope.params = params[1:] if method else params
        scope.kwonly = [p.name.value for p in func.params.kwonly_params]
        _Collect(scope, self.is_state_class).walk(func.params)
        _Collect(scope, self.is_state_class).walk(func.body)
        self.scopes.append(scope)
        return scope

    def _aliases(self, scope: _Scope) -> None:
        for names, value in scope.assigns:
            if len(names) == 1 and names[0] is not None:
                target = self._callee(value, scope.aliases)
                if target is not None:
                    scope.aliases[names[0]] = target

    def _callee(self, node, aliases) -> tuple[str, int, frozenset[str]] | None:
        """The top-level function an expression names: `f`, `jax.jit(f)`,
        `functools.partial(f, a, k=b)` (1 position and `k` bound), an alias of those."""
        if isinstance(node, cst.Name):
            if node.value in self.functions:
                return node.value, 0, frozenset()
            return aliases.get(node.value)
        if isinstance(node, cst.Call) and node.args and self.imports.qualify(node.func) in _WRAPPERS:
            inner = self._callee(node.args[0].value, aliases)
            if inner is None:
                return None
            name, offset, bound = inner
            if self.imports.qualify(node.func) == "functools.partial":
                rest = node.args[1:]
                offset += sum(1 for a in rest if a.keyword is None and not a.star)
                bound = bound | {a.keyword.value for a in rest if a.keyword is not None}
            return name, offset, bound
        return None

    def _is_state(self, value, scope: _Scope) -> int | None | bool:
        """True: the value is a state; an int i: the value is a call whose result's i-th
        element is a state; False: neither."""
        if isinstance(value, cst.Name):
            return value.value in scope.states
        if not isinstance(value, cst.Call):
            return False
        f = value.func
        if isinstance(f, cst.Attribute):
            if f.attr.value == "create" and self.is_state_class(f.value):
                return True
            if f.attr.value in _DERIVING and isinstance(f.value, cst.Name) and f.value.value in scope.states:
                return True
        callee = self._callee(f, scope.aliases)
        if callee is not None:
            if (callee[0], None) in self.returning:
                return True
            positions = [i for name, i in self.returning if name == callee[0] and i is not None]
            if positions:
                return positions[0]
        return False

    def _solve(self) -> None:
        changed = True
        while changed:
            changed = False
            for scope in self.scopes:
                before = (len(scope.states), len(self.returning))
                self._step(scope)
                changed |= before != (len(scope.states), len(self.returning))

    def _step(self, scope: _Scope) -> None:
        for names, value in scope.assigns:
            found = self._is_state(value, scope)
            if found is True and len(names) == 1 and names[0] is not None:
                scope.states.add(names[0])
            elif found is not True and found is not False and len(names) > found and names[found] is not None:
                scope.states.add(names[found])
            elif isinstance(value, cst.Tuple) and len(value.elements) == len(names):
                for name, element in zip(names, value.elements, strict=False):
                    if name is not None and self._is_state(element.value, scope) is True:
                        scope.states.add(name)
        own = next((n for n, s in self.functions.items() if s is scope), None)
        if own is not None:
            for value in scope.returns:
                if self._is_state(value, scope) is True:
                    self.returning.add((own, None))
                elif isinstance(value, cst.Tuple):
                    for i, element in enumerate(value.elements):
                        if self._is_state(element.value, scope) is True:
                            self.returning.add((own, i))
        for call in scope.calls:
            callee = self._callee(call.func, scope.aliases)
            if callee is None:
                continue
            name, offset, bound = callee
            target = self.functions[name]
            positional = [a for a in call.args if a.keyword is None and not a.star]
            for i, arg in enumerate(positional):
                if offset + i < len(target.params) and self._is_state(arg.value, scope) is True:
                    target.states.add(target.params[offset + i])
            for arg in call.args:
                if arg.keyword is not None and arg.keyword.value not in bound and self._is_state(arg.value, scope) is True:
                    target.states.add(arg.keyword.value)


def _is_static(func: cst.FunctionDef) -> bool:
    return any(dotted(d.decorator) == "staticmethod" for d in func.decorators)


def state_flow(module: cst.Module, imports: ImportMap, is_state_class) -> StateFlow:
    return StateFlow(module, imports, is_state_class)

