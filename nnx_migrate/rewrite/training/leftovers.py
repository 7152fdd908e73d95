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
            available = classes_of("." * node.level + (node.module or ""))
            for alias in node.names:
                if alias.name in available:
                    known[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                for name in classes_of(alias.name):
                    known[f"{alias.asname or alias.name}.{name}"] = name
    return known


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


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


def _sites(tree: ast.Module, known: dict[str, str], converted: set[str]) -> list[tuple[ast.stmt, str, str]]:
    """(statement, construct, why) for each leftover, in source order."""
    sites: list[tuple[ast.stmt, str, str]] = []
    blueprints: set[str] = set()  # names bound to a construction reported here

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef) and stmt.name in converted:
                continue  # generated code: every construction there passes rngs
            for part in _own_parts(stmt):
                calls = [node for node in ast.walk(part) if isinstance(node, ast.Call)]
                for call in calls:
                    name = _dotted(call.func)
                    if name in known and not any(k.arg is None or k.arg == "rngs" for k in call.keywords):
                        sites.append((stmt, f"{name}(...)", f"builds the NNX class `{known[name]}` without rngs= (and its input sizes): NNX makes the weights in the constructor; build it where Linen's `init` had the key and an input (`{known[name]}(..., rngs=nnx.Rngs(key))`)"))
                        if isinstance(stmt, ast.Assign) and stmt.value is call and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                            blueprints.add(stmt.targets[0].id)
                for call in calls:
                    func = call.func
                    if isinstance(func, ast.Attribute) and func.attr in LINEN_MODEL_METHODS and isinstance(func.value, ast.Name) and func.value.id in blueprints:
                        sites.append((stmt, f"{func.value.id}.{func.attr}(...)", f"Linen's `{func.attr}` on `{func.value.id}`, an object of a class that is NNX now: an NNX model holds its weights (call it directly; `nnx.state(model)` gives its variables)"))
            for block in _blocks(stmt):
                visit(block)

    visit(tree.body)
    return sites


def report_leftovers(result, original: str, context: RunContext, external=None):
    """`result` (a FileResult after both passes) with each leftover marked in its text and
    listed in its TODO sites."""
    text = result.new_text
    exports = result.exports or {}
    if text is None or (not exports and ".init" not in text and ".apply(" not in text):
        return result  # (most files: no converted class, no Linen model API; nothing parsed)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return result
    known = _known_classes(tree, exports, external, result.path, context)
    if not known:
        return result
    sites = _sites(tree, known, set(exports))
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
