"""Parameters and variables: `self.param(name, init, *args)`, `self.variable(collection, name, init, *args)`, `self.has_variable(collection, name)`.

What: each site becomes an attribute built in `__init__`: `nnx.Param(init(rngs.params(),
*args))` for a parameter, the collection's variable type for a variable (`nnx.BatchStat`
for 'batch_stats', a generated `nnx.Variable` subclass for a custom collection); the call
site reads the attribute (`self.w[...]`). A parameter made in `setup` keeps its setup
attribute, renamed to Linen's name where nothing else reads it. `self.has_variable(col,
name)` of a variable the class creates becomes `hasattr(self, 'name')`.

Why: NNX variables are created eagerly in the constructor; Linen creates them at `init`.

Before:
    w = self.param('w', nn.initializers.lecun_normal(), (x.shape[-1], self.features))

After:
    # __init__
    self.w = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (in_features, self.features)))
    # __call__
    w = self.w[...]

Reported: a name, collection or init function that is not a literal, an initializer that
depends on call arguments, a variable with no init function, one created in a loop or
under a condition on call arguments, a name used twice, and `has_variable` of a variable
the class never creates.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs.base import SelfCallConstruct
from nnx_migrate.rewrite.classes.model import VarDef
from nnx_migrate.rewrite.nodes import self_attr, string_value
from nnx_migrate.rewrite.sizes import NotStatic, code, translate_static


class Variables(SelfCallConstruct):
    title = "Parameters and variables (`self.param`, `self.variable`, `self.has_variable`)"
    methods = frozenset({"param", "variable", "has_variable"})
    order = 10

    def walk(self, conv, walker, node, method) -> bool:
        if method == "has_variable":
            if len(node.args) == 2 and all(a.keyword is None and string_value(a.value) is not None for a in node.args):
                conv.has_variable_calls.append(node)  # decided once every variable site is known (finish)
                return True
            return False
        for arg in node.args:
            walker.expr(arg.value)
        _var_site(conv, node, method, walker)
        return True

    def finish(self, conv) -> None:
        # `self.has_variable(col, name)` of a variable this class creates: NNX builds it in
        # __init__ (under the same conditions on fields), so the question is whether the
        # attribute exists - what Linen answers after `init`. (NNX has no init pass, where
        # Linen answers False.)
        for node in conv.has_variable_calls:
            collection, name = (string_value(a.value) for a in node.args)
            site = conv.var_attrs.get(name)
            if site is None or site.collection != collection:
                conv.todo(node, "self.has_variable()", f"no '{collection}' variable '{name}' is created in this class: no NNX counterpart is generated")
                continue
            conv.has_variable_attrs[node] = site.attr

    def call_source(self, rewriter, original, updated, method):
        conv = rewriter.conv
        if original in conv.has_variable_attrs:
            return templates.parse_expression(f"hasattr(self, {conv.has_variable_attrs[original]!r})")
        site = conv.var_by_node.get(original)
        if site is None:
            return None
        if site.collection == "params" and self_attr(original.func) == "param":
            return templates.parse_expression(f"self.{site.attr}[...]")
        return templates.parse_expression(f"self.{site.attr}")


def _var_site(conv, node: cst.Call, method: str, walker) -> None:
    args = list(node.args)
    if method == "param":
        name = string_value(args[0].value) if args else None
        rest = args[1:]
        collection = "params"
    else:
        collection = string_value(args[0].value) if args else None
        name = string_value(args[1].value) if len(args) > 1 else None
        rest = args[2:]
    if name is None or (method == "variable" and collection is None) or not rest or any(a.keyword is not None or a.star for a in rest):
        conv.todo(node, f"self.{method}(...)", "name, collection or init function is not a literal the tool can read")
        return
    init, init_args = rest[0].value, [a.value for a in rest[1:]]
    used: list[str] = []
    try:
        if walker.origin == "compact":
            init_src = translate_static(init, walker.scope, used)
            arg_src = [translate_static(a, walker.scope, used) for a in init_args]
        else:
            init_src, arg_src = code(init), [code(a) for a in init_args]
    except NotStatic as exc:
        conv.todo(node, f"self.{method}('{name}')", f"its initializer {exc}")
        return
    hoist = walker.hoist_list(used) if walker.origin == "compact" else []
    if not isinstance(init, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        init_src = f"({init_src})"  # a lambda is called as Linen calls it
    vtype = conv.ctx.variable_type(collection)
    if method == "param":
        call_src = f"{init_src}({', '.join(['rngs.params()', *arg_src])})"
    else:
        if isinstance(init, cst.Name) and init.value == "None":
            conv.todo(node, f"self.variable('{collection}', '{name}')", "no init function")
            return
        call_src = f"{init_src}({', '.join(arg_src)})"
    site = VarDef(attr=name, collection=collection, init_code=f"{vtype}({call_src})", line=conv.ctx.line(node), guards=list(walker.guards), hoist=hoist)
    if walker.in_loop or walker.dynamic_guard:
        conv.todo(node, f"self.{method}('{name}')", "created in a loop or under a condition on call arguments")
    if name in conv.var_attrs and walker.origin == "compact":
        conv.var_by_node[node] = conv.var_attrs[name]
        return
    if name in conv.subs_by_attr or name in {f.name for f in conv.shape.fields}:
        conv.todo(node, f"self.{method}('{name}')", f"attribute name '{name}' is used twice")
    conv.var_by_node[node] = site
    site.order = conv.next_order()
    conv.var_attrs[name] = site
    conv.vars.append(site)
