"""`visitors.FastVisitor`/`FastTransformer` call the callbacks LibCST's bases call, in the
same order with the same results; they drop only attribute hooks, which no visitor of the
rewrite defines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import libcst as cst

from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor, children_in_order

ROOT = Path(__file__).resolve().parents[2]
SOURCE = (ROOT / "fixtures/modules/setup_methods.in.py").read_text(encoding="utf-8")


def _recorder(base):
    class Record(base):
        def __init__(self):
            self.events = []

        def visit_Call(self, node):
            self.events.append(("visit Call", cst.Module([]).code_for_node(node.func)))
            return not (isinstance(node.func, cst.Name) and node.func.value == "len")  # skip some children

        def leave_Call(self, *nodes):
            self.events.append(("leave Call",))
            return nodes[-1] if len(nodes) == 2 else None

        def visit_Name(self, node):
            self.events.append(("visit Name", node.value))

        def leave_Name(self, *nodes):
            self.events.append(("leave Name", nodes[0].value))
            if len(nodes) == 2:  # a transformer: rename
                return nodes[1].with_changes(value=nodes[1].value.upper())
            return None

        def visit_FunctionDef(self, node):
            self.events.append(("visit def", node.name.value))
            return node.name.value != "__call__"

    return Record


def test_fast_visitor_calls_what_libcst_calls():
    module = cst.parse_module(SOURCE + "\nn = len(skipped_name.y)\n")
    slow, fast = _recorder(cst.CSTVisitor)(), _recorder(FastVisitor)()
    module.visit(slow)
    module.visit(fast)
    assert fast.events == slow.events
    assert ("visit Name", "skipped_name") not in fast.events  # children of len(...) skipped
    assert any(e[0] == "visit Name" for e in fast.events)


def test_fast_transformer_transforms_as_libcst_does():
    module = cst.parse_module(SOURCE + "\nn = len(skipped_name.y)\n")
    slow, fast = _recorder(cst.CSTTransformer)(), _recorder(FastTransformer)()
    slow_out = module.visit(slow)
    fast_out = module.visit(fast)
    assert fast.events == slow.events
    assert fast_out.code == slow_out.code != module.code


def test_no_rewrite_visitor_defines_attribute_hooks():
    hook = re.compile(r"^(visit|leave)_[A-Z][A-Za-z]*_[a-z_]+$")
    files = sorted(p for p in (ROOT / "nnx_migrate/rewrite").rglob("*.py") if p.name != "visitors.py")
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                assert not hook.match(node.name), f"{path.name}: {node.name} would never be called"
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not bases & {"cst.CSTVisitor", "cst.CSTTransformer"}, f"{path.name}: {node.name} (use visitors.FastVisitor/FastTransformer)"


def test_children_in_order_learn_fields_visited_only_when_set():
    from nnx_migrate.rewrite import visitors

    plain, spec = cst.parse_expression('f"{a}"').parts[0], cst.parse_expression('f"{a:>{w}}"').parts[0]
    visitors._SOURCE_ORDER.pop(type(plain), None)  # learn from the instance without a spec
    for node in (plain, spec):
        assert [id(c) for c in children_in_order(node)] == [id(c) for c in node.children]
    assert len(children_in_order(spec)) > len(children_in_order(plain))


def test_children_in_order_are_libcsts_children():
    text = SOURCE + '\nx = f"{a!r:>{width}} {b=}" + f"{c:{d}}"\ny = (a if b else c)[1:2, ::3]\n'
    module = cst.parse_module(text)
    stack, seen = [module], 0
    while stack:
        node = stack.pop()
        mine = children_in_order(node)
        assert [id(c) for c in mine] == [id(c) for c in node.children], type(node).__name__
        stack.extend(mine)
        seen += 1
    assert seen > 500


def test_walk_calls_what_visit_calls():
    module = cst.parse_module(SOURCE + "\nn = len(skipped_name.y)\n")
    visited, walked = _recorder(FastVisitor)(), _recorder(FastVisitor)()
    module.visit(visited)
    walked.walk(module)
    assert walked.events == visited.events and len(walked.events) > 20


def test_transform_transforms_as_visit_does():
    module = cst.parse_module(SOURCE + "\nn = len(skipped_name.y)\n")
    visited, transformed = _recorder(FastTransformer)(), _recorder(FastTransformer)()
    out_visit = module.visit(visited)
    out_transform = module.with_changes(body=[transformed.transform(s) for s in module.body])
    assert transformed.events == visited.events
    assert out_transform.code == out_visit.code != module.code


class _Edits(FastTransformer):
    """Removes `pass` lines and return annotations, splits `a = b = 1`, drops decorators
    named `drop`; changes nothing else."""

    def leave_SimpleStatementLine(self, original, updated):
        if isinstance(updated.body[0], cst.Pass):
            return cst.RemoveFromParent()
        small = updated.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 2:
            return cst.FlattenSentinel([updated.with_changes(body=[small.with_changes(targets=[t])]) for t in small.targets])
        return updated

    def leave_Annotation(self, original, updated):
        return cst.RemoveFromParent()

    def leave_Decorator(self, original, updated):
        return cst.RemoveFromParent() if isinstance(updated.decorator, cst.Name) and updated.decorator.value == "drop" else updated

    def leave_Param(self, original, updated):
        return updated.with_changes(annotation=None) if updated.annotation is None else updated


EDITED = '''
@drop
@keep
def f(a, b) -> int:
    pass
    x = y = 1
    if x:
        pass
    return [a, b]


def g():
    return 1
'''


def test_transform_edits_as_visit_does_and_keeps_unchanged_nodes():
    module = cst.parse_module(EDITED)
    by_visit = [s.visit(_Edits()) for s in module.body]
    by_transform = [_Edits().transform(s) for s in module.body]
    assert [cst.Module(body=[s]).code for s in by_transform] == [cst.Module(body=[s]).code for s in by_visit]
    code = cst.Module(body=by_transform).code
    assert "    pass\n    x" not in code and "    x = 1\n    y = 1\n" in code and "-> int" not in code and "@drop" not in code
    assert by_transform[1] is module.body[1]  # nothing in g changed: not rebuilt
    assert by_visit[1] is not module.body[1]


def test_classes_tested_by_exact_type_have_no_subclasses():
    from nnx_migrate.rewrite.classes import _OWN_SCOPES
    from nnx_migrate.rewrite.nodes import STATEMENT_TYPES

    for cls in (*STATEMENT_TYPES, *_OWN_SCOPES, cst.Call, cst.Name, cst.Attribute, cst.Arg, cst.SimpleStatementLine, cst.Module, cst.FlattenSentinel):
        assert not cls.__subclasses__(), cls


def test_nodes_of_type_finds_what_matchers_find():
    import libcst.matchers as m

    from nnx_migrate.rewrite.visitors import nodes_of_type

    module = cst.parse_module(SOURCE + EDITED + "\nd = {'params': p, **q}\nfor (a, b) in c:\n    x = y = {'k': [1, {'j': 2}]}\n")
    for kind in (cst.Assign, cst.For, cst.DictElement, cst.Name, cst.Call):
        assert nodes_of_type(module, kind) == list(m.findall(module, getattr(m, kind.__name__)())), kind
    assert len(nodes_of_type(module, cst.DictElement)) >= 3


def test_transform_refuses_what_visit_refuses():
    import pytest

    class RemoveRequired(FastTransformer):
        def leave_Name(self, original, updated):
            return cst.RemoveFromParent() if updated.value == "a" else updated

    class BadValue(FastTransformer):
        def leave_Name(self, original, updated):
            return "not a node"

    stmt = cst.parse_statement("x = a.b\n")
    for make, error in ((RemoveRequired, TypeError), (BadValue, cst.CSTValidationError)):
        with pytest.raises(error):
            stmt.visit(make())
        with pytest.raises(error):
            make().transform(stmt)


def test_fields_visited_per_instance_work_whichever_instance_taught_the_type():
    # `ImportFrom.names` is `*` (one node) or a sequence; an f-string's format spec is
    # visited only when set. Children and transforms are learnt once per type, from the
    # first instance seen: either must teach them right for the other.
    from nnx_migrate.rewrite import visitors

    class Upper(FastTransformer):
        def leave_Name(self, original, updated):
            return updated.with_changes(value=updated.value.upper())

    cases = [
        (lambda t: cst.parse_statement(t).body[0], ["from a import *", "from a import (b, c as d)", "from . import e"]),
        (lambda t: cst.parse_expression(t).parts[0], ['f"{a:>{w}}"', 'f"{a}"', 'f"{a!r:{b}{c}}"']),
    ]
    for make, texts in cases:
        for first in range(len(texts)):
            order = texts[first:] + texts[:first]
            nodes = [make(t) for t in order]
            for table in (visitors._SOURCE_ORDER, visitors._BRANCHES, visitors._TRANSFORMS, visitors._TRANSFORM_BRANCHES, visitors._KINDS):
                table.pop(type(nodes[0]), None)
            for node in nodes:
                assert [id(c) for c in children_in_order(node)] == [id(c) for c in node.children], order
                # every child but trivia ones, in order (a field that may hold either, as
                # `ImportFrom.names`, is kept whatever it holds)
                branches = visitors.branches_in_order(node)
                assert {id(c) for c in branches} <= {id(c) for c in node.children}
                assert [id(c) for c in node.children if not isinstance(c, visitors.TRIVIA)] == [id(c) for c in branches if not isinstance(c, visitors.TRIVIA)], order
                by_visit, by_transform = node.visit(Upper()), Upper().transform(node)
                assert by_transform.deep_equals(by_visit), order


def test_trivia_holds_only_trivia():
    # Walks skip trivia fields (`visitors.TRIVIA`) for visitors without trivia callbacks:
    # that is only sound if nothing but trivia can hide below them.
    import dataclasses

    from nnx_migrate.rewrite import visitors

    for base in visitors.TRIVIA:
        for kind in visitors._subclasses(base):
            if not dataclasses.is_dataclass(kind):
                continue
            hints = __import__("typing").get_type_hints(kind)
            for field in dataclasses.fields(kind):
                classes = visitors._node_classes(hints[field.name])
                assert all(issubclass(c, visitors.TRIVIA) for c in classes), (kind.__name__, field.name)
    # and trivia fields hold trivia in real code (the annotations are what LibCST builds)
    module = cst.parse_module(SOURCE + EDITED + '\nx = f"{a!r:>{w}}" + (b  # c\n    )[1:2, ::3]\nfrom . import (d,)\n')
    stack, seen = [module], 0
    while stack:
        node = stack.pop()
        for name in visitors.trivia_fields(type(node)):
            value = getattr(node, name)
            for item in value if isinstance(value, (list, tuple)) else [value]:
                assert item is None or isinstance(item, (cst.MaybeSentinel, visitors.TRIVIA)), (type(node).__name__, name)
                seen += 1
        stack.extend(children_in_order(node))
    assert seen > 500


def test_walks_skip_trivia_only_where_no_callback_sees_it():
    from nnx_migrate.rewrite import visitors

    class Commas(FastVisitor):
        def __init__(self):
            self.count = 0

        def visit_Comma(self, node):
            self.count += 1

    class OwnHook(FastTransformer):
        def on_visit(self, node):
            self.seen = getattr(self, "seen", 0) + 1
            return super().on_visit(node)

    class DeclaredHook(OwnHook):
        hooks_ignore_trivia = True

        def on_visit(self, node):
            return super().on_visit(node)

    class Names(FastVisitor):
        def visit_Name(self, node):
            pass

    module = cst.parse_module(SOURCE)
    commas = Commas()
    commas.walk(module)
    assert commas.count == len(visitors.nodes_of_type(module, cst.Comma)) > 10
    assert visitors._mode(Names, FastVisitor)[1] is visitors._BRANCHES
    assert visitors._mode(Commas, FastVisitor)[1] is visitors._SOURCE_ORDER
    assert visitors._mode(OwnHook, FastTransformer)[2] is visitors._TRANSFORMS
    assert visitors._mode(DeclaredHook, FastTransformer)[2] is visitors._TRANSFORM_BRANCHES
    own = OwnHook()
    own.transform(module.body[0])
    assert own.seen == sum(1 for _ in _all_nodes(module.body[0]))  # every node, trivia too


def _all_nodes(node):
    yield node
    for child in children_in_order(node):
        yield from _all_nodes(child)
