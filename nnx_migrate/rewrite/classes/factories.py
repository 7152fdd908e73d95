"""Layer factories of a class: fields and local partials that build layers."""

from __future__ import annotations

from dataclasses import replace as _replace
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.classes.context import qual_layer
from nnx_migrate.rewrite.classes.helpers import binding_counts, free_names
from nnx_migrate.rewrite.classes.model import Factory, Sub
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.sizes import NotStatic, code, translate_static
from nnx_migrate.rewrite.visitors import FastVisitor

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.walker import BodyWalker


class FactoryAnalysis:
    """Layer factories (the "ModuleDef" pattern): fields and local partials that build layers."""

    # ---- layer factories (the "ModuleDef" pattern) -----------------------------------
    def factory_of(self, func: cst.BaseExpression) -> Factory | None:
        """`self.conv` (a field defaulting to a Linen layer or a partial of one) or a
        compact local `conv = partial(<such a field or Linen layer>, ...)`."""
        if isinstance(func, cst.Name) and func.value in self.partials:
            partial = self.partials[func.value]
            base = self.factory_base(partial)
            if base is None:
                return None
            return Factory(base.callee, base.rule, [*base.args, *partial.args[1:]], base.preset, base.field, base.child)
        attr = _self_attr(func)
        if attr is not None:
            return self._field_factory(attr)
        return None

    def _layer_partial(self, value: cst.BaseExpression) -> cst.Call | None:
        """`conv` (a compact local `partial(<Linen layer or factory field>, ...)`) or such a
        partial written in place: the partial call."""
        if isinstance(value, cst.Name) and value.value in self.partials:
            call = self.partials[value.value]
        elif isinstance(value, cst.Call) and self.ctx.imports.qualify(value.func) == "functools.partial":
            call = value
        elif isinstance(value, (cst.Name, cst.Attribute)) and qual_layer(self.ctx, value) in self.ctx.rules.layers:
            # a Linen layer class passed as is: the partial of nothing
            return cst.Call(func=cst.Name("partial"), args=[cst.Arg(value)])
        else:
            return None
        base = self.factory_base(call)
        return call if base is not None and base.rule is not None and not base.args else None

    def _nnx_partial_arg(self, sub: Sub, key: str, value: cst.BaseExpression, walker: BodyWalker) -> str | None:
        """A layer partial passed to a child module (`Block(norm=norm)` with `norm =
        partial(nn.BatchNorm, use_running_average=not train)`) as `__init__` source: the
        NNX partial. Keywords the layer also takes at call time that come from call
        arguments go to the child's call, through the parameter the child takes for them.
        None (with a problem noted) when that cannot be done."""
        call = self._layer_partial(value)
        base = self.factory_base(call)
        rule = base.rule
        child_params = sub.child.call_time_params.get(key, {}) if sub.child is not None else {}
        parts = [base.callee]
        given: set[str] = set()
        moved: dict[str, str] = {}
        counts = None
        for arg in call.args[1:]:
            if arg.star or arg.keyword is None:
                sub.problems.append(f"argument '{key}': a partial with positional or * arguments")
                return None
            k = arg.keyword.value
            if k in rule.unsupported:
                sub.problems.append(f"argument '{key}': {rule.linen}'s '{k}' has no NNX counterpart")
                return None
            used: list[str] = []
            try:
                v = translate_static(arg.value, walker.scope, used)
            except NotStatic as exc:
                if counts is None:
                    counts = binding_counts(self.shape.compact) if self.shape.compact is not None else {}
                free = free_names(arg.value)
                params = {p.name.value for p in self.shape.compact.params.params} if self.shape.compact is not None else set()
                steady = all(n in params and counts.get(n, 0) == 1 for n in free)
                if k in rule.call_time and k in child_params and steady:
                    moved[child_params[k]] = code(arg.value)  # the same value at the child's call
                    continue
                why = ""
                if k in rule.call_time:
                    why = f"; {sub.child.name} takes no '{k}' at call time" if k not in child_params else "; it reads names other than call arguments never rebound"
                sub.problems.append(f"argument '{key}': the partial's '{k}' {exc}{why}")
                return None
            for pair in walker.hoist_list(used):
                if pair not in sub.hoist:
                    sub.hoist.append(pair)
            parts.append(f"{rule.rename.get(k, k)}={v}")
            given |= {k, rule.rename.get(k, k)}
        if base.field is None:
            # a direct construction's explicit defaults (the field's default carries its own)
            parts += [f"{k}={v}" for k, v in rule.defaults.items() if k not in given]
        sub.call_kwargs.update(moved)
        if isinstance(value, cst.Name) and value.value in self.partials:
            self.partial_passes[value.value] = self.partial_passes.get(value.value, 0) + 1
        if len(parts) == 1:
            return parts[0]
        return f"{self.ctx.partial_name()}({', '.join(parts)})"

    def _pass_call_time_on(self, sub: Sub, key: str, attr: str) -> None:
        """`Block(norm=self.norm)` where this class's own `norm` (no default) gets its
        call-time values from its caller's call: they go on to the child's call."""
        if self._field_factory(attr) is None and attr not in self.call_time_params:
            return
        mine = self.call_time_params.get(attr, {})
        for k, child_param in sub.child.call_time_params[key].items():
            if k in mine:
                sub.call_kwargs[child_param] = mine[k]

    def _drop_partials_used_only_to_build(self) -> None:
        """`conv = partial(nn.Conv, ...)` whose every use builds a layer (now built in
        __init__): the binding goes. Otherwise it stays, and so does its Linen class."""
        if not self.partials or self.shape.compact is None:
            return
        uses: dict[str, int] = {}

        class Uses(FastVisitor):
            def visit_Attribute(self, node: cst.Attribute):
                self.walk(node.value)
                return False

            def visit_Arg(self, node: cst.Arg):
                self.walk(node.value)  # (not the keyword: `conv=conv` uses `conv` once)
                return False

            def visit_Name(self, node: cst.Name):
                uses[node.value] = uses.get(node.value, 0) + 1

        Uses().walk(self.shape.compact.body)
        for name, stmt in self.partial_statements.items():
            builds = sum(1 for sub in self.subs if isinstance(sub.ctor.func, cst.Name) and sub.ctor.func.value == name)
            builds += self.partial_passes.get(name, 0)  # passed to a child as an NNX partial
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and uses.get(name, 0) == 1 + builds:
                self.dropped_statements.add(stmt)  # statements MethodRewriter drops

    def factory_base(self, partial: cst.Call) -> Factory | None:
        """What `partial(X, ...)` wraps: a Linen layer class (built inline) or a factory field."""
        if not partial.args or partial.args[0].keyword is not None or partial.args[0].star:
            return None
        base = partial.args[0].value
        attr = _self_attr(base)
        if attr is not None:
            return self._field_factory(attr)
        if isinstance(base, cst.Call):
            return None
        child = self.ctx.module_class(base)
        if child is not None:
            return Factory(code(base), None, [], {}, child=child)
        qual = qual_layer(self.ctx, base)
        if qual in self.ctx.rules.layers:
            rule = self.ctx.rules.layers[qual]
            return Factory(f"nnx.{rule.nnx_name}", rule, [], {})
        return None

    def inferred_value(self, attr: str):
        """What every construction in the file passes to a field without a default
        (`field_values.Inferred`), or None."""
        fld = next((f for f in self.shape.fields if f.name == attr), None)
        if fld is None or fld.default_code is not None or self.ctx.field_values is None:
            return None
        return self.ctx.field_values.infer(self.name, attr)

    def _inferred_factory(self, attr: str) -> Factory | None:
        """A factory field without a default that every construction sets alike: a Linen
        layer (or partials of it) converts as if it were the default (the signature keeps
        the field required); module classes of the run when their constructors agree."""
        inferred = self.inferred_value(attr)
        if inferred is None:
            return None
        if inferred.kind == "class":
            summaries = [self.ctx.module_class(cst.Name(c)) for c in inferred.classes]
            if any(s is None for s in summaries):
                return None
            first = summaries[0]
            shape = lambda s: ([f.name for f in s.fields], s.size_params, s.size_param_args, s.optional_size_params, s.field_out_params, s.call_time_params)  # noqa: E731
            if any(shape(s) != shape(first) for s in summaries[1:]):
                return None
            out_sizes = {repr(s.out_size) for s in summaries}
            merged = _replace(
                first,
                out_size=first.out_size if len(out_sizes) == 1 else None,
                has_todos=any(s.has_todos for s in summaries),
                decides_mode=any(s.decides_mode for s in summaries),
            )
            if len(summaries) > 1:
                self.multi_class_fields[attr] = tuple(inferred.classes)
            return Factory(f"self.{attr}", None, [], {}, field=attr, child=merged)
        if inferred.kind != "layer":
            return None
        cls = cst.parse_expression(inferred.base)
        rule = self.ctx.rules.layers.get(qual_layer(self.ctx, cls))
        if rule is None or any(k not in rule.linen_args or k in rule.unsupported for k in inferred.presets):
            return None
        if inferred.call_time:
            method = self.shape.compact
            if method is None or method.name.value != "__call__" or isinstance(method.params.star_kwarg, cst.Param):
                return None  # the caller's call-time values would have no parameter to come through
            params = self.call_time_params.setdefault(attr, {})
            taken = {p.name.value for p in [*method.params.params, *method.params.kwonly_params]} if method is not None else set()
            taken |= {p for others in self.call_time_params.values() for p in others.values()}
            for key in sorted(inferred.call_time):
                if key not in params:
                    params[key] = key if key not in taken else f"{attr}_{key}"
                    taken.add(params[key])
        return Factory(f"self.{attr}", rule, [], dict(inferred.presets), field=attr)

    def _field_factory(self, attr: str) -> Factory | None:
        fld = next((f for f in self.shape.fields if f.name == attr), None)
        if fld is None:
            return None
        if fld.default_code is None:
            return self._inferred_factory(attr)
        try:
            default = cst.parse_expression(fld.default_code)
        except cst.ParserSyntaxError:
            return None
        keywords: dict[str, str] = {}
        cls = default
        if isinstance(default, cst.Call) and self.ctx.imports.qualify(default.func) == "functools.partial" and default.args:
            if any(a.keyword is None or a.star for a in default.args[1:]) or default.args[0].keyword is not None:
                return None  # positional presets would shift NNX's (in_features first) arguments
            cls = default.args[0].value
            keywords = {a.keyword.value: code(a.value) for a in default.args[1:]}
        if isinstance(cls, cst.Call):
            return None
        child = self.ctx.module_class(cls)
        if child is not None:
            if any(k not in {f.name for f in child.fields} for k in keywords):
                return None
            return Factory(f"self.{attr}", None, [], keywords, field=attr, child=child)
        qual = qual_layer(self.ctx, cls)
        if qual not in self.ctx.rules.layers:
            return None
        rule = self.ctx.rules.layers[qual]
        if any(k not in rule.linen_args or k in rule.unsupported for k in keywords):
            return None
        nnx_cls = f"nnx.{rule.nnx_name}"
        # The default builds what a direct construction builds: with the rule's explicit
        # defaults where the libraries differ (LSTMCell's recurrent_kernel_init=orthogonal(),
        # BatchNorm's use_running_average=None), since __init__ calls the field without them.
        given = {rule.rename.get(k, k) for k in keywords} | set(keywords)
        kw = "".join(f", {rule.rename.get(k, k)}={v}" for k, v in keywords.items())
        kw += "".join(f", {k}={v}" for k, v in rule.defaults.items() if k not in given)
        if isinstance(default, cst.Call):
            self.factory_fields[attr] = f"{code(default.func)}({nnx_cls}{kw})"
        elif kw:
            self.factory_fields[attr] = f"{self.ctx.partial_name()}({nnx_cls}{kw})"
        else:
            self.factory_fields[attr] = nnx_cls
        return Factory(f"self.{attr}", rule, [], keywords, field=attr)
