"""The walk of one method body in execution order: sizes, guards and the statics `__init__` recomputes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.classes.model import LoopContext, Sub, SubKind
from nnx_migrate.rewrite.classes.walk_calls import CallWalk
from nnx_migrate.rewrite.classes.walk_statements import StatementWalk
from nnx_migrate.rewrite.nodes import bound_names as _bound_names
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.shapes import ShapeOf
from nnx_migrate.rewrite.sizes import NotStatic, Scope, SizeOf, scalar, size_param_name, try_static

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.converter import ClassConverter
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class BodyWalker(StatementWalk, CallWalk):
    """Walks one method body in execution order (analysis only, no rewriting)."""

    def __init__(self, conv: ClassConverter, method: cst.FunctionDef, origin: str):
        self.conv = conv
        self.ctx = conv.ctx
        self.origin = origin
        self.method = method
        self.scope = Scope(
            imports=self.ctx.imports,
            fields={f.name for f in conv.shape.fields},
            method_locals=_bound_names(method),
            module_names=self.ctx.module_names,
            extra_static_attrs=set(),
        )
        self.size_of = SizeOf(self.scope, self.ctx.rules.keep_last_dim, self.ctx.rules.keep_last_dim_methods, self._call_size)
        self.size_of.shape_of = ShapeOf(self.size_of)
        self.local_layers: dict[str, Sub] = {}
        self.variable_locals: set[str] = set()
        self.list_locals: set[str] = set()  # setup locals holding lists (of submodules)
        self.in_loop = 0
        self.loops: list[LoopContext] = []
        self.loop_pass = 1
        self.dynamic_guard = 0
        self.guards: list[str] = []
        # the static locals each condition in `guards` uses: `__init__` recomputes them
        # before the guarded construction (`use = self.n > 2` for `if use:`)
        self.guard_hoists: list[list[tuple[str, str]]] = []
        # the static locals conditional sizes use (`(wide) if (use) else (in_features)`
        # after `if use: x = nn.Dense(wide)(x)`): whatever is built later may need them
        self.size_hoists: list[tuple[str, str]] = []
        self.return_sizes: dict[int, object] = {}  # return statement -> size of its value where it runs
        self.loop_static_names: set[str] = set()  # static locals of the replayed loop's body

    # ---- sizes -------------------------------------------------------------------
    def _call_size(self, call: cst.Call, scope: Scope):
        method = _self_attr(call.func)
        if method is None and isinstance(call.func, cst.Attribute):
            size = self._child_method_size(call.func)
            if size is not None:
                return size
        if call in self.conv.call_returns:
            return self.conv.call_returns[call]
        if method is not None and method in self.conv.method_returns and method not in self.conv.walking and self.conv.method_named(method) is None:
            return self.conv.method_returns[method]
        if method is not None and call.args and call.args[0].keyword is None and self.conv.keeps_last_dim_field(method):
            # `self.activation(h)` with `activation: Callable = nn.tanh`: as its default
            # does (another function that changed the size would fail loudly at the next layer)
            return scalar(self.size_of(call.args[0].value))
        if isinstance(call.func, cst.Name) and call.func.value in self.ctx.functions and call.func.value not in self.scope.method_locals:
            return self.conv.function_return_size(self.ctx.functions[call.func.value], call, self)
        sub = self._sub_called_by(call)
        if sub is None:
            return None
        return self.conv.out_size(sub, call, self)

    def _child_method_size(self, func: cst.Attribute):
        """`cell.initial_state(n)` of a converted user submodule: the size that method
        returns, in this class's terms (None when unknown)."""
        receiver = func.value
        sub = self.conv.sub_by_node.get(receiver) if isinstance(receiver, cst.Call) else self._sub_called_by(cst.Call(func=receiver))
        if sub is None or sub.kind != SubKind.CHILD or sub.child is None:
            return None
        out = sub.child.method_out_sizes.get(func.attr.value)
        if out is None:
            return None
        try:
            return self.conv._child_size(sub, out, None)
        except NotStatic:
            return None

    def _sub_called_by(self, call: cst.Call) -> Sub | None:
        func = call.func
        if isinstance(func, cst.Call):
            return self.conv.sub_by_node.get(func)
        attr = _self_attr(func)
        if attr is not None:
            return self.conv.subs_by_attr.get(attr)
        if isinstance(func, cst.Name):
            return self.local_layers.get(func.value)
        return None

    # ---- statements --------------------------------------------------------------
    def walk(self) -> None:
        params = [p for p in self.method.params.params if p.name.value != "self"]
        if (self.method.name.value == "__call__" or self.method is self.conv.shape.compact) and not self.scope.env:
            for i, p in enumerate(params):
                self.scope.env[p.name.value] = size_param_name(i, p.name.value)
                if isinstance(p.default, cst.Name) and p.default.value == "None":
                    self.scope.optional_params[p.name.value] = size_param_name(i, p.name.value)
        self.block(self.method.body.body)

    def block(self, stmts) -> None:
        for stmt in stmts:
            self.statement(stmt)

    def hoist_list(self, names: list[str]) -> list[tuple[str, str]]:
        """The static locals `names` need, dependencies first, as (name, source); with
        those the enclosing conditions and the conditional sizes so far need (a size
        `x.shape[-1]` may be written in terms of them)."""
        out: list[tuple[str, str]] = self.context_hoists()
        for name in names:
            entry = self.scope.static.get(name)
            if entry is None:
                continue
            src, deps = entry
            for dep in [*deps, (name, src)]:
                if dep not in out:
                    out.append(dep)
        return out

    def static_test(self, test: cst.BaseExpression) -> tuple[str | None, list[tuple[str, str]]]:
        """A condition as `__init__` source (None when it depends on call arguments) and
        the static locals `__init__` must recompute before it."""
        used: list[str] = []
        cond = try_static(test, self.scope, used)
        return cond, (self.hoist_list(used) if cond is not None else [])

    def context_hoists(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for pair in [*self.size_hoists, *(p for hoist in self.guard_hoists for p in hoist)]:
            if pair not in out:
                out.append(pair)
        return out

    def note_size_hoists(self, pairs) -> None:
        for pair in pairs:
            if pair not in self.size_hoists:
                self.size_hoists.append(pair)

    def _guarded(self, cond: str | None, body, hoist=()) -> None:
        if cond is None:
            self.dynamic_guard += 1
            self.block(body)
            self.dynamic_guard -= 1
        else:
            self.guards.append(cond)
            self.guard_hoists.append(list(hoist))
            self.block(body)
            self.guard_hoists.pop()
            self.guards.pop()

    def _merge(self, taken: dict, cond: str | None = None, hoist=()) -> None:
        """Sizes after a branch: `taken` is the environment where the branch ran. Under a
        condition on fields a differing size becomes a conditional expression."""
        self.scope.shapes.clear()  # (whole shapes are followed in straight-line code only)
        for name in set(self.scope.env) | set(taken):
            mine, theirs = self.scope.env.get(name), taken.get(name)
            if mine == theirs:
                continue
            if cond is not None and isinstance(mine, str) and isinstance(theirs, str) and self.in_loop == 0:
                self.scope.env[name] = f"({theirs}) if ({cond}) else ({mine})"
                self.note_size_hoists(hoist)
            else:
                self.scope.env[name] = None
