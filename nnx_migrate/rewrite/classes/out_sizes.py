"""Sizes of a class's submodules: inputs at their calls, outputs after them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite import recurrent
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.sizes import NotStatic, code, scalar, substitute_names
from nnx_migrate.rewrite.classes.model import Sub, SubKind
from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.helpers import is_literal

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class SizeAnalysis:
    """Input sizes at a submodule's call and the output size it gives."""

    # ---- sizes ------------------------------------------------------------------
    def call_in_sizes(self, sub: Sub, call: cst.Call, walker: BodyWalker) -> dict[str, str | None]:
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        if sub.kind == SubKind.LAYER and sub.rule.cell_arg:
            # the cell's step input is a time slice of the sequence: the same last dimension;
            # its carry is `initial_carry=` when given
            size = scalar(walker.size_of(positional[0])) if positional else None
            carry = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "initial_carry"), None)
            carry_size = scalar(walker.size_of(carry)) if carry is not None else None
            for member in sub.members:
                if member.kind == SubKind.LAYER:
                    member.in_sizes = {member.rule.in_size: size} if member.rule.in_size else {}
                    if (carry is not None and member.rule.initialize_carry and not member.foreign_carry
                            and not self._own_carry(member, member.ctor, carry, walker)):
                        member.foreign_carry = True
                        member.problems.append(recurrent.FOREIGN_CARRY.format(cell=member.rule.linen, carry=code(carry)))
                elif member.kind == SubKind.CHILD:
                    member.in_sizes = {p: {0: carry_size, 1: size}.get(member.child.size_param_args.get(p)) for p in member.child.size_params}
            return {}
        if sub.kind == SubKind.LAYER:
            if sub.rule.initialize_carry and positional and not sub.foreign_carry and not self._own_carry(sub, call, positional[0], walker):
                sub.foreign_carry = True
                sub.problems.append(recurrent.FOREIGN_CARRY.format(cell=sub.rule.linen, carry=code(positional[0])))
            if not sub.rule.in_size:
                return {}
            idx = sub.rule.input_arg
            size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
            return {sub.rule.in_size: size}
        if sub.kind == SubKind.CHILD:
            sizes = {}
            keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
            for param in sub.child.size_params:
                idx = sub.child.size_param_args.get(param)
                name = sub.child.size_param_names.get(param)
                arg = positional[idx] if idx is not None and idx < len(positional) else keywords.get(name) if name else None
                if param in sub.child.optional_size_params and (arg is None or (isinstance(arg, cst.Name) and arg.value == "None")):
                    sizes[param] = "None"  # the argument is not given: the child's default
                    continue
                sizes[param] = scalar(walker.size_of(arg)) if arg is not None else None
            return sizes
        if sub.construct is not None:
            return sub.construct.in_sizes(self, sub, call, walker, positional)
        return {}
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
        if call is not None:
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            if sub.kind == SubKind.LAYER:
                idx = sub.rule.input_arg
                in_size = scalar(walker.size_of(positional[idx])) if idx < len(positional) else None
            elif positional:
                in_size = scalar(walker.size_of(positional[0]))
        if sub.kind == SubKind.LAYER and sub.rule.cell_arg:
            return self._rnn_out_size(sub, call, in_size)
        if sub.kind == SubKind.LAYER and sub.rule.initialize_carry:
            # a recurrent cell returns (carry, output); the output has the carry's size
            return (None, None if sub.foreign_carry else self._layer_out_size(sub, in_size))
        if sub.kind == SubKind.LAYER:
            return self._layer_out_size(sub, in_size)
        if sub.kind == SubKind.CHILD:
            out = sub.child.out_size
            if isinstance(out, tuple):
                return tuple(self._child_size(sub, o, in_size) for o in out)
            return self._child_size(sub, out, in_size)
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
        if sub.construct is not None:
            return sub.construct.out_size(self, sub, walker, in_size)
        return None

    def _layer_out_size(self, sub: Sub, in_size):
        rule = sub.rule
        if rule.out_size == "input":
            return in_size
        if not rule.out_size:
            return None
        preset = sub.factory.preset if sub.factory is not None else {}
        if rule.out_size not in sub.arg_code and rule.out_size in preset:
            return preset[rule.out_size]
        if rule.out_size in sub.arg_code and not sub.args_unsure:
            value = sub.arg_code[rule.out_size]
            return None if value.strip() == "None" and rule.out_default != "input" else (in_size if value.strip() == "None" else value)
        if rule.out_size not in sub.arg_code and rule.out_default == "input":
            return in_size
        return None

    def _rnn_out_size(self, sub: Sub, call: cst.Call | None, in_size):
        """nn.RNN: the cell's step output size; `(carry, outputs)` with return_carry."""
        member = sub.members[0] if sub.members else None
        step = None
        if member is not None and not member.problems and member.kind == SubKind.LAYER and member.rule.initialize_carry:
            step = member.arg_code.get("features")  # Linen's cells output their hidden state
        elif member is not None and member.kind == SubKind.CHILD and isinstance(member.child.out_size, tuple) and len(member.child.out_size) == 2:
            step = self._child_size(member, member.child.out_size[1], in_size)
        flag = sub.arg_code.get("return_carry", "False").strip()
        if call is not None:
            flag = next((code(a.value).strip() for a in call.args if a.keyword is not None and a.keyword.value == "return_carry"), flag)
        if flag == "True":
            return (None, step)
        return step if flag == "False" else None

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
        if sub.construct is not None or sub.origin == "setup":
            for member in sub.members:  # (compact members are subs of their own)
                self._check_sizes(member)
        needed: list[str] = []
        if sub.kind == SubKind.LAYER and sub.rule.in_size:
            needed = [sub.rule.in_size]
        elif sub.kind == SubKind.CHILD:
            needed = list(sub.child.size_params)
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
