"""Submodule constructions of a class."""

from __future__ import annotations

import keyword
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.naming import nnx_attribute_name
from nnx_migrate.rewrite.classes.constructs import (
    ModuleTransform,
    construct_of_kind,
    submodule_construct,
    transform_of,
)
from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.helpers import list_element_name
from nnx_migrate.rewrite.classes.model import Sub, SubKind
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.nodes import string_value as _string_value
from nnx_migrate.rewrite.sizes import NotStatic, code, translate_static

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class SubmoduleAnalysis:
    """Submodule constructions: what a call builds, its Linen name, its arguments as `__init__` source."""

    def transform_at(self, call: cst.Call) -> tuple[ModuleTransform, cst.Call] | None:
        """The Linen transform of a class behind a construction (constructs/): the
        `nn.remat(Block)` of `nn.remat(Block)(...)`, or the `nn.scan(Block, ...)` of
        `ScanBlock(...)` with `ScanBlock = nn.scan(Block, ...)` earlier in the method."""
        func = call.func
        if isinstance(func, cst.Name) and func.value in self.transform_bindings:
            return self.transform_bindings[func.value]
        if isinstance(func, cst.Call):
            construct = transform_of(self.ctx.imports, func)
            if construct is not None:
                return construct, func
        return None

    def class_expr(self, call: cst.Call) -> cst.BaseExpression:
        """The class a construction builds: `Block` for `Block(...)` and for a transform of
        Block (`nn.remat(Block)(...)`: built as Block, called through the NNX transform)."""
        found = self.transform_at(call)
        if found is not None:
            wrapped = found[0].wrapped_class(found[1])
            if wrapped is not None:
                return wrapped
        return call.func

    def construction_kind(self, call: cst.Call) -> str | None:
        factory = self.factory_of(call.func)
        if factory is not None:
            return SubKind.LAYER if factory.rule is not None else SubKind.CHILD
        func = self.class_expr(call)
        qual = qual_layer(self.ctx, func)
        if isinstance(func, cst.Call):
            return None
        construct = submodule_construct(self, func, qual)
        return construct.kind if construct is not None else None

    def new_sub(self, ctor: cst.Call, walker: BodyWalker) -> Sub:
        if ctor in self.sub_by_node:
            return self.sub_by_node[ctor]
        kind = self.construction_kind(ctor)
        sub = Sub(attr=None, kind=kind, ctor=ctor, line=self.ctx.line(ctor), origin=walker.origin, guards=list(walker.guards))
        if walker.origin == "compact":
            sub.hoist = walker.context_hoists()  # what its guards and input sizes use
        transform = self.transform_at(ctor)
        if transform is not None and self.class_expr(ctor) is not ctor.func:
            sub.transform = transform[0]
        sub.construct = construct_of_kind(kind)
        linen_class = sub.construct.analyse(self, sub, ctor, walker)
        sub.linen_class = linen_class
        if sub.transform is not None:
            linen_class = sub.transform.prefix_of(self.ctx.imports.qualify(transform[1].func)) + linen_class  # the class the transform makes
            sub.transform.analyse(self, sub, transform[1], walker)
        explicit = None
        name_arg = None
        for arg in ctor.args:
            if arg.keyword is not None and arg.keyword.value == "name":
                name_arg = arg.value
                explicit = _string_value(arg.value)
        loop = walker.loops[-1] if walker.loops and walker.in_loop == len(walker.loops) else None
        list_name = list_element_name(name_arg, loop.index_var) if loop is not None and name_arg is not None else None
        # a container built where it is called holds no state of its own: its Linen name names nothing
        sub.at_call = walker.origin == "compact" and sub.construct.built_at_call(self, sub, walker)
        if name_arg is not None and explicit is None and list_name is None and not sub.at_call:
            why = "name= is not a string literal" + (" or an f-string '<list>_{i}' over the loop counter" if walker.in_loop else "")
            if walker is self.setup_walker:
                sub.problems.append(why)  # reported with the setup attribute it is bound to
            else:
                # reported at once: a compact submodule left without an attribute is never
                # listed with the others
                self.todo(ctor, f"{code(ctor.func)}(..., name=...)", f"{why}: the NNX attribute name is unknown; build it in __init__ by hand")
        if sub.at_call:
            # its members are the class's own (named, listed and reported as such); in a
            # loop, the sizes the loop carries reach them through its calls
            sub.loop = loop
        elif walker.origin == "compact" or walker is not self.setup_walker:
            if walker.in_loop and list_name is not None:
                # Linen's names list_0, list_1, ... are the elements of the nnx.List `list`.
                sub.attr = list_name
                sub.loop = loop
            elif explicit is None and name_arg is None:
                # Linen names unnamed compact submodules in call order, per class.
                count = self.auto_counts.get(linen_class, 0)
                self.auto_counts[linen_class] = count + 1
                sub.attr = nnx_attribute_name(f"{linen_class}_{count}")
                if walker.origin == "compact":
                    sub.auto_class = linen_class
                    sub.conditional = bool(walker.guards or walker.dynamic_guard)
                if walker.in_loop and loop is not None and walker.origin == "compact":
                    # Dense_0, Dense_1, ... depend on the iteration: see _auto_named_lists
                    sub.loop = loop
            else:
                sub.attr = explicit if explicit is None or explicit.isidentifier() and not keyword.iskeyword(explicit) else nnx_attribute_name(explicit)
            if walker.in_loop and sub.loop is None:
                sub.problems.append("submodule built in a loop without name=f'<list>_{i}' (i counting from 0): Linen's names depend on the iteration; build an nnx.List in __init__ by hand")
            if walker.dynamic_guard:
                sub.problems.append("submodule built under a condition on call arguments; built unconditionally in __init__, check that Linen's init took this branch")
            if walker.origin != "compact":
                sub.problems.append("submodule built outside setup and outside a compact method")
        self.sub_by_node[ctor] = sub
        sub.order = self.next_order()
        # Members of an nn.Sequential built in setup are Sequential's (`body/layers_0`); in a
        # compact body Linen names them as this module's own submodules (`Dense_1`), so
        # they stay attributes here and the NNX Sequential refers to them.
        for member in sub.members if walker.origin != "compact" else ():
            if member.attr is not None and member in self.subs:
                self.subs.remove(member)
                self.subs_by_attr.pop(member.attr, None)
                count = self.auto_counts.get(self._linen_class(member), 1)
                if member.attr == nnx_attribute_name(f"{self._linen_class(member)}_{count - 1}"):
                    self.auto_counts[self._linen_class(member)] = count - 1
            member.attr = None
        if sub.attr is not None:
            if sub.attr in self.subs_by_attr or sub.attr in {f.name for f in self.shape.fields}:
                sub.problems.append(f"attribute name '{sub.attr}' is used twice")
            self.subs_by_attr[sub.attr] = sub
        self.subs.append(sub)
        # Arguments as __init__ source.
        if walker.origin == "compact":
            for key, value in self._linen_kwargs(sub).items():
                if sub.rule is not None and key == sub.rule.cell_arg:
                    continue  # ctor_source refers to the member
                if sub.kind == SubKind.CHILD and self._layer_partial(value) is not None:
                    src = self._nnx_partial_arg(sub, key, value, walker)
                    if src is not None:
                        sub.arg_code[key] = src
                        continue
                if sub.kind == SubKind.CHILD and sub.child is not None and sub.child.call_time_params.get(key) and _self_attr(value) is not None:
                    self._pass_call_time_on(sub, key, _self_attr(value))
                used: list[str] = []
                try:
                    sub.arg_code[key] = translate_static(value, walker.scope, used)
                except NotStatic as exc:
                    if sub.rule is not None and key in sub.rule.call_time:
                        # NNX takes it at call time too: keep Linen's value, evaluated where
                        # Linen evaluated it.
                        sub.call_kwargs[key] = code(value)
                        continue
                    sub.problems.append(f"argument '{key}' {exc}")
                    sub.args_unsure = True
                    sub.arg_code[key] = code(value)
                for pair in walker.hoist_list(used):
                    if pair not in sub.hoist:
                        sub.hoist.append(pair)
        else:
            for key, value in self._linen_kwargs(sub).items():
                if sub.rule is None or key != sub.rule.cell_arg:
                    sub.arg_code[key] = code(value)
        return sub

    @staticmethod
    def member_source(member: Sub) -> str:
        """A container member held as the class's attribute, as the call site reaches it
        (an element of an nnx.List by its index)."""
        if member.list_index is not None:
            return f"self.{member.attr}[{member.list_index}]"
        if member.loop is not None:
            return f"self.{member.attr}[{member.loop.index_var}]"
        return f"self.{member.attr}"

    def keeps_last_dim_field(self, name: str) -> bool:
        """A field whose default is a function that keeps the last axis (`nn.tanh`)."""
        fld = next((f for f in self.shape.fields if f.name == name), None)
        if fld is not None and fld.default_code is None and name not in self.subs_by_attr:
            # no default: the function every construction in the file passes
            inferred = self.inferred_value(name)
            return inferred is not None and inferred.kind == "function" and inferred.key_in(self.ctx.rules.keep_last_dim)
        if fld is None or fld.default_code is None or name in self.subs_by_attr:
            return False
        try:
            default = cst.parse_expression(fld.default_code)
        except cst.ParserSyntaxError:
            return False
        return isinstance(default, (cst.Name, cst.Attribute)) and self.ctx.imports.qualify(default) in self.ctx.rules.keep_last_dim

    def _linen_class(self, sub: Sub) -> str:
        return sub.rule.linen if sub.rule else sub.child.name if sub.child else sub.linen_class

    def _linen_kwargs(self, sub: Sub) -> dict[str, cst.BaseExpression]:
        """The construction's arguments by Linen parameter name (positional resolved)."""
        out: dict[str, cst.BaseExpression] = {}
        if sub.kind == SubKind.LAYER:
            names = sub.rule.linen_args
        elif sub.kind == SubKind.CHILD:
            names = tuple(f.name for f in sub.child.fields)
        else:
            return out
        pos = 0
        args = list(sub.ctor.args)
        if sub.factory is not None:
            args = [*sub.factory.args, *args]
        for arg in args:
            if arg.star:
                sub.problems.append("*args/**kwargs in a submodule construction")
                sub.args_unsure = True
                continue
            if arg.keyword is None:
                if pos < len(names):
                    out[names[pos]] = arg.value
                else:
                    sub.problems.append("more positional arguments than the layer takes")
                    sub.args_unsure = True
                pos += 1
            elif arg.keyword.value not in ("name",):
                out[arg.keyword.value] = arg.value
        return out
