"""The walk's expressions: calls that build, call or ask things of submodules."""

from __future__ import annotations

import ast
import re

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.classes.constructs import self_call_construct
from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.model import CARRIED, Sub, SubKind
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import children_in_order

OWN_SCOPES = frozenset({cst.Lambda, cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp})


class CallWalk:
    """Expressions and calls of a method body (a part of BodyWalker)."""

    # ---- expressions -------------------------------------------------------------
    def expr(self, node: cst.CSTNode) -> None:
        # (exact type tests: these classes have no subclasses, and `isinstance` against
        # LibCST's abstract node classes is slow on this per-node path)
        if type(node) is cst.Call:
            self.call(node)
            return
        if type(node) is cst.IfExp:
            # `nn.Dense(4)(x) if self.flag else x`: Linen builds what the taken branch builds
            self.expr(node.test)
            cond, cond_hoist = self.static_test(node.test)
            for branch, guard in ((node.body, cond), (node.orelse, None if cond is None else f"not ({cond})")):
                if guard is None:
                    self.dynamic_guard += 1
                    self.expr(branch)
                    self.dynamic_guard -= 1
                else:
                    self.guards.append(guard)
                    self.guard_hoists.append(cond_hoist)
                    self.expr(branch)
                    self.guard_hoists.pop()
                    self.guards.pop()
            return
        if type(node) in OWN_SCOPES:
            self.in_loop += 1
            for child in children_in_order(node):
                self.expr(child)
            self.in_loop -= 1
            return
        for child in children_in_order(node):
            self.expr(child)

    def call(self, node: cst.Call) -> None:
        conv = self.conv
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "initialize_carry" and self._initialize_carry(node):
            return
        if isinstance(func, cst.Call):
            conv.called_classes.add(id(conv.class_expr(func)))  # (a foreign class only counts as a submodule so)
        if isinstance(func, cst.Call) and conv.construction_kind(func) is not None:
            sub = self.construction(func)
            for arg in node.args:
                self.expr(arg.value)
            self.called(sub, node)
            return
        if conv.construction_kind(node) is not None:
            self.construction(node)
            return
        if isinstance(func, cst.Call) and self._looks_like_foreign_module(func):
            why = "built and called like a Linen submodule, but its class is not a Linen module converted in this run: build it in __init__ by hand"
            held = _self_attr(func.func)
            fld = next((f for f in conv.shape.fields if f.name == held), None) if held is not None else None
            if fld is not None and fld.default_code is None and self.ctx.field_values is not None and self.ctx.field_values.infer(conv.name, held) is None:
                # a factory field without a default: say what the file's constructions pass
                why += f" (the field '{held}' has no default and {self.ctx.field_values.why_unknown(conv.name, held)})"
            conv.todo(node, code(func.func), why)
        method = _self_attr(func)
        callee = self.conv.method_named(method)
        if callee is not None and callee.name.value not in self.conv.walking:
            for arg in node.args:
                self.expr(arg.value)
            positional = [a.value for a in node.args if a.keyword is None and not a.star]
            walker = type(self)(self.conv, callee, "method")
            params = [p for p in callee.params.params if p.name.value != "self"]
            for p, value in zip(params, positional, strict=False):
                walker.scope.env[p.name.value] = self.size_of(value)
                whole = self.size_of.shape_of(value)
                if whole is not None:
                    walker.scope.shapes[p.name.value] = whole
            names = {p.name.value for p in [*callee.params.params, *callee.params.kwonly_params]}
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value in names:
                    walker.scope.env[arg.keyword.value] = self.size_of(arg.value)
            # the size it returns for these arguments (another call may pass other sizes)
            self.conv.call_returns[node] = self.conv.walk_method(walker)
            return
        construct = self_call_construct(method)
        if construct is not None and construct.walk(conv, self, node, method):
            return
        # (Module methods a construct converts returned above or convert at the call)
        if method in ("has_rng", "has_variable", "get_variable", "put_variable", "scope", "bind", "apply", "init", "perturb", "lazy_init", "module_paths", "path", "variables", "clone", "copy"):
            conv.todo(node, f"self.{method}()", "no NNX counterpart is generated for this Module method")
        for child in children_in_order(node):
            self.expr(child)
        sub = self._sub_called_by(node)
        if sub is not None:
            if isinstance(node.func, cst.Name):
                self._guard_by_calls(sub)
                # `bn = nn.BatchNorm(...)` then `bn(x)`: the rewrite of this call must know
                # it calls that submodule (call-time arguments, scan, remat), as for
                # `nn.BatchNorm(...)(x)` and `self.bn(x)`
                holds = self._same_values_here(sub)
                self.conv.local_calls[node] = (sub, holds)
                if not holds:
                    self.conv.todo(node, f"{node.func.value}(...)", f"Linen set {', '.join(sub.call_kwargs)} when building the layer, from names bound again before this call; pass it at this call by hand")
            self.called(sub, node)

    def _guard_by_calls(self, sub: Sub) -> None:
        """A compact local layer is built by its first call in Linen: where every call of it
        runs under conditions on fields its construction did not have, `__init__` builds
        it under them too (the parameters exist exactly when Linen's do)."""
        if self.origin != "compact" or sub.kind in (SubKind.CHAIN, SubKind.EITHER, SubKind.FIELD) or sub.loop is not None or self.loop_pass == 3:
            return
        built = sub.guards if sub.called_guards is None else sub.called_guards_built
        if self.dynamic_guard or self.guards[:len(built)] != built:
            extra = None
        else:
            extra = self.guards[len(built):]
        if sub.called_guards is None:
            if not extra or self.in_loop:
                sub.called_guards = []
                sub.called_guards_built = list(built)
                return
            sub.called_guards, sub.called_guards_built = list(extra), list(built)
            sub.guards = [*built, *extra]
            for pair in self.context_hoists():
                if pair not in sub.hoist:
                    sub.hoist.append(pair)
        elif sub.called_guards and extra != sub.called_guards:
            # called elsewhere too (or under other conditions): built as Linen's first call
            # would in every case only when unconditional
            sub.called_guards = []
            sub.guards = list(sub.called_guards_built)

    def _same_values_here(self, sub: Sub) -> bool:
        """Whether the call-time arguments Linen gave `sub` where it was built (`not train`)
        mean the same at a later call of the local holding it: each name they read is bound
        once in the method (a parameter, or one assignment before the construction)."""
        if not sub.call_kwargs:
            return True
        counts = self.conv.binding_counts(self.method)
        try:
            names = {n.id for src in sub.call_kwargs.values() for n in ast.walk(ast.parse(f"({src})", mode="eval")) if isinstance(n, ast.Name)}
        except SyntaxError:
            return False  # (then reported: pass it at the call by hand)
        return all(counts.get(name, 0) <= 1 for name in names)

    def _initialize_carry(self, node: cst.Call) -> bool:
        """Linen's `cell.initialize_carry(rng, shape)` of a recurrent cell the rules know:
        a throwaway `Cell(..., parent=None)` or a converted submodule. True when handled."""
        receiver = node.func.value
        plain = len(node.args) == 2 and all(a.keyword is None and not a.star for a in node.args)
        if isinstance(receiver, cst.Call) and recurrent.is_parent_none(receiver) and self.conv.construction_kind(receiver) == SubKind.LAYER:
            rule = self.ctx.rules.layers[qual_layer(self.ctx, receiver.func)]
            if not rule.initialize_carry or not plain or receiver.func is not self.conv.class_expr(receiver):
                return False
            for arg in [*receiver.args, *node.args]:
                self.expr(arg.value)
            src, problems = recurrent.throwaway_cell(rule, receiver, code(node.args[0].value), node.args[1].value)
            for why in problems:
                self.conv.todo(node, f"{rule.linen}(parent=None).initialize_carry(...)", why)
            if src is not None:
                self.conv.carry_inits[node] = src
            return True
        sub = self._sub_called_by(cst.Call(func=receiver)) if not isinstance(receiver, cst.Call) else self.conv.sub_by_node.get(receiver)
        if sub is not None and sub.kind == SubKind.LAYER and sub.rule.initialize_carry:
            if plain:
                self.conv.carry_swaps.add(node)
            else:
                self.conv.todo(node, f"{code(receiver)}.initialize_carry(...)", "NNX takes initialize_carry(input_shape, rngs): reorder the arguments by hand")
        return False

    def _looks_like_foreign_module(self, ctor: cst.Call) -> bool:
        """`Imported(...)(x)`: a class from outside the run (or a Linen transform) used the
        way Linen submodules are; the tool cannot tell what it needs."""
        qual = self.ctx.imports.qualify(ctor.func)
        if qual is None:
            # `self.block_cls(...)(x)`, `cls(...)(x)` with `cls = partial(self.conv_cls, ...)`:
            # a class held in a field or a local may well be a Linen module. Only helpers
            # of this file are known not to be.
            func = ctor.func
            if isinstance(func, cst.Name) and func.value in self.ctx.functions and func.value not in self.scope.method_locals:
                return False
            return isinstance(func, (cst.Name, cst.Attribute))
        if qual.split(".")[0] in ("jax", "numpy", "math", "functools", "builtins", "operator", "einops", "optax"):
            return False
        return qual.rsplit(".", 1)[-1][:1].isupper() or qual.startswith("flax.linen.")

    def construction(self, ctor: cst.Call) -> Sub:
        for arg in ctor.args:
            self.expr(arg.value)
        return self.conv.new_sub(ctor, self)

    def called(self, sub: Sub, call: cst.Call) -> None:
        if self.loop_pass == 3:
            if sub.loop is not None and sub.kind not in (SubKind.CHAIN, SubKind.EITHER, SubKind.FIELD):
                sub.symbolic_in_sizes = self.conv.call_in_sizes(sub, call, self)
            return
        if sub.kind == SubKind.CHAIN:
            self.conv.chain_called(sub.chain, call, self)
            return
        if sub.kind == SubKind.EITHER:
            for branch in sub.either[1:]:
                self.called(branch, call)
            return
        if sub.kind == SubKind.FIELD:
            return
        for other in sub.alternatives:
            if other.in_sizes is None:
                other.in_sizes = self.conv.call_in_sizes(other, call, self)
        if sub.in_sizes is not None:
            if (sub.loop is not None or sub.comp_attr is not None) and self.loop_pass == 2:
                again = self.conv.call_in_sizes(sub, call, self)
                for param, first in list(sub.in_sizes.items()):
                    later = again.get(param)
                    if later == first or param in sub.carried:
                        continue
                    if first is not None and later is not None and sub.comp_attr is not None and param == self.conv._primary_size_param(sub):
                        later = self._next_element_size(sub, first, later)
                    if first is not None and later is not None:
                        # The size changes along the loop: __init__ carries it in a variable
                        # updated at the end of each iteration, as the data does.
                        sub.carried[param] = (first, later)
                    else:
                        sub.problems.append("the input size changes from one iteration to the next")
                        sub.in_sizes[param] = None
            return
        sub.in_sizes = self.conv.call_in_sizes(sub, call, self)

    def _next_element_size(self, sub: Sub, first: str, later: str) -> str | None:
        """The next element's input size of a setup list run as a chain, written in the
        carried variable (CARRIED) where it depends on this element's input: a residual
        block keeps its input's size, so `later` (computed from the first element's input)
        is right for the second element only. None when the tool cannot follow it."""
        template = self.conv.out_size(sub, None, self, in_size=CARRIED)
        if not isinstance(template, str) or not re.search(rf"\b{CARRIED}\b", template):
            return later  # the next input does not depend on this one's
        if later != self.conv.out_size(sub, None, self, in_size=first):
            return None  # something between the elements changes the size
        return template
