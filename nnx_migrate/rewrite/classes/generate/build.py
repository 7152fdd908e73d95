"""Generation of the NNX class."""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.context import LINEN_BASES, is_linen_module_base
from nnx_migrate.rewrite.classes.generate.rewriters import MethodRewriter
from nnx_migrate.rewrite.classes.helpers import with_call_time_params
from nnx_migrate.rewrite.classes.model import ClassSummary, SubKind
from nnx_migrate.rewrite.report import TodoSite
from nnx_migrate.rewrite.visitors import FastTransformer


class SelfAttributeRenamer(FastTransformer):
    """`self.old` -> `self.new` (attribute reads and writes of the class itself)."""

    def __init__(self, renames: dict[str, str]):
        self.renames = renames

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if isinstance(updated.value, cst.Name) and updated.value.value == "self" and updated.attr.value in self.renames:
            return updated.with_changes(attr=cst.Name(self.renames[updated.attr.value]))
        return updated


class ClassBuilder:
    """Generation: the NNX class (its `__init__`, its methods) and its summary."""

    def build(self) -> tuple[cst.ClassDef, ClassSummary]:
        self.leftovers_before = len(self.ctx.renamer.leftover_nodes)
        self.analyse()
        cfg = self.ctx.module.config_for_parsing
        fields = self.shape.fields
        init_lines = self._init_statements(cfg)

        def stmt(src: str) -> cst.BaseStatement:
            return templates.parse_statement(src, config=cfg)

        base = self.shape.base
        # signature
        size_params = self._size_params()
        params_src = self._init_params(fields, size_params)
        if not init_lines:
            init_lines.append(stmt("pass\n"))
        header = f"def __init__(self, {', '.join(params_src)}):\n    pass\n"
        init_def = templates.parse_statement(header, config=cfg)
        init_def = init_def.with_changes(body=init_def.body.with_changes(body=init_lines))
        # Generated code carries Linen names (initializers, activations): rename them.
        init_def = self.ctx.renamer.transform(init_def)
        # methods
        body: list[cst.BaseStatement] = []
        if self.shape.docstring is not None:
            body.append(self.shape.docstring)
        body += [self.ctx.renamer.transform(stmt) for stmt in self.shape.class_level]
        # A blank line after the docstring or fields, as between methods.
        spacing = [cst.EmptyLine(indent=False)] if len(body) > 0 else []
        body.append(init_def.with_changes(leading_lines=[*spacing, *init_def.leading_lines]))  # (TODO comments the renamer put)
        body += self._converted_methods(cfg)
        # Linen API left in this class (no NNX rule): each use is a site to finish.
        for name, node in self.ctx.renamer.leftover_nodes[self.leftovers_before:]:
            self.todos.append(TodoSite(self.ctx.path, self.ctx.line_or(node, self.node), name, self.ctx.renamer.why_left(node)))
        if base is not None and base.has_todos:
            self.todo(self.node, f"class {self.name}({base.name})", f"inherits the TODO sites of {base.name}")
        self.todos = list(dict.fromkeys(self.todos))  # loops are walked twice
        todo_count = len(self.todos)
        if self.attr_renames:  # the class's own uses follow the honoured Linen names
            renamer = SelfAttributeRenamer(self.attr_renames)
            body = [renamer.transform(stmt) for stmt in body]
        new_bases = [b for b in self.node.bases]
        if base is None:
            new_bases = [cst.Arg(value=templates.parse_expression(LINEN_BASES[self.ctx.imports.qualify(b.value)])) if is_linen_module_base(self.ctx, b.value) else b for b in self.node.bases]
        new_bases = [self.ctx.renamer.transform(b) for b in new_bases]
        decorators = [self.ctx.renamer.transform(d) for d in self.node.decorators]
        new_class = self.node.with_changes(bases=new_bases, decorators=decorators, body=self.node.body.with_changes(body=body))
        summary = ClassSummary(
            name=self.name,
            fields=fields,
            size_params=size_params,
            size_param_args=self._size_param_args(size_params),
            optional_size_params=tuple(self._optional_size_params(size_params)),
            field_out_params=dict(self.field_out_params),
            size_param_names=self._size_param_names(size_params),
            out_size=self._portable_out_size(self.return_size, size_params),
            has_todos=bool(todo_count),
            decides_mode=bool(self.mode_calls) or any(sub.child is not None and sub.child.decides_mode for sub in self.subs),
            method_out_sizes=self._method_out_sizes(size_params),
            call_time_params={k: dict(v) for k, v in self.call_time_params.items()},
            foreign=tuple(dict.fromkeys(name for sub in self.subs for name in (
                (self.ctx.imports.qualify(sub.ctor.func),) if sub.kind == SubKind.FOREIGN else sub.child.foreign if sub.child is not None else ()))),
        )
        self.ctx.todos.extend(self.todos)
        return new_class, summary

    def _converted_methods(self, cfg) -> list[cst.BaseStatement]:
        """The class's methods in NNX form (setup went to `__init__`)."""
        body: list[cst.BaseStatement] = []
        rewriter = MethodRewriter(self)
        for method in self._methods_in_order():
            if method is self.shape.setup:
                continue
            transformed = self.method_transforms.get(method.name.value)
            if transformed is not None:
                method = method.with_changes(decorators=[d for d in method.decorators if d is not transformed[1]])
            new = rewriter.transform(method)
            if method is self.shape.compact and self.call_time_params and isinstance(new, cst.FunctionDef):
                new = with_call_time_params(new, [p for params in self.call_time_params.values() for p in params.values()])
            if isinstance(new, cst.FunctionDef) and isinstance(new.body, cst.IndentedBlock) and new.body.body and isinstance(method.body, cst.IndentedBlock) \
                    and method.body.body and method.body.body[0] in self.dropped_statements:
                # the body's first statements went to __init__: no blank line opens it now
                first = new.body.body[0]
                kept = list(first.leading_lines)
                while kept and kept[0].comment is None:
                    kept.pop(0)
                new = new.with_changes(body=new.body.with_changes(body=[first.with_changes(leading_lines=kept), *new.body.body[1:]]))
            if isinstance(new, cst.FunctionDef) and not new.leading_lines:
                new = new.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            if transformed is not None:
                construct, decorator, options = transformed
                body += construct.rewrite_method(self, decorator, options, new, cfg)
            else:
                body.append(new)
        return body

    def _methods_in_order(self):
        body = list(self.node.body.body)
        return [s for s in body if isinstance(s, cst.FunctionDef)]
