"""The class pass over one file: Linen module classes -> NNX classes, Linen functions ->
NNX names, imports fixed. Its result for a file is a function of (text, path) and the run's
index of other files' classes (`external`), kept in the run context: the runner, the
training pass of this file and the training pass of a file that imports this one's models
(training/models.py) all ask for it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import replace

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.classes import ClassConverter, FileContext, is_linen_module_base
from nnx_migrate.rewrite.edits import NNX, Place
from nnx_migrate.rewrite.field_values import FieldValues
from nnx_migrate.rewrite.lines import (
    LineResolver,
    render,
    splits_lines_like_ast,
    statement_spans,
    statement_starts,
)
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.nodes import with_todo_comments
from nnx_migrate.rewrite.renames import NESTED_CLASS, RenameLinen, names_in
from nnx_migrate.rewrite.report import ClassOutcome, FileResult, TodoSite
from nnx_migrate.rewrite.rules import load_rules
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.visitors import FastVisitor


def might_use_linen(text: str) -> bool:
    return "linen" in text


def rewrite_classes(text: str, path: str, context: RunContext, external=None) -> tuple[FileResult, cst.Module | None]:
    """The class pass's result and the tree of its `new_text` (None where that text is
    the input's). Without `external` it is computed once per run."""
    if external is not None:
        return _rewrite_classes_once(text, path, context, external)
    result, tree = context.cached("class results", (text, path), lambda: _rewrite_classes_once(text, path, context, None))
    # a fresh record each time: callers replace its fields (apply_training_pass)
    return replace(result), tree


def _rewrite_classes_once(text: str, path: str, context: RunContext, external) -> tuple[FileResult, cst.Module | None]:
    """Converts one file's source. Never raises for bad input: a file that does not parse
    is a `failed` result whose `error` says why. `external` (an `index.ModuleIndex`) holds
    the converted classes of the other files of the run."""
    if not might_use_linen(text):
        return FileResult(path=path, status="skipped", old_text=text, new_text=text), None
    try:
        module = context.parse(text)
    except cst.ParserSyntaxError as exc:
        return FileResult(path=path, status="failed", old_text=text, error=f"does not parse: line {exc.raw_line}: {exc.message}"), None
    try:
        return _rewrite_module(module, text, path, context, external)
    except RecursionError:
        return FileResult(path=path, status="failed", old_text=text, error="too deeply nested for the parser"), None


def _rewrite_module(module: cst.Module, text: str, path: str, context: RunContext, external) -> tuple[FileResult, cst.Module | None]:
    imports = ImportMap(module)
    if not imports.linen_aliases():
        return _unchanged(path, text, imports), None
    rules = load_rules()
    positions = LineResolver(module)
    ctx = FileContext(module, imports, rules, path, positions, external)
    ctx.run_context = context  # where the files of the program are (a class from elsewhere is foreign)
    ctx.source = text
    ctx.module_names = _module_level_names(module)
    ctx.functions = {stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.FunctionDef)}
    ctx.field_values = FieldValues(module, imports, rules, _linen_class_names(module, ctx))
    renamer = ctx.renamer = RenameLinen(imports, rules, ctx.edits)
    renamer.reserved = ctx.module_names | set(imports.aliases)
    alias_pattern = re.compile(r"\b(?:%s)\b" % "|".join(map(re.escape, sorted(imports.linen_aliases()))))
    spans = _statement_spans(text, module, context)
    statement_texts = _statement_texts(text, spans)
    if spans is not None and "\r" not in text:  # (the line count of `lines` is of "\n" alone)
        positions.starts = statement_starts(module.body, spans)
        context.statement_texts.remember_source(module, text, positions.starts)  # (their code, for `render`)
    outcomes: list[ClassOutcome] = []
    class_nodes: list[tuple[ClassOutcome, cst.ClassDef]] = []
    outside_classes: list = []  # leftover Linen uses outside converted classes
    new_body = []
    first_converted_index = None
    # Classes are converted after the classes of this file they use (a block may build
    # one defined further down), and written back in file order.
    converted_classes: dict[int, tuple[ClassOutcome, cst.ClassDef | None]] = {}
    for index in _conversion_order(module, statement_texts):
        positions.owner = index  # (a hint for report lines, see lines.LineResolver)
        stmt = module.body[index]
        kind, base = _linen_class_kind(stmt, ctx)
        if kind is None:
            continue
        before = len(ctx.todos)
        try:
            new_cls, summary = ClassConverter(stmt, ctx, base).build()
        except Exception as exc:  # a bug or an unforeseen construct: report, keep going
            del ctx.todos[before:]
            renamer.pending.clear()  # (the statements the failed build was in)
            renamer.used_names.update(names_in(stmt))  # (its imports stay)
            why = f"conversion failed ({type(exc).__name__}: {exc}); the class is left as Linen"
            ctx.todos.append(TodoSite(path, ctx.line(stmt), f"class {stmt.name.value}", why))
            converted_classes[index] = (ClassOutcome(stmt.name.value, ctx.line(stmt), "failed", 1), with_todo_comments(stmt, [why]))
            continue
        ctx.summaries[stmt.name.value] = summary
        todos = len(ctx.todos) - before
        converted_classes[index] = (ClassOutcome(stmt.name.value, ctx.line(stmt), "todo" if todos else "converted", todos), new_cls)
    for index, stmt in enumerate(module.body):
        positions.owner = index
        if index in converted_classes:
            outcome, new_cls = converted_classes[index]
            outcomes.append(outcome)
            if outcome.status == "failed":
                new_body.append(new_cls)  # the Linen class, marked
                continue
            class_nodes.append((outcome, stmt))
            if first_converted_index is None:
                first_converted_index = len(new_body)
            new_body.append(new_cls)  # renamed while it was built
            continue
        if isinstance(stmt, cst.SimpleStatementLine) and all(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body):
            new_body.append(stmt)
            continue
        # Other statements: renamed only if their text mentions a Linen alias at all
        # (reading their source lines is much cheaper than transforming them).
        stmt_text = statement_texts[index] if statement_texts is not None else render(stmt, module)
        if alias_pattern.search(stmt_text):
            before = len(renamer.leftover_nodes)
            stmt = renamer.transform(stmt)
            outside_classes.extend(renamer.leftover_nodes[before:])
        new_body.append(stmt)
    positions.owner = None
    converted = module.with_changes(body=new_body)
    for node in renamer.unconverted_classes:
        outcomes.append(ClassOutcome(node.name.value, ctx.line(node), "failed", 1))
        ctx.todos.append(TodoSite(path, ctx.line(node), f"class {node.name.value}", NESTED_CLASS))
    if not outcomes and not renamer.changed and not outside_classes:
        # (what it imports still counts: a later round, knowing the run's classes, may
        # find a Linen base class of another file here)
        return _unchanged(path, text, imports), None
    # Generated Variable types for collections NNX has no type for.
    if ctx.variable_types and first_converted_index is not None:
        defs = [
            templates.parse_statement(f'class {name}(nnx.Variable):\n    """Linen\'s \'{collection}\' collection."""\n', config=module.config_for_parsing).with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
            for collection, name in ctx.variable_types.items()
        ]
        body = list(converted.body)
        body[first_converted_index:first_converted_index] = defs
        converted = converted.with_changes(body=body)
    edits = ctx.edits
    edits.helpers_before = first_converted_index
    edits.remove_unused_linen(renamer.used_names)
    if "nnx" in renamer.used_names:  # (the generated code and the renamed names read it)
        edits.add_import(NNX, Place.BESIDE_LINEN)
    converted = edits.apply(converted)
    for name, node in outside_classes:
        ctx.todos.append(TodoSite(path, ctx.line(node), name, renamer.why_left(node)))
    # Line numbers: one rendering of the original file for all reported nodes.
    def resolve(placeholder: int) -> int:
        line = positions.line(placeholder)
        if line == 0 and placeholder in ctx.fallbacks:
            line = positions.line(ctx.fallbacks[placeholder])
        return line

    ctx.todos = [t if t.line >= 0 else replace(t, line=resolve(t.line)) for t in ctx.todos]
    for outcome in outcomes:
        outcome.line = positions.line(outcome.line)
    new_text = render(converted, texts=context.statement_texts)
    status = "changed" if new_text != text else "unchanged"
    result = FileResult(path=path, status=status, old_text=text, new_text=new_text, classes=outcomes, todos=list(dict.fromkeys(ctx.todos)))
    result.exports = dict(ctx.summaries)
    result.imported = _imported(imports)
    return result, (converted if status == "changed" else None)


def _imported(imports: ImportMap) -> set[str]:
    """The qualified names the file imports that another file of the run may define."""
    return {q for q in imports.aliases.values() if not q.startswith(("flax.", "jax.", "jax", "numpy"))}


def _unchanged(path: str, text: str, imports: ImportMap) -> FileResult:
    result = FileResult(path=path, status="unchanged", old_text=text, new_text=text)
    result.imported = _imported(imports)
    return result


def _statement_spans(text: str, module: cst.Module, context: RunContext) -> list[list[ast.stmt]] | None:
    """Python's own (C) parser's statements for each top-level LibCST statement; None if
    the two parsers do not line up."""
    if not splits_lines_like_ast(text):
        return None
    try:
        tree = context.parse_ast(text)
    except (SyntaxError, ValueError):
        return None
    return statement_spans(tree.body, module.body)


def _statement_texts(text: str, spans) -> list[str] | None:
    """The source lines of each top-level statement (None without `spans`: then
    statements are rendered)."""
    if spans is None:
        return None
    lines = text.splitlines(keepends=True)
    texts: list[str] = []
    for group in spans:
        first = min([group[0].lineno, *(d.lineno for d in getattr(group[0], "decorator_list", ()))])
        texts.append("".join(lines[first - 1 : group[-1].end_lineno]))
    return texts


def _linen_class_kind(node: cst.ClassDef, ctx: FileContext):
    for base in node.bases:
        if base.keyword is not None:
            continue
        if is_linen_module_base(ctx, base.value):
            return "linen", None
        summary = ctx.module_class(base.value)
        if summary is not None:
            return "subclass", summary
    return None, None


def _linen_class_names(module: cst.Module, ctx: FileContext) -> set[str]:
    """The module-level Linen classes of the file, subclasses of the file's ones included."""
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef) and any(
            b.keyword is None and (is_linen_module_base(ctx, b.value) or (isinstance(b.value, cst.Name) and b.value.value in names))
            for b in stmt.bases
        ):
            names.add(stmt.name.value)
    return names


def _module_level_names(module: cst.Module) -> set[str]:
    names = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
            names.add(stmt.name.value)
    return names


_WORD = re.compile(r"[A-Za-z_]\w*")


def _conversion_order(module: cst.Module, statement_texts) -> list[int]:
    """Indices of the module-level classes, each after the classes of the same file whose
    names its source mentions (file order otherwise, and within a cycle)."""
    classes = {stmt.name.value: i for i, stmt in enumerate(module.body) if isinstance(stmt, cst.ClassDef)}
    uses: dict[int, list[int]] = {}
    for _name, index in classes.items():
        stmt = module.body[index]
        text = statement_texts[index] if statement_texts is not None else module.code_for_node(stmt)
        mentioned = {w for w in set(_WORD.findall(text)) if w in classes and classes[w] != index}
        later = {w for w in mentioned if classes[w] > index}
        if later:
            # a class defined further down must really be used, not named in a docstring
            # (earlier ones are converted first anyway, whatever the text says)
            mentioned -= later - _names_used(stmt)
        uses[index] = sorted(classes[w] for w in mentioned)
    order: list[int] = []
    state: dict[int, int] = {}  # 1: being visited, 2: done

    def visit(index: int) -> None:
        if state.get(index):
            return
        state[index] = 1
        for dep in uses[index]:
            visit(dep)
        state[index] = 2
        order.append(index)

    for index in sorted(uses):
        visit(index)
    return order


def _names_used(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class Names(FastVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            names.add(name.value)

    Names().walk(node)
    return names
