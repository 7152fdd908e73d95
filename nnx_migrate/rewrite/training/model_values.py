"""Which expressions of a file hold a model of a converted class, by data flow (for the
report of Linen model API left behind, leftovers.py).

A model is what a construction of a converted class makes, what a call of a parameter
whose default is such a class makes (`network=networks.QNet`, then `network(n)`), a
parameter or dataclass field annotated `nnx.Module` (the class pass wrote that for
Linen's `nn.Module`), a parameter of a function of the file that some call passes a
model to (directly, or through `jax.jit(f)` / `functools.partial(f, ...)`), and the
names and `self.` attributes such values are assigned to. Works on Python's own tree.
"""

from __future__ import annotations

import ast

# Annotations the class pass wrote for Linen's `nn.Module`: what such a field or parameter
# holds is an NNX model now.
_MODULE_BASES = ("flax.nnx.Module", "flax.nnx.module.Module")
_WRAPPERS = ("jax.jit", "jax.pmap", "functools.partial", "partial", "jit")


def dotted_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.partition(".")[0]] = alias.name if alias.asname else alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


class ModelValues:
    """`names[id(function)]`: its own names holding a model (a nested function sees its
    enclosing function's too); `attributes[id(class)]`: `self.` attributes holding one;
    `factories[id(function)]`: parameter -> the converted class its default names;
    `module_names`: the module's own."""

    def __init__(self, tree: ast.Module, known: dict[str, str], inherited=lambda qualified: None) -> None:
        """`inherited(qualified class name)`: the model attributes of a base class of
        another file of the run (the run's index), None where not known."""
        self.known = known
        self.inherited = inherited
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.aliases = _import_aliases(tree)
        self.module_names: set[str] = set()
        self.attributes: dict[int, set[str]] = {}
        self.names: dict[int, set[str]] = {}
        self.factories: dict[int, dict[str, str]] = {}
        self.passed: dict[str, set[str]] = {}  # top-level function -> parameters some call passes a model to
        self.functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self._assigned(tree.body, self.module_names, {}, set())
        for _ in range(3):  # assignments between methods, and calls passing models on
            before = self._size()
            self._scope(tree.body, self.module_names, set(), {})
            if self._size() == before:
                break

    def class_attributes(self) -> dict[str, set[str]]:
        """Top-level class name -> its `self.` attributes holding a model (for the run's
        index: subclasses in other files)."""
        return {name: set(self.attributes[id(node)]) for name, node in self.classes.items() if self.attributes.get(id(node))}

    def _size(self) -> int:
        return sum(map(len, self.names.values())) + sum(map(len, self.attributes.values())) + sum(map(len, self.passed.values()))

    def _scope(self, body, names: set[str], attrs: set[str], factories: dict[str, str]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                own = self.attributes.setdefault(id(stmt), set())
                for base in stmt.bases:  # attributes a base class assigns hold the same here
                    name = dotted_name(base)
                    if name in self.classes and self.classes[name] is not stmt:
                        own |= self.attributes.get(id(self.classes[name]), set())
                    elif name is not None:
                        head, _, rest = name.partition(".")
                        own |= self.inherited(self.aliases.get(head, head) + ("." + rest if rest else "")) or set()
                for inner in stmt.body:
                    if isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name) and self.is_module_type(inner.annotation):
                        own.add(inner.target.id)
                self._scope(stmt.body, names, own, factories)
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                own = self._function(stmt, names, attrs, factories)
                self._scope(stmt.body, names | own, attrs, {**factories, **self.factories[id(stmt)]})
            else:
                self._calls(stmt, names, attrs, factories)
                for field in ("body", "orelse", "finalbody"):
                    block = getattr(stmt, field, None)
                    if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                        self._scope(block, names, attrs, factories)
                for handler in getattr(stmt, "handlers", []):
                    self._scope(handler.body, names, attrs, factories)

    def _function(self, func, outer: set[str], attrs: set[str], outer_factories: dict[str, str]) -> set[str]:
        names = self.names.setdefault(id(func), set())
        factories = self.factories.setdefault(id(func), {})
        args = func.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        passed = self.passed.get(func.name, set()) if self.functions.get(func.name) is func else set()
        for arg, default in [*zip(positional, defaults, strict=False), *zip(args.kwonlyargs, args.kw_defaults, strict=False)]:
            if self.is_module_type(arg.annotation) or arg.arg in passed:
                names.add(arg.arg)
            if default is not None and dotted_name(default) in self.known:
                factories[arg.arg] = self.known[dotted_name(default)]
        self._assigned(func.body, names, {**outer_factories, **factories}, attrs, outer)
        return names

    def _assigned(self, body, names: set[str], factories: dict[str, str], attrs: set[str], outer: set[str] = frozenset()) -> None:
        for stmt in body:
            for node in _walk_scope(stmt):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and self.holds(node.value, names | outer, factories, attrs):
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                        attrs.add(target.attr)

    def _calls(self, stmt, names: set[str], attrs: set[str], factories: dict[str, str]) -> None:
        """Parameters of the file's top-level functions that a call here passes a model to."""
        for node in _walk_scope(stmt):
            if not isinstance(node, ast.Call):
                continue
            callee, offset, bound = self._callee(node.func)
            if callee is None:
                continue
            params = [a.arg for a in (*callee.args.posonlyargs, *callee.args.args)]
            into = self.passed.setdefault(callee.name, set())
            for i, arg in enumerate(a for a in node.args if not isinstance(a, ast.Starred)):
                if offset + i < len(params) and self.holds(arg, names, factories, attrs):
                    into.add(params[offset + i])
            for keyword in node.keywords:
                if keyword.arg is not None and keyword.arg not in bound and self.holds(keyword.value, names, factories, attrs):
                    into.add(keyword.arg)

    def _callee(self, func) -> tuple[ast.FunctionDef | None, int, set[str]]:
        name = dotted_name(func)
        if name in self.functions:
            return self.functions[name], 0, set()
        if isinstance(func, ast.Call) and func.args and dotted_name(func.func) in _WRAPPERS:
            inner, offset, bound = self._callee(func.args[0])
            if dotted_name(func.func) in ("functools.partial", "partial"):
                offset += len(func.args) - 1
                bound = bound | {k.arg for k in func.keywords if k.arg}
            return inner, offset, bound
        return None, 0, set()

    def is_module_type(self, node: ast.AST | None) -> bool:
        name = dotted_name(node) if node is not None else None
        if name is None:
            return False
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head) + ("." + rest if rest else "")
        return full in _MODULE_BASES

    def holds(self, value, names: set[str], factories: dict[str, str], attrs: set[str]) -> bool:
        if isinstance(value, ast.Call):
            func = dotted_name(value.func)
            return func in self.known or func in factories
        if isinstance(value, ast.Name):
            return value.id in names
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "self":
            return value.attr in attrs
        return False


def _walk_scope(stmt: ast.stmt):
    """`ast.walk` of a statement, not entering the functions and classes it defines
    (their names are their own; `ModelValues._scope` visits them)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return
    todo = [stmt]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                todo.append(child)
