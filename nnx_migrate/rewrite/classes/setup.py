"""A class's `setup`: attributes, lists of submodules, chains."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.classes.helpers import binding_counts
from nnx_migrate.rewrite.classes.model import AppendChain, Sub, SubKind, VarDef
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.nodes import self_method_call as _self_method_call
from nnx_migrate.rewrite.nodes import string_value as _string_value
from nnx_migrate.rewrite.sizes import NotStatic, code, scalar, substitute_names, try_static
from nnx_migrate.rewrite.visitors import FastVisitor, children_in_order

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class SetupAnalysis:
    """`setup`: attribute assignments, list comprehensions and lists built by appending (run as chains)."""

    def _collect_setup(self, setup: cst.FunctionDef) -> None:
        # Assignments `self.x = ...` are recognised at any depth (under `if`, in loops)
        # by BodyWalker.setup_assignment.
        self.setup_walker.block(setup.body.body)
        self._check_chain_uses(setup)
        # A local's definition stands for it only where nothing else binds it.
        counts = binding_counts(setup)
        self.setup_local_sources = {n: src for n, src in self.setup_local_sources.items() if counts.get(n) == 1}

    def setup_assignment(self, walker: BodyWalker, assign: cst.Assign) -> bool:
        """`self.attr = <submodule | list | self.param | self.variable>` in setup: the
        attribute names the submodule (Linen's name too). True when handled."""
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        attr = _self_attr(target) if target is not None else None
        value = assign.value
        if target is not None and isinstance(target, cst.Name) and isinstance(value, (cst.List, cst.ListComp)):
            walker.list_locals.add(target.value)
        if attr is None:
            return False
        plan = self._list_comp_plan(attr, value, walker) if walker.in_loop == 0 and not walker.guards and not walker.dynamic_guard else None
        if plan is not None:
            self.comp_plans[attr] = plan
            self.list_attrs.add(attr)
            return True
        if isinstance(value, cst.Call) and self.construction_kind(value) is not None:
            for arg in value.args:
                walker.expr(arg.value)
            sub = self.new_sub(value, walker)
            sub.attr = attr
            earlier = self.subs_by_attr.get(attr)
            if earlier is not None and earlier is not sub and earlier.origin == "setup" and earlier.attr == attr and (walker.guards or earlier.guards):
                # `if <field>: self.proj = A(...) else: self.proj = B(...)`: a call of
                # self.proj sizes whichever one setup builds
                group = [earlier, *earlier.alternatives]
                for other in group:
                    other.alternatives = [s for s in [*group, sub] if s is not other]
                sub.alternatives = group
            if walker.in_loop:
                sub.problems.append("submodule assigned in a loop in setup: only the last one is kept, check this is meant")
            self.subs_by_attr[attr] = sub
            for arg in value.args:
                if arg.keyword is not None and arg.keyword.value == "name":
                    chosen = _string_value(arg.value)
                    if chosen != attr:
                        # decided when the whole class is known (_honour_setup_names)
                        self.setup_names.append((sub, attr, chosen, arg.value, walker.in_loop > 0))
            return True
        if isinstance(value, (cst.Dict, cst.DictComp)) and any(
            isinstance(v, cst.Call) and self.construction_kind(v) is not None
            for v in ([value.value] if isinstance(value, cst.DictComp) else [e.value for e in value.elements if isinstance(e, cst.DictElement)])
        ):
            self.dict_attrs.add(attr)  # `self.heads = {'cls': nn.Dense(...)}`: an nnx.Dict
            return False
        if isinstance(value, (cst.List, cst.Tuple, cst.ListComp)) or (isinstance(value, cst.Name) and value.value in walker.list_locals):
            self.list_attrs.add(attr)  # `self.blocks = [...]` / `self.blocks = blocks`
            chain = self.append_chains.get(value.value) if isinstance(value, cst.Name) else None
            if chain is not None:
                if chain.attr is not None or attr in self.chain_by_attr or walker.in_loop or walker.guards or walker.dynamic_guard:
                    chain.problem = "the list is stored more than once or conditionally"
                chain.attr = chain.attr or attr
                self.chain_by_attr[attr] = chain
            return False
        if _self_method_call(value, "param") or _self_method_call(value, "variable"):
            walker.expr(value)
            site = self.var_by_node.get(value)
            if site is not None:
                self._setup_var_attr(site, attr, value)
            return True
        return False

    def _list_comp_plan(self, attr: str, value, walker: BodyWalker):
        """`self.layers = [nn.Dense(f) for f in self.features]`: one construction per
        element of something fields determine. When a method runs the elements as a chain
        (`for layer in self.layers: x = layer(x)`), each element's input size is the
        previous one's output, and __init__ builds the list with that loop."""
        if not isinstance(value, cst.ListComp) or not isinstance(value.elt, cst.Call):
            return None
        comp = value.for_in
        if comp.inner_for_in is not None or comp.ifs or comp.asynchronous is not None:
            return None
        if self.construction_kind(value.elt) not in (SubKind.LAYER, SubKind.CHILD) or try_static(comp.iter, walker.scope, []) is None:
            return None
        walker.in_loop += 1
        try:
            for arg in value.elt.args:
                walker.expr(arg.value)
            sub = self.new_sub(value.elt, walker)
        finally:
            walker.in_loop -= 1
        sub.comp_attr = attr
        return {"sub": sub, "target": code(comp.target), "iter": code(comp.iter), "chained": False}

    # ---- setup lists run as chains ---------------------------------------------------
    def note_append_chain(self, walker: BodyWalker, small: cst.CSTNode, line_node) -> None:
        """`<local> = []` at the top of setup starts a chain; `<local>.append(<submodule>)`
        adds an element (after the walker has seen the construction)."""
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            name = small.targets[0].target.value
            old = self.append_chains.get(name)
            if old is not None:
                old.problem = "the list variable is bound twice"
            elif isinstance(small.value, cst.List) and not small.value.elements and walker.in_loop == 0 and not walker.guards and not walker.dynamic_guard:
                self.append_chains[name] = AppendChain(name, line_node)
            return
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value == "append" and isinstance(func.value, cst.Name) and func.value.value in self.append_chains:
                chain = self.append_chains[func.value.value]
                if any(stmt is line_node for _, stmt in chain.appends):
                    return  # a loop body walked again
                for child in children_in_order(small):
                    walker.expr(child)  # the construction inside, if any, first
                value = call.args[0].value if len(call.args) == 1 and call.args[0].keyword is None else None
                element = None
                if isinstance(value, cst.Call):
                    element = self.sub_by_node.get(value)
                elif isinstance(value, cst.Name):
                    element = walker.local_layers.get(value.value)
                if element is None or element.attr is not None or element.kind not in (SubKind.LAYER, SubKind.CHILD) or any(e is element for e, _ in chain.appends):
                    chain.problem = "an appended element is not a submodule built for this list"
                else:
                    chain.appends.append((element, line_node))

    def _check_chain_uses(self, setup: cst.FunctionDef) -> None:
        """A chain's list is only created, appended to and stored (no insert, extend, ...)."""
        counts: dict[str, int] = {}

        class Uses(FastVisitor):
            def visit_Attribute(self, node: cst.Attribute):
                self.walk(node.value)
                return False

            def visit_Name(self, node: cst.Name):
                counts[node.value] = counts.get(node.value, 0) + 1

        Uses().walk(setup.body)
        bound = binding_counts(setup)
        for chain in self.append_chains.values():
            if counts.get(chain.local, 0) != 1 + len(chain.appends) + (chain.attr is not None):
                chain.problem = chain.problem or "the list is used other than by append"
            var = f"{chain.local}_size"
            while var in bound or var in {c.var for c in self.append_chains.values()}:
                var = "_" + var
            chain.var = var
        self.setup_bound = bound

    def chain_called(self, chain: AppendChain, call: cst.Call, walker: BodyWalker) -> None:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        size = scalar(walker.size_of(positional[0])) if positional else None
        if walker.loop_pass == 3:
            return
        if walker.loop_pass == 2:
            if size != chain.var:
                chain.problem = chain.problem or "the loop over the list does not pass each element's output to the next one"
            return
        first = self._chain_start(size)
        if size is None:
            chain.problem = chain.problem or "the input size of the list's first element is not known"
        elif first is None:
            chain.problem = chain.problem or "the input size of the list's first element is not known where setup builds the list"
        elif chain.used and first != chain.first:
            chain.problem = chain.problem or "the list is run from inputs of different sizes"
        chain.first, chain.used = first, True
        for element, _ in chain.appends:
            sizes = self.call_in_sizes(element, call, walker)
            primary = self._primary_size_param(element)
            if primary is not None:
                sizes[primary] = chain.var
            if element.in_sizes is not None and element.in_sizes != sizes:
                chain.problem = chain.problem or "the list's elements are called with inputs of different sizes"
            element.in_sizes = sizes

    def _chain_start(self, size: str | None) -> str | None:
        """The chain's first input size, if it is valid where the list is created: input
        sizes, fields, literals and module-level names only (no setup locals)."""
        if size is None:
            return None
        fields = {f.name for f in self.shape.fields}
        bound = self.setup_bound

        def on_name(name: str, depth: int = 0) -> str:
            if name in self.setup_local_sources and depth < 8:
                # a setup local bound once from fields: its definition holds anywhere
                inner = substitute_names(self.setup_local_sources[name], lambda n: on_name(n, depth + 1), on_self_attr)
                if inner is not None:
                    return inner
            if name in bound:
                raise NotStatic(f"'{name}' is a setup local")
            return name

        def on_self_attr(attr: str) -> str:
            if attr in fields:
                return f"self.{attr}"
            raise NotStatic(f"'self.{attr}' is not a field")

        return substitute_names(size, on_name, on_self_attr)

    @staticmethod
    def _primary_size_param(sub: Sub) -> str | None:
        if sub.kind == SubKind.LAYER:
            return sub.rule.in_size or None
        if sub.kind == SubKind.CHILD:
            return next((p for p, i in sub.child.size_param_args.items() if i == 0), None)
        return None

    def _finish_chains(self) -> None:
        """Each element's output size after its append; a chain with a problem leaves its
        elements' sizes unknown (constructor arguments, reported)."""
        for chain in self.append_chains.values():
            if not chain.used:
                continue
            if chain.problem is None:
                for element, stmt in chain.appends:
                    out = self.out_size(element, None, self.setup_walker, in_size=chain.var)
                    if not isinstance(out, str):
                        chain.problem = "the output size of an element is not known"
                        break
                    chain.outs[stmt] = out
            if chain.problem is not None:
                chain.outs.clear()
                for element, _ in chain.appends:
                    primary = self._primary_size_param(element)
                    if primary is not None and element.in_sizes is not None:
                        element.in_sizes[primary] = None
                    element.problems.append(f"input sizes along self.{chain.attr}: {chain.problem}")
                continue
            last = max(e.order for e, _ in chain.appends) if chain.appends else -1
            pattern = re.compile(rf"\b{re.escape(chain.var)}\b")
            for sub in self.subs:
                if any(sub is e for e, _ in chain.appends):
                    continue
                for param, size in (sub.in_sizes or {}).items():
                    if isinstance(size, str) and pattern.search(size) and (sub.origin != "setup" or sub.order < last):
                        # built before the list is complete: the carried size is not there yet
                        sub.in_sizes[param] = None

    def _setup_var_attr(self, site: VarDef, attr: str, node) -> None:
        if site.attr != attr:
            self.setup_var_names.append((site.attr, attr, node))  # see _honour_setup_names
            self.var_attrs.pop(site.attr, None)
            site.attr = attr
            self.var_attrs[attr] = site
        self.setup_var_attrs[attr] = site
