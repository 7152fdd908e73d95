"""Parameters and variables of a class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.nodes import string_value as _string_value
from nnx_migrate.rewrite.sizes import NotStatic, code, translate_static
from nnx_migrate.rewrite.classes.model import VarDef

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class VariableAnalysis:
    """`self.param` / `self.variable` sites and `self.has_variable` questions."""

    def var_site(self, node: cst.Call, method: str, walker: BodyWalker) -> None:
        args = list(node.args)
        if method == "param":
            name = _string_value(args[0].value) if args else None
            rest = args[1:]
            collection = "params"
        else:
            collection = _string_value(args[0].value) if args else None
            name = _string_value(args[1].value) if len(args) > 1 else None
            rest = args[2:]
        if name is None or (method == "variable" and collection is None) or not rest or any(a.keyword is not None or a.star for a in rest):
            self.todo(node, f"self.{method}(...)", "name, collection or init function is not a literal the tool can read")
            return
        init, init_args = rest[0].value, [a.value for a in rest[1:]]
        used: list[str] = []
        hoist: list[str] = []
        try:
            if walker.origin == "compact":
                init_src = translate_static(init, walker.scope, used)
                arg_src = [translate_static(a, walker.scope, used) for a in init_args]
            else:
                init_src, arg_src = code(init), [code(a) for a in init_args]
        except NotStatic as exc:
            self.todo(node, f"self.{method}('{name}')", f"its initializer {exc}")
            return
        hoist = walker.hoist_list(used) if walker.origin == "compact" else []
        if not isinstance(init, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            init_src = f"({init_src})"  # a lambda is called as Linen calls it
        vtype = self.ctx.variable_type(collection)
        if method == "param":
            call_src = f"{init_src}({', '.join(['rngs.params()', *arg_src])})"
        else:
            if isinstance(init, cst.Name) and init.value == "None":
                self.todo(node, f"self.variable('{collection}', '{name}')", "no init function")
                return
            call_src = f"{init_src}({', '.join(arg_src)})"
        site = VarDef(attr=name, collection=collection, init_code=f"{vtype}({call_src})", line=self.ctx.line(node), guards=list(walker.guards), hoist=hoist)
        if walker.in_loop or walker.dynamic_guard:
            self.todo(node, f"self.{method}('{name}')", "created in a loop or under a condition on call arguments")
        if name in self.var_attrs and walker.origin == "compact":
            self.var_by_node[node] = self.var_attrs[name]
            return
        if name in self.subs_by_attr or name in {f.name for f in self.shape.fields}:
            self.todo(node, f"self.{method}('{name}')", f"attribute name '{name}' is used twice")
        self.var_by_node[node] = site
        site.order = self.next_order()
        self.var_attrs[name] = site
        self.vars.append(site)

    def _has_variable_sites(self) -> None:
        """`self.has_variable(col, name)` of a variable this class creates: NNX builds it in
        __init__ (under the same conditions on fields), so the question is whether the
        attribute exists - what Linen answers after `init`. (NNX has no init pass, where
        Linen answers False.)"""
        for node in self.has_variable_calls:
            collection, name = (_string_value(a.value) for a in node.args)
            site = self.var_attrs.get(name)
            if site is None or site.collection != collection:
                self.todo(node, "self.has_variable()", f"no '{collection}' variable '{name}' is created in this class: no NNX counterpart is generated")
                continue
            self.has_variable_attrs[node] = site.attr

    def _setup_var_attr(self, site: VarDef, attr: str, node) -> None:
        if site.attr != attr:
            self.setup_var_names.append((site.attr, attr, node))  # see _honour_setup_names
            self.var_attrs.pop(site.attr, None)
            site.attr = attr
            self.var_attrs[attr] = site
        self.setup_var_attrs[attr] = site
