"""Sizes of a class's submodules: inputs at their calls, outputs after them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.helpers import is_literal
from nnx_migrate.rewrite.classes.model import Sub, SubKind
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.sizes import NotStatic, scalar, substitute_names

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class SizeAnalysis:
    """Input sizes at a submodule's call and the output size it gives."""

    # ---- sizes ------------------------------------------------------------------
    def call_in_sizes(self, sub: Sub, call: cst.Call, walker: BodyWalker) -> dict[str, str | None]:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        if sub.construct is not None:
            return sub.construct.in_sizes(self, sub, call, walker, positional)
        return {}

    def _own_carry(self, sub: Sub, call: cst.Call, carry: cst.BaseExpression, walker: BodyWalker) -> bool:
        linen = qual_layer(self.ctx, self.class_expr(sub.ctor))  # also through nn.scan(Cell, ...)
        return recurrent.carry_made_by_features(
            sub.ctor, call.func, sub.rule, carry, walker.method, self.shape.methods,
            lambda func: qual_layer(self.ctx, func) == linen)

    def out_size(self, sub: Sub, call: cst.Call | None, walker: BodyWalker, in_size: str | None = None) -> str | None:
        if sub.alternatives:
            sizes = [self._own_out_size(s, call, walker, in_size) for s in [sub, *sub.alternatives]]
            return sizes[0] if all(size == sizes[0] for size in sizes) else None
        return self._own_out_size(sub, call, walker, in_size)

    def _own_out_size(self, sub: Sub, call: cst.Call | None, walker: BodyWalker, in_size: str | None = None) -> str | None:
        if sub.construct is not None:
            return sub.construct.out_size(self, sub, call, walker, in_size)
        if call is not None:
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            if positional:
                in_size = scalar(walker.size_of(positional[0]))
        if sub.kind == SubKind.CHAIN:
            return sub.chain.var
        if sub.kind == SubKind.EITHER:
            cond, a, b = sub.either
            size_a, size_b = self.out_size(a, call, walker, in_size), self.out_size(b, call, walker, in_size)
            if isinstance(size_a, str) and isinstance(size_b, str):
                if size_a == size_b:
                    return size_a
                walker.note_size_hoists(sub.hoist)
                return f"({size_a}) if ({cond}) else ({size_b})"
            return None
        if sub.kind == SubKind.FIELD:
            # what the caller passed: its output size is the caller's to give
            return self.field_out_params.setdefault(sub.field_name, f"{sub.field_name}_out_features")
        return None

    def _function_size(self, node: cst.BaseExpression, size: str | None) -> str | None:
        return size if self.ctx.imports.qualify(node) in self.ctx.rules.keep_last_dim else None

    def _child_size(self, sub: Sub, out, in_size):
        """A user module's output size (in its own terms: fields, input sizes, literals)
        in the parent's terms: each `self.<field>` becomes the argument this construction
        passes (or the field's literal default), each input size the size this call gives."""
        if isinstance(out, tuple):
            return tuple(self._child_size(sub, o, in_size) for o in out)
        if out is None:
            return None
        if out == "in_features":
            return in_size
        defaults = {f.name: f.default_code for f in sub.child.fields}

        def on_self_attr(fname: str) -> str:
            if fname in sub.arg_code:
                if sub.args_unsure:
                    raise NotStatic("the construction's arguments are not known in __init__")
                return sub.arg_code[fname]
            if sub.factory is not None and fname in sub.factory.preset:
                return sub.factory.preset[fname]
            if is_literal(defaults.get(fname)):
                return defaults[fname]
            raise NotStatic(f"no value for the field '{fname}'")

        def on_name(name: str) -> str:
            size = in_size if name == "in_features" else (sub.in_sizes or {}).get(name)
            if name in sub.child.size_params and size is not None:
                return size
            raise NotStatic(f"the size '{name}' is not known here")

        return substitute_names(out, on_name, on_self_attr)

    def _field_module_sizes(self, sub: Sub) -> None:
        """A child that calls a module held in one of its fields takes that module's
        output size: known when this class passes one of its own submodules (built before
        the child) or a module it holds in a field itself; None when it passes none."""
        defaults = {f.name: f.default_code for f in sub.child.fields}
        kwargs = self._linen_kwargs(sub)
        for fname, param in sub.child.field_out_params.items():
            node = kwargs.get(fname)
            if node is None and (defaults.get(fname) or "").strip() == "None":
                continue  # the child's default: no module
            if isinstance(node, cst.Name) and node.value == "None":
                continue
            size = None
            attr = _self_attr(node) if node is not None else None
            mine = self.subs_by_attr.get(attr) if attr is not None else None
            if mine is not None and mine.order < sub.order:
                size = self.out_size(mine, None, self.setup_walker or self.call_walker, in_size=None)
            elif attr is not None and attr in {f.name for f in self.shape.fields}:
                size = self.field_out_params.setdefault(attr, f"{attr}_out_features")
            sub.field_sizes[param] = size if isinstance(size, str) else None
            if sub.field_sizes[param] is None:
                sub.problems.append(f"'{param}': the output size of the module passed as '{fname}' is not known; it became a constructor argument")

    def _check_sizes(self, sub: Sub) -> None:
        if sub.kind == SubKind.CHILD and sub.child.field_out_params:
            self._field_module_sizes(sub)
        if sub.construct is not None and sub.construct.checks_members or sub.origin == "setup":
            for member in sub.members:  # (compact members are subs of their own)
                self._check_sizes(member)
        needed = sub.construct.needed_sizes(sub) if sub.construct is not None else []
        sizes = sub.in_sizes or {}
        if sub.comp_attr is not None and needed and not self.comp_plans[sub.comp_attr]["chained"]:
            sub.problems.append(f"the elements of self.{sub.comp_attr} may need different input sizes: no method runs them one after the other")
        for param in needed:
            if sizes.get(param) is None:
                if sub.in_sizes is None and sub.attr is not None:
                    why = "the submodule is never called in a way the tool can follow"
                else:
                    why = "the input size cannot be derived from fields or call arguments"
                sub.problems.append(f"'{param}': {why}; it became a constructor argument")
