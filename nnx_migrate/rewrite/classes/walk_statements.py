"""The walk's statements: assignments, branches, loops `__init__` replays, returns."""

from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.rewrite.classes.constructs import transform_of
from nnx_migrate.rewrite.classes.helpers import exits_early, is_literal, last_dim_of, may_be_literal
from nnx_migrate.rewrite.classes.model import LoopContext, Sub, SubKind
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.nodes import self_method_call as _self_method_call
from nnx_migrate.rewrite.nodes import targets as _targets
from nnx_migrate.rewrite.sizes import code, none_test, try_static
from nnx_migrate.rewrite.visitors import children_in_order


class StatementWalk:
    """Statements of a method body (a part of BodyWalker)."""

    def statement(self, stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self.small(small, stmt)
        elif isinstance(stmt, cst.If):
            self.expr(stmt.test)
            cond, cond_hoist = self.static_test(stmt.test)
            # `if context is None: context = x`: sizes follow the optional argument's size
            size_cond = cond if cond is not None else none_test(stmt.test, self.scope)
            layers_before = dict(self.local_layers)
            before = self.scope.env.copy()
            self._guarded(cond, stmt.body.body, cond_hoist)
            after_body = self.scope.env
            layers_body = dict(self.local_layers)
            self.scope.env = before.copy()
            self.scope.shapes.clear()
            self.local_layers = dict(layers_before)
            if stmt.orelse is not None:
                neg = None if cond is None else f"not ({cond})"
                if isinstance(stmt.orelse, cst.If):
                    self._guarded(neg, [stmt.orelse], cond_hoist)
                else:
                    self._guarded(neg, stmt.orelse.body.body, cond_hoist)
            self._merge(after_body, size_cond, cond_hoist)
            layers_else = self.local_layers
            self.local_layers = dict(layers_before)
            for name in set(layers_before) | set(layers_body) | set(layers_else):
                a, b = layers_body.get(name), layers_else.get(name)
                if a is b:
                    if a is None:
                        self.local_layers.pop(name, None)
                    else:
                        self.local_layers[name] = a
                elif a is not None and b is not None and cond is not None and self.in_loop == 0 and a.kind != SubKind.CHAIN and b.kind != SubKind.CHAIN:
                    # `embed = nn.Embed(...) if <field test> else self.shared_embedding`:
                    # whichever one the field test picks
                    self.local_layers[name] = Sub(attr=None, kind=SubKind.EITHER, ctor=stmt.test, line=self.ctx.line(stmt), origin=self.origin, either=(cond, a, b), hoist=list(cond_hoist))
                else:
                    # bound differently depending on the branch: no single submodule
                    self.local_layers.pop(name, None)
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self.expr(stmt.iter)
            else:
                self.expr(stmt.test)
            loop = self._loop_context(stmt)
            chained = None
            if isinstance(stmt, cst.For):
                chained = self._chain_over_list(stmt)  # binds a planned list's element to the loop variable
            targets: set[str] = set()
            if isinstance(stmt, cst.For):
                bound_here: set[str] = set()
                _targets(stmt.target, bound_here)
                for name in bound_here:
                    self.scope.literals.pop(name, None)
            if loop is not None:
                _targets(stmt.target, targets)
                self.loops.append(loop)
                self.scope.loop_vars |= targets
            before = self.scope.env.copy()
            self.scope.shapes.clear()  # (whole shapes are followed in straight-line code only)
            self.in_loop += 1
            self.block(stmt.body.body)
            self.loop_pass = 2
            self.scope.shapes.clear()
            self.block(stmt.body.body)  # a second pass sees sizes from the previous iteration
            self.loop_pass = 1
            carried = {}
            if loop is not None and any(s.loop is loop for s in self.conv.subs):
                # __init__ replays this loop: sizes that change along it are carried in a
                # variable there, which also gives their size after the loop.
                changed = {name: first for name, first in before.items()
                           if isinstance(first, str) and isinstance(self.scope.env.get(name), str) and self.scope.env[name] != first}
                ends = self._symbolic_pass(stmt, loop, changed) if changed else None
                for name, first in changed.items():
                    carried[name] = (first, ends[name] if ends is not None else self.scope.env[name], f"{name}_size")
                loop.carried_vars = carried
            self.in_loop -= 1
            if loop is not None:
                self.loops.pop()
                self.scope.loop_vars -= targets
                for name in self.loop_static_names:
                    self.scope.static.pop(name, None)  # (its source reads the loop's variables)
                self.loop_static_names.clear()
            end_of_body = dict(self.scope.env)
            self._merge(before)
            for name, (_, _, var) in carried.items():
                self.scope.env[name] = var
            if isinstance(chained, Sub) and chained.kind == SubKind.CHAIN and chained.chain.problem is None:
                chain = chained.chain
                for name, size in end_of_body.items():
                    if size == chain.var and before.get(name) == chain.first:
                        # after the list (none or all of its elements): the carried size
                        self.scope.env[name] = chain.var
            if stmt.orelse is not None:
                self.block(stmt.orelse.body.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self.expr(item.item)
            self.scope.shapes.clear()  # (`as` targets are bound here)
            self.block(stmt.body.body)
        elif isinstance(stmt, cst.Try):
            self.block(stmt.body.body)
            for handler in stmt.handlers:
                self.scope.shapes.clear()
                self.block(handler.body.body)
            for extra in (stmt.orelse, stmt.finalbody):
                if extra is not None:
                    self.block(extra.body.body)
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            self.conv.nested_defs.append(stmt)
        else:
            for child in children_in_order(stmt):
                self.expr(child)

    def _symbolic_pass(self, stmt: cst.For, loop: LoopContext, changed: dict[str, str]) -> dict[str, str] | None:
        """A third walk of a loop `__init__` replays, with each size that changes along it
        named by the variable `__init__` carries it in (`x_size`): every size then reads in
        terms of the iteration's own start. The second pass assumed each iteration starts
        from the first one's sizes, which holds only while the ends do not depend on the
        start (a chain of Dense layers); a residual block's output keeps its input's size,
        so a stack of them needs the carried variable in its update. Returns the ends in
        that case (and gives the loop's submodules their input sizes in those terms), else
        None: the second pass's sizes stand."""
        saved = dict(self.scope.env)
        self.scope.env.update({name: f"{name}_size" for name in changed})
        self.loop_pass = 3
        self.scope.shapes.clear()
        self.block(stmt.body.body)
        self.loop_pass = 1
        ends = {name: self.scope.env.get(name) for name in changed}
        self.scope.env.clear()
        self.scope.env.update(saved)
        pattern = re.compile(r"\b(?:" + "|".join(re.escape(f"{name}_size") for name in changed) + r")\b")
        if not all(isinstance(end, str) for end in ends.values()) or not any(pattern.search(end) for end in ends.values()):
            return None
        loop.symbolic = True
        for sub in self.conv.subs:
            if sub.loop is loop and sub.symbolic_in_sizes is not None:
                sub.in_sizes = dict(sub.symbolic_in_sizes)
                sub.carried.clear()
        return ends

    def _chain_over_list(self, stmt: cst.For):
        """`for layer in self.layers:` / `for i, layer in enumerate(self.layers):` over a
        planned setup list: binds the element submodule to the loop variable."""
        it, target = stmt.iter, stmt.target
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "enumerate" and len(it.args) == 1 and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            it, target = it.args[0].value, target.elements[1].value
        attr = _self_attr(it)
        plan = self.conv.comp_plans.get(attr) if attr is not None else None
        chain = self.conv.chain_by_attr.get(attr) if attr is not None else None
        if plan is None and chain is not None and isinstance(target, cst.Name) and not self.in_loop:
            # any element of the list: its calls set every element's input sizes
            element = Sub(attr=None, kind=SubKind.CHAIN, ctor=stmt.iter, line=self.ctx.line(stmt), origin=self.origin, chain=chain)
            self.local_layers[target.value] = element
            return element
        if plan is None or not isinstance(target, cst.Name) or self.in_loop:
            return None
        plan["chained"] = True
        self.local_layers[target.value] = plan["sub"]
        return plan

    def _loop_context(self, stmt) -> LoopContext | None:
        """A loop `__init__` can replay: a `for` over something fields determine, not
        nested in another loop or under a condition on call arguments."""
        if not isinstance(stmt, cst.For) or self.in_loop or self.dynamic_guard or stmt.asynchronous is not None:
            return None
        if exits_early(stmt.body):
            return None  # `continue`/`break`: some iterations build nothing, which __init__ cannot replay
        used: list[str] = []
        iter_src = try_static(stmt.iter, self.scope, used)
        if iter_src is None:
            return None
        index_var = None
        it = stmt.iter
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name):
            args = [a for a in it.args if a.keyword is None]
            if it.func.value == "range" and isinstance(stmt.target, cst.Name):
                if len(args) == 1 or (len(args) == 2 and code(args[0].value).strip() == "0"):
                    index_var = stmt.target.value
            elif it.func.value == "enumerate" and len(it.args) == 1 and isinstance(stmt.target, cst.Tuple):
                first = stmt.target.elements[0].value
                if isinstance(first, cst.Name):
                    index_var = first.value
        header = f"for {code(stmt.target)} in {iter_src}:"
        return LoopContext(stmt, index_var, header, self.ctx.line(stmt), self.hoist_list(used), iter_src)

    def small(self, small: cst.CSTNode, line_node) -> None:
        if self.origin == "setup":
            self.conv.note_append_chain(self, small, line_node)
        if self.origin == "setup" and isinstance(small, cst.Assign) and self.conv.setup_assignment(self, small):
            return
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            value = small.value
            if value is None:
                return
            self.expr(value)
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                construct = transform_of(self.ctx.imports, value) if isinstance(target, cst.Name) and isinstance(value, cst.Call) else None
                if construct is not None and self.origin in ("compact", "setup"):
                    # `ScanBlock = nn.scan(Block, ...)`: followed to its constructions (built
                    # in __init__, called through the NNX transform); in setup only where it
                    # binds once, outside loops and conditions
                    once = self.origin == "compact" or (self.in_loop == 0 and not self.guards and not self.dynamic_guard)
                    if construct.bindable and once and construct.wrapped_class(value) is not None:
                        self.conv.transform_bindings[target.value] = (construct, value)
                        self.conv.dropped_statements.add(line_node)
                        continue
                    self.conv.todo(value, f"{target.value} = {code(value.func)}(...)", "a Linen transform of a class bound to a local in a form the tool does not follow: build the module in __init__ and run it through the NNX transform by hand")
                if isinstance(target, cst.Name):
                    name = target.value
                    if self.origin == "setup" and self.in_loop == 0 and not self.guards and not self.dynamic_guard:
                        self.conv.setup_local_sources[name] = code(value)
                    self.conv.partials.pop(name, None)
                    if self.origin == "compact" and self.in_loop == 0 and not self.guards and not self.dynamic_guard and isinstance(value, cst.Call) and self.ctx.imports.qualify(value.func) == "functools.partial" and self.conv.factory_base(value) is not None:
                        self.conv.partials[name] = value
                        self.conv.partial_statements[name] = line_node
                    bound = self._module_value(value)
                    if bound is not None:
                        self.local_layers[name] = bound
                    else:
                        self.local_layers.pop(name, None)
                    self.scope.aliases.pop(name, None)
                    if may_be_literal(value) and is_literal(code(value)):
                        self.scope.literals[name] = value
                    else:
                        self.scope.literals.pop(name, None)
                    last_dim = last_dim_of(value)
                    if last_dim is not None and isinstance(self.scope.env.get(last_dim), str):
                        # `features = x.shape[-1]`: a size __init__ knows
                        self.scope.aliases[name] = self.scope.env[last_dim]
                    if _self_method_call(value, "variable"):
                        self.variable_locals.add(name)
                    self.scope.env[name] = self.size_of(value)
                    whole = self.size_of.shape_of(value)
                    if whole is not None:
                        self.scope.shapes[name] = whole
                    else:
                        self.scope.shapes.pop(name, None)
                    deps: list[str] = []
                    # directly in the body of a loop __init__ replays (`strides = (2, 2) if i == 0
                    # else (1, 1)`): recomputed there, inside the replayed loop
                    in_replayed_loop = bool(self.loops) and self.in_loop == len(self.loops) == 1 and not self.guards
                    src = try_static(value, self.scope, deps) if (self.in_loop == 0 or in_replayed_loop) and self.dynamic_guard == 0 and self.origin == "compact" else None
                    if src is not None and self.in_loop:
                        self.conv.loop_statics.add((name, src))
                        self.loop_static_names.add(name)
                    if src is not None and self.guards:
                        # assigned under conditions on fields: __init__ computes it at its top,
                        # so it takes this value only where the conditions hold, and keeps the
                        # one it had before elsewhere (None: Linen never read it there)
                        previous = self.scope.static.get(name)
                        test = self.guards[0] if len(self.guards) == 1 else " and ".join(f"({g})" for g in self.guards)
                        src = f"({src}) if {test} else {f'({previous[0]})' if previous else 'None'}"
                        deps = [*deps, *(d for d, _ in (previous[1] if previous else []))]
                    if src is not None:
                        # __init__ recomputes it: its source as of this line, and what it needs
                        self.scope.static[name] = (src, self.hoist_list(deps))
                    else:
                        self.scope.static.pop(name, None)
                else:
                    # the value's size before its targets are rebound (`x, a = layer(x)`)
                    size = self.size_of(value)
                    names: set[str] = set()
                    _targets(target, names)
                    for name in names:
                        self.scope.env[name] = None
                        self.scope.static.pop(name, None)
                        self.scope.shapes.pop(name, None)
                    for name in names:
                        self.local_layers.pop(name, None)
                        self.scope.aliases.pop(name, None)
                        self.scope.literals.pop(name, None)
                    if (
                        isinstance(target, (cst.Tuple, cst.List)) and target.elements
                        and isinstance(target.elements[-1].value, cst.Name)
                        and isinstance(value, cst.Attribute) and value.attr.value == "shape"
                        and isinstance(value.value, cst.Name)
                        and isinstance(self.scope.env.get(value.value.value), str)
                    ):
                        # `batch, height, width, channels = x.shape`
                        self.scope.aliases[target.elements[-1].value.value] = self.scope.env[value.value.value]
                    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(size, tuple) and len(size) == len(target.elements):
                        for el, el_size in zip(target.elements, size, strict=False):
                            if isinstance(el.value, cst.Name):
                                self.scope.env[el.value.value] = el_size
                    self.expr(target)
        elif isinstance(small, cst.Return) and small.value is not None:
            self.expr(small.value)
            self.return_sizes[small] = self.size_of(small.value)
        elif isinstance(small, cst.AugAssign):
            self.expr(small.value)
            if isinstance(small.target, cst.Name):
                name = small.target.value
                self.scope.static.pop(name, None)
                self.scope.shapes.pop(name, None)
                self.scope.literals.pop(name, None)
                if isinstance(small.operator, cst.MatrixMultiplyAssign):
                    self.scope.env[name] = None
        else:
            for child in children_in_order(small):
                self.expr(child)

    def _module_value(self, value: cst.BaseExpression) -> Sub | None:
        """The submodule an expression names: a construction, a module held in a field
        (`self.shared_embedding`, which the caller passed), or either of two under a field
        test (`nn.Embed(...) if self.shared is None else self.shared`)."""
        sub = self.conv.sub_by_node.get(value)
        if sub is not None:
            return sub
        field_attr = _self_attr(value)
        if field_attr is not None and field_attr in self.scope.fields and field_attr not in self.conv.subs_by_attr:
            return Sub(attr=None, kind=SubKind.FIELD, ctor=value, line=self.ctx.line(value), origin=self.origin, field_name=field_attr)
        if isinstance(value, cst.IfExp) and self.in_loop == 0:
            cond, cond_hoist = self.static_test(value.test)
            a, b = self._module_value(value.body), self._module_value(value.orelse)
            if cond is not None and a is not None and b is not None:
                return Sub(attr=None, kind=SubKind.EITHER, ctor=value, line=self.ctx.line(value), origin=self.origin, either=(cond, a, b), hoist=cond_hoist)
        return None
