"""Generation of the constructions in `__init__`."""

from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.naming import snake_case
from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs import self_call_constructs
from nnx_migrate.rewrite.classes.generate.rewriters import SetupRewriter
from nnx_migrate.rewrite.classes.model import Sub
from nnx_migrate.rewrite.report import todo_comment
from nnx_migrate.rewrite.sizes import code


class InitGenerator:
    """Generation: a submodule's construction in `__init__`."""

    # ---- generation -------------------------------------------------------------
    def unknown_size_param(self, sub: Sub, param: str) -> str:
        if sub.attr is None:
            # An unnamed element (of a list or nn.Sequential): one parameter per site.
            if sub.anonymous_name is None:
                cls = snake_case(self._linen_class(sub))
                sub.anonymous_name = f"{cls}_{sum(1 for v in self.anonymous_names if v.startswith(cls + '_'))}"
                self.anonymous_names.append(sub.anonymous_name)
            base = sub.anonymous_name
        else:
            base = sub.attr
        name = f"{base}_{param}"
        if name not in self.extra_size_params:
            self.extra_size_params.append(name)
        return name

    def ctor_source(self, sub: Sub) -> str:
        if sub.construct is not None:
            return sub.construct.init_source(self, sub)
        return code(sub.ctor)

    def _todo_comments(self, problems: list[str]) -> str:
        return "".join(f"{todo_comment(p)}\n" for p in dict.fromkeys(problems))

    def _init_statements(self, cfg) -> list[cst.BaseStatement]:
        """The body of `__init__`: the fields, the setup body, then what the compact
        body builds (submodules, loops `__init__` replays, parameters and variables)."""
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
                    line = line.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(todo_comment(f.problem)))])
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
            guarded_src = guarded(src, item.guards)
            if isinstance(item, Sub) and item.called_guards:
                # the local that holds it in the call reads the attribute in every case
                guarded_src += f"else:\n    self.{item.attr} = None\n"
            init_lines.append(stmt(self._todo_comments(problems) + guarded_src))
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
            if sub.origin == "setup" or sub.at_call:
                for p in dict.fromkeys(sub.problems + [q for m in sub.members for q in m.problems]):
                    self.todo(sub.ctor, f"self.{sub.attr}" if sub.attr else code(sub.ctor.func), p)
        return init_lines
