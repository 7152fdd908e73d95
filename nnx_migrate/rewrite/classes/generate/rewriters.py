"""The second half of a class conversion: rewriting method bodies.

`SetupRewriter` turns the `setup()` body into `__init__` statements; `MethodRewriter` turns
each Linen method into its NNX form (submodule constructions become attributes, variables
are read the NNX way, Linen names are renamed in the same pass). Both put a
`# TODO(nnx-migrate)` comment above each statement that holds a reported site.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes.constructs import self_call_construct
from nnx_migrate.rewrite.classes.model import CARRIED, SubKind
from nnx_migrate.rewrite.names import normalize_linen
from nnx_migrate.rewrite.nodes import MARKABLE_TYPES, STATEMENT_TYPES, with_todo_comments
from nnx_migrate.rewrite.nodes import self_attr as _self_attr
from nnx_migrate.rewrite.nodes import self_method_call as _self_method_call
from nnx_migrate.rewrite.nodes import statements as _statements
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastTransformer

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.converter import ClassConverter

_CARRIED_NAME = re.compile(rf"\b{CARRIED}\b")

DECORATORS_TO_DROP = {"flax.linen.compact", "flax.linen.nowrap", "flax.linen.module.compact", "flax.linen.module.nowrap"}


def _with_call_kwargs(call: cst.Call, call_kwargs: dict[str, str]) -> cst.Call:
    """`call` with the call-time keywords Linen gave at construction (`use_running_average=
    not train`) appended, those the call does not give itself."""
    given = {a.keyword.value for a in call.args if a.keyword is not None}
    extra = [templates.parse_expression(f"f({k}={v})").args[0] for k, v in call_kwargs.items() if k not in given]
    if extra and call.args:
        return call.with_changes(args=[*call.args[:-1], call.args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT), *extra])
    return call.with_changes(args=extra) if extra else call


class SetupRewriter(FastTransformer):
    """`setup()` body -> `__init__` body."""

    def __init__(self, conv: ClassConverter):
        self.conv = conv
        self.pending: list[list[str]] = []  # TODO notes of the statements being visited

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        conv = self.conv
        sub = conv.sub_by_node.get(original)
        if sub is not None:
            return templates.parse_expression(conv.ctor_source(sub))
        site = conv.var_by_node.get(original)
        if site is not None:
            return templates.parse_expression(site.init_code)
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        """`self.layers = [Layer(...) for v in it]` planned as a chain -> a loop that
        appends each element with the size the previous one gives it. A list built by
        appends and run as a chain: its size variable after `blocks = []` and after each
        append."""
        if original in self.conv.dropped_statements:
            return cst.RemoveFromParent()  # `Layers = nn.scan(...)`: the stack is built where setup builds it
        for chain in self.conv.append_chains.values():
            if not chain.ok:
                continue
            if original is chain.init_stmt:
                return cst.FlattenSentinel([updated, templates.parse_statement(f"{chain.var} = {chain.first}\n", config=self.conv.ctx.module.config_for_parsing)])
            if original in chain.outs and chain.outs[original] != chain.var and any(stmt is original for _, stmt in chain.appends):
                return cst.FlattenSentinel([updated, templates.parse_statement(f"{chain.var} = {chain.outs[original]}\n", config=self.conv.ctx.module.config_for_parsing)])
        if len(original.body) == 1 and isinstance(original.body[0], cst.Assign) and len(original.body[0].targets) == 1:
            attr = _self_attr(original.body[0].targets[0].target)
            plan = self.conv.comp_plans.get(attr) if attr is not None else None
            if plan is not None:
                sub = plan["sub"]
                src = f"self.{attr} = nnx.List()\n"
                updates = ""
                for param, (first, later) in sub.carried.items():
                    var = f"{attr}_{param}"
                    src += f"{var} = {first}\n"
                    sub.in_sizes[param] = var
                    updates += f"    {var} = {_CARRIED_NAME.sub(var, later)}\n"
                src += f"for {plan['target']} in {plan['iter']}:\n    self.{attr}.append({self.conv.ctor_source(sub)})\n" + updates
                statements = list(templates.parse_module(src, config=self.conv.ctx.module.config_for_parsing).body)
                statements[0] = statements[0].with_changes(leading_lines=updated.leading_lines)
                return cst.FlattenSentinel(statements)
        return updated

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign):
        if len(original.targets) == 1:
            attr = _self_attr(original.targets[0].target)
            if attr is not None and attr in self.conv.list_attrs:
                value = updated.value
                if isinstance(value, (cst.List, cst.ListComp, cst.Tuple, cst.Name)):
                    src = code(value)
                    if isinstance(value, cst.Tuple):
                        src = f"[{src[1:-1]}]" if src.startswith("(") else f"[{src}]"
                    return updated.with_changes(value=templates.parse_expression(f"nnx.List({src})"))
            if attr is not None and attr in self.conv.dict_attrs and isinstance(updated.value, (cst.Dict, cst.DictComp)):
                # NNX (0.12) refuses a plain dict holding modules on a module attribute
                return updated.with_changes(value=cst.parse_expression(f"nnx.Dict({code(updated.value)})"))
        return updated

    # TODO comments go on the statement that holds the site (a submodule with problems,
    # or a node reported while the setup body was analysed).
    hooks_ignore_trivia = True  # (statements and reported code only: see visitors.TRIVIA)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) in STATEMENT_TYPES:
            self.pending.append([])
        elif self.pending:
            entry = self.conv.todo_nodes.get(node)
            if entry is not None and entry[0] is node:
                self.pending[-1].extend(entry[1])
            sub = self.conv.sub_by_node.get(node)
            if sub is not None and sub.ctor is node:
                self.pending[-1].extend(sub.problems + [p for m in sub.members for p in m.problems])
        return super().on_visit(node)

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if type(original) in STATEMENT_TYPES:
            return with_todo_comments(result, self.pending.pop())
        return result


class MethodRewriter(FastTransformer):
    """A Linen method -> the NNX method: submodule constructions become attributes, the
    calls keep their arguments (call-time `deterministic=` / `use_running_average=` stay
    where Linen had them), `self.param`/`self.variable` read the NNX variables."""

    def __init__(self, conv: ClassConverter):
        self.conv = conv
        self.renamer = conv.ctx.renamer  # Linen names -> NNX names in the same pass
        # TODO notes of the statements being visited: the renamer's own list, so the Linen
        # names it leaves (no NNX counterpart) are marked at their statement too
        self.pending: list[list[str]] = self.renamer.pending
        self.depth = 0
        self.variable_locals: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute):
        return self.renamer.visit_Attribute(node)

    def leave_Name(self, original, updated):
        return self.renamer.leave_Name(original, updated)

    def visit_Arg(self, node: cst.Arg):
        return self.renamer.visit_Arg(node)

    def visit_Param(self, node: cst.Param):
        return self.renamer.visit_Param(node)

    # TODO markers: a statement that holds a reported node gets a comment line above it.
    hooks_ignore_trivia = True  # (statements and reported code only: see visitors.TRIVIA)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if type(node) in MARKABLE_TYPES:
            self.pending.append([])
        elif self.pending:
            entry = self.conv.todo_nodes.get(node)
            if entry is not None and entry[0] is node:
                self.pending[-1].extend(entry[1])
        return super().on_visit(node)

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if type(original) not in MARKABLE_TYPES and self.pending:
            entry = self.conv.todo_nodes.get(original)
            if entry is not None and entry[0] is original:
                # reported while rewritten (a construct's call site): marked on its statement too
                seen = self.pending[-1]
                seen.extend(why for why in entry[1] if why not in seen)
        if type(original) in MARKABLE_TYPES:
            return with_todo_comments(result, self.pending.pop())
        return result

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine):
        return node not in self.conv.dropped_statements

    def leave_SimpleStatementLine(self, original, updated):
        if original in self.conv.dropped_statements:
            return cst.RemoveFromParent()  # `ScanBlock = nn.scan(...)`: built in __init__
        return updated

    def leave_For(self, original: cst.For, updated: cst.For):
        # a loop that builds auto-named submodules counts its iterations for their index
        for sub in self.conv.subs:
            loop = sub.loop
            if loop is not None and loop.node is original and loop.counter and loop.counter != loop.index_var:
                target = updated.target
                if isinstance(target, cst.Tuple) and not target.lpar:
                    target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                return updated.with_changes(
                    target=cst.Tuple([cst.Element(cst.Name(loop.counter)), cst.Element(target)], lpar=[], rpar=[]),
                    iter=cst.Call(func=cst.Name("enumerate"), args=[cst.Arg(updated.iter)]),
                )
        return updated

    def visit_Decorator(self, node: cst.Decorator):
        # @nn.compact / @nn.nowrap are dropped in leave_FunctionDef: not a leftover
        return normalize_linen(self.conv.ctx.imports.qualify(node.decorator), {}) not in DECORATORS_TO_DROP

    def visit_Call(self, node: cst.Call):
        # A construction or self.param/variable call is replaced whole in leave_Call.
        if node in self.conv.sub_by_node or node in self.conv.var_by_node or node in self.conv.carry_inits:
            return False
        return self.renamer.visit_Call(node)  # Linen functions renamed only as calls

    def generated(self, src: str) -> cst.BaseExpression:
        """New code from text, with Linen names renamed like the rest."""
        return templates.parse_expression(src).visit(self.renamer)

    def visit_FunctionDef(self, node: cst.FunctionDef):
        self.depth += 1
        if self.depth == 1:
            self.variable_locals = {
                small.targets[0].target.value
                for stmt in _statements(node.body.body)
                if isinstance(stmt, cst.SimpleStatementLine)
                for small in stmt.body
                if isinstance(small, cst.Assign) and _self_method_call(small.value, "variable")
                and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)
            }
        return True

    def leave_FunctionDef(self, original, updated):
        self.depth -= 1
        if self.depth == 0:
            decorators = [d for d in updated.decorators if normalize_linen(self.conv.ctx.imports.qualify(d.decorator), {}) not in DECORATORS_TO_DROP]
            return updated.with_changes(decorators=decorators)
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        return self._leave_call(original, self.renamer.leave_Call(original, updated))

    def _leave_call(self, original: cst.Call, updated: cst.Call):
        conv = self.conv
        if original in conv.carry_inits:
            return self.generated(conv.carry_inits[original])
        if original in conv.carry_swaps:
            # NNX: initialize_carry(input_shape, rngs)
            rng, shape = updated.args
            return self.generated(f"{code(updated.func)}({code(shape.value)}, nnx.Rngs({code(rng.value)}))")
        sub = conv.sub_by_node.get(original)
        if sub is not None and sub.attr is not None and sub.list_index is not None:
            return templates.parse_expression(f"self.{sub.attr}[{sub.list_index}]")
        if sub is not None and sub.attr is not None and sub.loop is not None:
            return templates.parse_expression(f"self.{sub.attr}[{sub.loop.index_var}]")
        if sub is not None and sub.attr is not None:
            return templates.parse_expression(f"self.{sub.attr}")
        if sub is not None:
            return self.generated(conv.ctor_source(sub))
        method = _self_attr(original.func)
        construct = self_call_construct(method)
        if construct is not None:
            # self.param / self.sow / self.make_rng ... (constructs/)
            converted = construct.call_source(self, original, updated, method)
            if converted is not None:
                return converted
        # call-time keyword renames for layer calls
        called = None
        local_kwargs_hold = False  # a local's call: Linen's call-time arguments mean the same here
        if isinstance(original.func, cst.Call):
            called = conv.sub_by_node.get(original.func)
        elif _self_attr(original.func) in conv.subs_by_attr:
            called = conv.subs_by_attr[_self_attr(original.func)]
        elif original in conv.local_calls:
            called, local_kwargs_hold = conv.local_calls[original]
        if called is not None and called.transform is not None:
            # nn.remat / nn.scan of a class (constructs/): the call runs through NNX's transform
            transformed = called.transform.call_source(self, original, updated, called)
            if transformed is not None:
                return transformed
        if called is not None and called.kind == SubKind.LAYER and called.rule.call_keywords:
            # positional call arguments NNX takes by keyword only: `drop(x, True)` ->
            # `drop(x, deterministic=True)`
            positional = [i for i, a in enumerate(updated.args) if a.keyword is None and not a.star]
            names = called.rule.call_keywords
            new_args = list(updated.args)
            for n, i in enumerate(positional[1:]):
                if n < len(names):
                    new_args[i] = new_args[i].with_changes(keyword=cst.Name(names[n]), equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
            updated = updated.with_changes(args=new_args)
        if called is not None and called.kind == SubKind.CHILD and called.call_kwargs:
            # call-time values a layer partial passed to the child took from call arguments
            if isinstance(original.func, cst.Call) or local_kwargs_hold:
                updated = _with_call_kwargs(updated, called.call_kwargs)
            elif original not in conv.local_calls:  # (a local's: reported by the walk)
                conv.todo(original, f"{called.attr}(...)", f"Linen set {', '.join(called.call_kwargs)} when building the module from call arguments; pass it at each call")
            return updated
        if called is not None and called.kind == SubKind.LAYER:
            args = []
            if (isinstance(original.func, cst.Call) or local_kwargs_hold) and called.call_kwargs:
                updated = _with_call_kwargs(updated, called.call_kwargs)
            elif called.call_kwargs and original not in conv.local_calls:  # (a local's: reported by the walk)
                conv.todo(original, f"{called.attr}(...)", f"Linen set {', '.join(called.call_kwargs)} when building the layer from call arguments; pass it at each call")
            for arg in updated.args:
                if arg.keyword is not None and arg.keyword.value in called.rule.call_unsupported:
                    conv.todo(original, f"{called.attr}(..., {arg.keyword.value}=...)", "call-time argument with no NNX counterpart")
                if arg.keyword is not None and arg.keyword.value in called.rule.call_rename:
                    arg = arg.with_changes(keyword=cst.Name(called.rule.call_rename[arg.keyword.value]))
                args.append(arg)
            return updated.with_changes(args=args)
        return updated

    # A statement's whole expression needs no parentheses around the mode test.
    def leave_Assign(self, original: cst.Assign, updated: cst.Assign):
        return updated.with_changes(value=_bare_mode_test(updated.value)) if original.value in self.conv.mode_calls else updated

    def leave_If(self, original: cst.If, updated: cst.If):
        return updated.with_changes(test=_bare_mode_test(updated.test)) if original.test in self.conv.mode_calls else updated

    def leave_Attribute(self, original: cst.Attribute, updated):
        renamed = self.renamer.leave_Attribute(original, updated)
        if renamed is not updated:
            return renamed
        # `.value` of a Linen variable -> `[...]`
        if original.attr.value == "value":
            target = original.value
            is_var = (isinstance(target, cst.Name) and target.value in self.variable_locals) or (_self_attr(target) in self.conv.setup_var_attrs)
            if is_var:
                return cst.Subscript(value=updated.value, slice=[cst.SubscriptElement(slice=cst.Index(value=cst.Ellipsis()))])
        return updated


def _bare_mode_test(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.with_changes(lpar=[], rpar=[]) if isinstance(expr, cst.UnaryOperation) else expr
