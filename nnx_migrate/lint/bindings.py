"""Whether an expression written at one place provably means the same object at another.

A fix that copies a name from where it was seen (the model in `nnx.Optimizer(model, ...)`)
to another place (`optimizer.update(model, grads)`) is safe only if the name is not
rebound in between. Without flow analysis that is provable when the name resolves, at
both places, to the same single binding that runs once: not rebound in its scope
(`model = other`), not shadowed at the second place (a parameter of the same name), not a
loop's variable. An attribute path `self.model` is safe when the class assigns it once;
another path `trainer.model` when its root is safe and the file never assigns the path.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import Assignment

from nnx_migrate.lint.analysis import FileAnalysis

_SCOPE_BOUNDARIES = (cst.FunctionDef, cst.Lambda, cst.ClassDef, cst.Module)


def _bindings(analysis: FileAnalysis, name: str, at: cst.CSTNode) -> set[Assignment] | None:
    scope = analysis.scope(at)
    if scope is None:
        return None
    return {a for a in scope[name] if isinstance(a, Assignment)}


def _in_loop(analysis: FileAnalysis, node: cst.CSTNode) -> bool:
    current = analysis.parent(node)
    while current is not None and not isinstance(current, _SCOPE_BOUNDARIES):
        if isinstance(current, (cst.For, cst.While)):
            return True
        current = analysis.parent(current)
    return False


def _name_doubt(analysis: FileAnalysis, name: str, source: cst.CSTNode, at: cst.CSTNode) -> str | None:
    here, there = _bindings(analysis, name, source), _bindings(analysis, name, at)
    if here is None or there is None:
        return f"cannot resolve `{name}`"
    if here != there:
        return f"`{name}` here is not the `{name}` the model was named by (a parameter or local of the same name)"
    if len(here) > 1:
        return f"`{name}` is bound more than once in its scope (`{name} = ...` may rebind it)"
    if here and _in_loop(analysis, next(iter(here)).node):
        return f"`{name}` is rebound by a loop"
    return None


def _path_assigned(analysis: FileAnalysis, path: str, root: cst.CSTNode) -> bool:
    """Some `path = ...` / `path += ...` / `del path` under `root`."""
    finder = _TargetFinder(analysis, path)
    root.visit(finder)
    return finder.found


def same_object_doubt(analysis: FileAnalysis, source: cst.BaseExpression, at: cst.CSTNode) -> str | None:
    """None when `source` (a name or dotted path, as written where it was seen), written
    at `at`, provably means the same object; otherwise why that is not proven."""
    if isinstance(source, cst.Name):
        return _name_doubt(analysis, source.value, source, at)
    if isinstance(source, cst.Param):
        return _name_doubt(analysis, source.name.value, source.name, at)
    root = source
    while isinstance(root, cst.Attribute):
        root = root.value
    if not isinstance(source, cst.Attribute) or not isinstance(root, cst.Name):
        return "the model is not a plain name"
    path = analysis.code(source)
    if root.value == "self":
        cls = analysis.enclosing(source, cst.ClassDef)
        if cls is None or analysis.enclosing(at, cst.ClassDef) is not cls:
            return f"`{path}` is used outside the class that set it"
        if len(list(_assignments_to(analysis, cls, path))) > 1:
            return f"`{path}` is assigned more than once in the class"
        return None
    doubt = _name_doubt(analysis, root.value, root, at)
    if doubt is None and _path_assigned(analysis, path, analysis.module):
        doubt = f"`{path}` is assigned in this file"
    return doubt


def _assignments_to(analysis: FileAnalysis, cls: cst.ClassDef, path: str):
    finder = _TargetFinder(analysis, path)
    cls.visit(finder)
    return finder.targets


def attribute_is_written(analysis: FileAnalysis, node: cst.Attribute) -> bool:
    """`node` is the target of an assignment or `del`, not a read."""
    parent = analysis.parent(node)
    if isinstance(parent, (cst.AssignTarget, cst.Del)):
        return True
    if isinstance(parent, (cst.AugAssign, cst.AnnAssign)) and parent.target is node:
        return True
    # `a, opt.model = ...`: an element of a target tuple
    while isinstance(parent, (cst.Element, cst.Tuple, cst.List, cst.StarredElement)):
        parent = analysis.parent(parent)
    return isinstance(parent, (cst.AssignTarget, cst.For))


class _TargetFinder(cst.CSTVisitor):
    def __init__(self, analysis: FileAnalysis, path: str) -> None:
        self.analysis, self.path = analysis, path
        self.found = False
        self.targets: list[cst.CSTNode] = []

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self.analysis.code(node) == self.path and attribute_is_written(self.analysis, node):
            self.found = True
            self.targets.append(node)
