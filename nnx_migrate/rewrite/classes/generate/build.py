"""Generation of the NNX class."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.classes.constructs import self_call_constructs
from nnx_migrate.rewrite.classes.generate.rewriters import MethodRewriter, SetupRewriter
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastTransformer
from nnx_migrate.rewrite.classes.model import ClassSummary, Sub
from nnx_migrate.rewrite.classes.context import LINEN_BASES, is_linen_module_base
from nnx_migrate.rewrite.classes.helpers import with_call_time_params

if TYPE_CHECKING:
    pass


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
        init_lines: list[cst.BaseStatement] = []

        def stmt(src: str) -> cst.BaseStatement:
            return templates.parse_statement(src, config=cfg)

        base = self.shape.base
        own_builder = self.shape.setup is not None or self.shape.compact is not None or base is None
        inherited = set() if own_builder else {f.name for f in base.fields}
        for f in fields:
            if f.name not in inherited:  # the base class's __init__ stores its own fields
                if f.factory is not None:
                    line = stmt(f"self.{f.name} = {f.factory}() if {f.name} is None else {f.name}\n")
                else:
                    line = stmt(f"self.{f.name} = {f.name}\n")
                if f.problem is not None:
                    self.todo(self.node, f"field {f.name}", f.problem)
                    line = line.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(f"# {TODO_MARK}: {f.problem}"))])
                if f.comments:  # the field's comments move with it
                    leading, trailing = f.comments
                    line = line.with_changes(leading_lines=[*leading], **({"trailing_whitespace": trailing} if trailing is not None else {}))
                init_lines.append(line)
        for construct in self_call_constructs():  # (self.rngs, the mode attribute, ...)
            init_lines += [stmt(src) for src in construct.init_source(self)]
        if not own_builder:
            args = [f"{f.name}={f.name}" for f in base.fields] + [f"{p}={p}" for p in base.size_params] + ["rngs=rngs"]
            init_lines.insert(0, stmt(f"super().__init__({', '.join(args)})\n"))
        # setup body
        if self.shape.setup is not None:
            setup_body = SetupRewriter(self).transform(self.shape.setup.body)
            init_lines.extend(setup_body.body)
        # compact constructions, parameters and variables, in order of appearance
        hoisted: set[tuple[str, str]] = set()
        # In the order the compact body creates them (the analysis walks it in execution order).
        items: list[tuple[int, object]] = [(s.order, s) for s in self.subs if s.origin != "setup" and s.attr is not None]
        items += [(v.order, v) for v in self.vars if v not in self.setup_var_attrs.values()]
        items.sort(key=lambda item: item[0])
        emitted_loops: set[cst.CSTNode] = set()
        created_lists: set[str] = set()

        def hoist_statics(pairs) -> None:
            for name, src in pairs:
                if (name, src) not in hoisted:
                    hoisted.add((name, src))
                    init_lines.append(stmt(f"{name} = {src}\n"))

        def guarded(src: str, guards: list[str], indent: str = "") -> str:
            if not guards:
                return indent + src
            cond = " and ".join(f"({g})" for g in guards) if len(guards) > 1 else guards[0]
            return f"{indent}if {cond}:\n{indent}    {src}"

        for _, item in items:
            if isinstance(item, Sub) and item.loop is not None:
                loop = item.loop
                if loop.node in emitted_loops:
                    continue
                emitted_loops.add(loop.node)
                members = [s for s in self.subs if s.loop is loop and s.attr is not None]
                members.sort(key=lambda m: m.order)
                hoist_statics([*loop.hoist, *(n for m in members for n in m.hoist if n not in self.loop_statics)])
                inside = list(dict.fromkeys(n for m in members for n in m.hoist if n in self.loop_statics))
                carried_src = " ".join(end for _, end, _ in loop.carried_vars.values()) + " " + " ".join(later for m in members for _, later in m.carried.values())
                used_words = set(re.findall(r"[A-Za-z_]\w*", carried_src))
                inside += [n for n in sorted(self.loop_statics) if n[0] in used_words and n not in inside]
                problems = [p for m in members for p in [*m.problems, *(q for x in m.members for q in x.problems)]]
                src = ""
                for attr in dict.fromkeys(m.attr for m in members):
                    if attr not in created_lists:
                        created_lists.add(attr)
                        src += f"self.{attr} = nnx.List()\n"
                updates = []
                for _, (first, end, var) in loop.carried_vars.items():
                    src += f"{var} = {first}\n"
                    updates.append(f"    {var} = {end}\n")
                if loop.symbolic and len(updates) > 1:
                    # each end reads the others' values at the start of the iteration
                    ends = list(loop.carried_vars.values())
                    updates = [f"    {', '.join(v for _, _, v in ends)} = {', '.join(f'({e})' for _, e, _ in ends)}\n"]
                carried_by_sizes = {(first, end): var for first, end, var in loop.carried_vars.values()}
                for m in members:
                    for param, (first, later) in m.carried.items():
                        same = carried_by_sizes.get((first, later))
                        if same is not None and not any(re.search(rf"\b{v}\b", later) for _, _, v in loop.carried_vars.values()):
                            # the size a variable the loop carries already holds (`x_size`)
                            m.in_sizes[param] = same
                            continue
                        var = f"{m.attr}_{param}"
                        src += f"{var} = {first}\n"
                        m.in_sizes[param] = var
                        updates.append(f"    {var} = {later}\n")
                src += loop.header + "\n"
                src += "".join(f"    {name} = {value}\n" for name, value in inside)
                src += "".join(guarded(f"self.{m.attr}.append({self.ctor_source(m)})\n", m.guards, "    ") for m in members)
                src += "".join(updates)
                for line_stmt in cst.parse_module(self._todo_comments(problems) + src, config=cfg).body:
                    init_lines.append(line_stmt)
                for m in members:
                    for p in dict.fromkeys(m.problems):
                        self.todo(m.ctor, f"{m.attr}[...]", p)
                continue
            hoist_statics(item.hoist)
            if isinstance(item, Sub) and item.list_index is not None:
                src = "" if item.attr in created_lists else f"self.{item.attr} = nnx.List()\n"
                created_lists.add(item.attr)
                init_lines.extend(cst.parse_module(src + f"self.{item.attr}.append({self.ctor_source(item)})\n", config=cfg).body)
                for p in dict.fromkeys(item.problems):
                    self.todo(item.ctor, f"{item.attr}[{item.list_index}]", p)
                continue
            if isinstance(item, Sub):
                src = f"self.{item.attr} = {self.ctor_source(item)}\n"
                problems = item.problems + [p for m in item.members for p in m.problems]
            else:
                src = f"self.{item.attr} = {item.init_code}\n"
                problems = []
            init_lines.append(stmt(self._todo_comments(problems) + guarded(src, item.guards)))
            for p in dict.fromkeys(problems):
                self.todo(item.ctor if isinstance(item, Sub) else self.node, f"{item.attr}", p)
            if isinstance(item, Sub) and item.sizes_loop is not None and item.sizes_loop.node not in emitted_loops:
                loop = item.sizes_loop
                emitted_loops.add(loop.node)
                if loop.carried_vars:
                    hoist_statics([*loop.hoist, *(n for s in self.subs if s.sizes_loop is loop for n in s.hoist)])
                    before = "".join(f"{var} = {first}\n" for first, _, var in loop.carried_vars.values())
                    along = "".join(f"    {var} = {end}\n" for _, end, var in loop.carried_vars.values())
                    init_lines.extend(cst.parse_module(before + loop.header + "\n" + along, config=cfg).body)
        for sub in self.subs:
            if sub.origin == "setup":
                for p in dict.fromkeys(sub.problems + [q for m in sub.members for q in m.problems]):
                    self.todo(sub.ctor, f"self.{sub.attr}" if sub.attr else code(sub.ctor.func), p)
        # signature
        size_params = self._size_params()
        params_src = []
        keyword_only = False
        seen_default = False
        for f in fields:
            ann = f": {f.annotation}" if f.annotation else ""
            default = f" = {self.factory_fields.get(f.name, f.default_code)}" if f.has_default else ""
            if not f.has_default and seen_default and not keyword_only:
                # a required field after defaulted ones (Linen's kw_only dataclasses,
                # subclasses): keyword-only from here, as Python requires
                params_src.append("*")
                keyword_only = True
            seen_default = seen_default or f.has_default
            params_src.append(f"{f.name}{ann}{default}")
        optional_sizes = self._optional_size_params(size_params)
        sizes_src = [f"{p}: int" for p in size_params if p not in optional_sizes]
        if sizes_src and not seen_default:
            params_src += sizes_src
            params_src.append("*")
        else:
            if not keyword_only:
                params_src.append("*")
            params_src += sizes_src
        if not keyword_only and "*" not in params_src:
            params_src.append("*")
        params_src += [f"{p}: int | None = None" for p in optional_sizes]
        params_src += [f"{p}: int | None = None" for p in self.field_out_params.values()]
        params_src.append("rngs: nnx.Rngs")
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
        body.append(init_def.with_changes(leading_lines=spacing))
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
        )
        self.ctx.todos.extend(self.todos)
        return new_class, summary

    def _methods_in_order(self):
        body = list(self.node.body.body)
        return [s for s in body if isinstance(s, cst.FunctionDef)]
