"""What both passes left of Linen's model API outside the converted classes, reported.

A Linen module object is a blueprint: `model = MLP()` holds no weights, `model.init(key,
x)` makes them, `model.apply(params, x)` runs with them. An NNX class builds its weights
in its constructor, which therefore needs `rngs=` and the input sizes. The training pass
converts such code where it follows a model from its construction to its `init`
(training/dataflow.py). Anywhere else (a model built at module level and initialised in a
function, a test that builds one to call `apply`, a helper the pass cannot see into) the
code would fail when run: a TypeError for the missing constructor arguments, then an
AttributeError for `init`/`apply`. Each such site is marked `TODO(nnx-migrate)` and
reported, never left silently broken.

Works on Python's own tree of the output (no jax or flax import).
"""

from __future__ import annotations

import ast
from dataclasses import replace

from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.training.model_values import ModelValues
from nnx_migrate.rewrite.training.model_values import dotted_name as _dotted
from nnx_migrate.rewrite.training.models import summaries_of_file

LINEN_MODEL_METHODS = ("init", "apply", "init_with_output", "bind", "tabulate", "lazy_init")


def _known_classes(tree: ast.Module, exports: dict, external, path: str, context: RunContext) -> dict[str, str]:
    """Local name (or `alias.Name`) -> class name, for the converted classes this file
    defines or imports from another file of the run (the run's index, else the sibling
    file itself, as the training pass finds them: training/models.py)."""
    known = {name: name for name in exports}

    def classes_of(module: str) -> set[str]:
        if external:
            found = {name for name in external.by_name if external.lookup(f"{module}.{name}") is not None}
            if found:
                return found
        file = context.local_module_file(path, module)
        return set(summaries_of_file(file, context)) if file is not None else set()

    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            package = "." * node.level + (node.module or "")
            available = classes_of(package)
            for alias in node.names:
                if alias.name in available:
                    known[alias.asname or alias.name] = alias.name
                else:  # `from pkg import networks`: a module of the run
                    for name in classes_of(f"{package}.{alias.name}" if package.strip(".") else package + alias.name):
                        known[f"{alias.asname or alias.name}.{name}"] = name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                for name in classes_of(alias.name):
                    known[f"{alias.asname or alias.name}.{name}"] = name
    return known


def _own_parts(stmt: ast.stmt) -> list[ast.AST]:
    """A statement's own expressions: the whole of a simple statement, the header of a
    compound one (its blocks are visited as statements of their own)."""
    if not any(isinstance(getattr(stmt, f, None), list) and getattr(stmt, f) and isinstance(getattr(stmt, f)[0], ast.stmt) for f in ("body", "orelse", "finalbody")):
        return [stmt]
    return [n for n in ast.iter_child_nodes(stmt) if not isinstance(n, (ast.stmt, ast.excepthandler))]


def _blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    blocks = [getattr(stmt, f) for f in ("body", "orelse", "finalbody") if isinstance(getattr(stmt, f, None), list)]
    blocks += [h.body for h in getattr(stmt, "handlers", [])]
    blocks += [c.body for c in getattr(stmt, "cases", [])]
    return [b for b in blocks if b and isinstance(b[0], ast.stmt)]


def _sites(tree: ast.Module, known: dict[str, str], converted: set[str], models: ModelValues) -> list[tuple[ast.stmt, str, str]]:
    """(statement, construct, why) for each leftover, in source order."""
    sites: list[tuple[ast.stmt, str, str]] = []

    def visit(body: list[ast.stmt], names: set[str], attrs: set[str], factories: dict[str, str]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                if stmt.name in converted:
                    continue  # generated code: every construction there passes rngs
                visit(stmt.body, names, models.attributes.get(id(stmt), set()), factories)
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(stmt.body, names | models.names.get(id(stmt), set()), attrs, {**factories, **models.factories.get(id(stmt), {})})
                continue
            for part in _own_parts(stmt):
                calls = [node for node in ast.walk(part) if isinstance(node, ast.Call)]
                for call in calls:
                    name = _dotted(call.func)
                    cls = known.get(name) or factories.get(name)
                    if cls is not None and not any(k.arg is None or k.arg == "rngs" for k in call.keywords):
                        sites.append((stmt, f"{name}(...)", f"builds the NNX class `{cls}` without rngs= (and its input sizes): NNX makes the weights in the constructor; build it where Linen's `init` had the key and an input (`{cls}(..., rngs=nnx.Rngs(key))`)"))
                for node in ast.walk(part):
                    if not (isinstance(node, ast.Attribute) and node.attr in LINEN_MODEL_METHODS):
                        continue
                    receiver = node.value
                    if models.holds(receiver, names, set(), attrs) and not isinstance(receiver, ast.Call):
                        owner = _dotted(receiver)
                        sites.append((stmt, f"{owner}.{node.attr}(...)", f"Linen's `{node.attr}` on `{owner}`, an object of a class that is NNX now: an NNX model holds its weights (call it directly; `nnx.state(model)` gives its variables, `nnx.split(model, nnx.Param, ...)` / `nnx.merge` a functional apply)"))
            for block in _blocks(stmt):
                visit(block, names, attrs, factories)

    visit(tree.body, models.module_names, set(), {})
    return sites


def report_leftovers(result, original: str, context: RunContext, external=None):
    """`result` (a FileResult after both passes) with each leftover marked in its text and
    listed in its TODO sites."""
    text = result.new_text if result.new_text is not None else original
    exports = result.exports or {}
    if text is None or (not exports and ".init" not in text and ".apply(" not in text):
        return result  # (most files: no converted class, no Linen model API; nothing parsed)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return result
    known = _known_classes(tree, exports, external, result.path, context)
    inherited = external.model_attributes if external is not None else (lambda qualified: None)
    if not known and "nnx.Module" not in text and not (external is not None and external.attributes):
        return result  # (a field typed `nnx.Module` holds a model too, and an attribute a base class set)
    models = ModelValues(tree, known, inherited)
    result = replace(result, model_attributes=models.class_attributes())
    sites = _sites(tree, known, set(exports), models)
    if not sites:
        return result
    lines = text.splitlines(keepends=True)
    original_lines = original.splitlines()
    todos = list(result.todos)
    marks: dict[int, list[str]] = {}
    for stmt, construct, why in sites:
        first = stmt.lineno - 1
        if _marked_above(lines, first):
            continue  # a pass reported this statement already (its own reason)
        marks.setdefault(first, [])
        if why not in marks[first]:
            marks[first].append(why)
        todos.append(TodoSite(result.path, _original_line(lines, first, original_lines), construct, why))
    for index in sorted(marks, reverse=True):
        indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
        newline = "\r\n" if lines[index].endswith("\r\n") else "\n"  # the file's own line ends
        above = {line.strip() for line in lines[max(0, index - len(marks[index])):index]}
        new = [f"{indent}# {TODO_MARK}: {why}{newline}" for why in marks[index] if f"# {TODO_MARK}: {why}" not in above]
        lines[index:index] = new
    new_text = "".join(lines)
    return replace(result, new_text=new_text, todos=list(dict.fromkeys(todos)),
                   status="changed" if new_text != result.old_text else result.status)


def _marked_above(lines: list[str], index: int) -> bool:
    """Whether the comment lines right above `lines[index]` hold a TODO(nnx-migrate)."""
    while index > 0 and lines[index - 1].lstrip().startswith("#"):
        index -= 1
        if TODO_MARK in lines[index]:
            return True
    return False


def _original_line(lines: list[str], index: int, original_lines: list[str]) -> int:
    """The line of the input that holds the statement at `lines[index]` of the output: the
    statement is unchanged (the passes left it), so its text is found there, the same
    occurrence of it counting from the top."""
    wanted = lines[index].rstrip("\r\n")
    occurrence = sum(1 for line in lines[:index] if line.rstrip("\r\n") == wanted)
    seen = 0
    for number, line in enumerate(original_lines, 1):
        if line == wanted:
            if seen == occurrence:
                return number
            seen += 1
    return index + 1
