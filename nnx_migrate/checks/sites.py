"""Example inputs written in the code: `model.init(key, jnp.ones((1, 28, 28, 1)))`.

Pure `ast`, no jax: for each `V.init(rngs, *inputs, **call)` or `Cls(...).init(...)` whose
model is built in the same scope as `Cls(literal keywords)`, and whose inputs are arrays of
a written shape (`jnp.ones/zeros/empty(shape, dtype)`, `jax.random.normal/uniform(key,
shape)`), the class gets an example: its constructor keywords, one input SPEC per
positional input (`float32[1,28,28,1]`, the syntax of `check --input`), and the literal
call keywords. Names bound to a literal at module level or in the scope are resolved;
anything else (a shape computed at run time, a non-literal keyword) gives no example.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

_FILLERS = {"ones", "zeros", "empty", "ones_like", "zeros_like"}
_RANDOM = {"normal", "uniform", "truncated_normal"}
_DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
           "uint8", "uint16", "uint32", "bool", "bool_"}


@dataclass
class Example:
    kwargs: dict
    inputs: list[str]
    call: dict = field(default_factory=dict)
    where: str = ""  # "train.py:12": the init site it comes from


class _Unknown(Exception):
    """A value the collector cannot read from the source."""


def _literal(node: ast.AST, names: dict[str, ast.AST]):
    if isinstance(node, ast.Name) and node.id in names:
        return _literal(names[node.id], {k: v for k, v in names.items() if k != node.id})
    if isinstance(node, ast.Attribute) and node.attr in _DTYPES and isinstance(node.value, ast.Name) and node.value.id in ("jnp", "np", "numpy"):
        return node.attr  # `dtype=jnp.float32`: jax and Linen take the dtype's name too
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, names) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _Unknown from None


def _dtype(node: ast.AST | None) -> str:
    if node is None:
        return "float32"
    name = node.attr if isinstance(node, ast.Attribute) else node.value if isinstance(node, ast.Constant) else getattr(node, "id", None)
    if name not in _DTYPES:
        raise _Unknown
    return "bool" if name == "bool_" else name


def _input_spec(node: ast.AST, names: dict[str, ast.AST]) -> str:
    """`jnp.ones((1, 8), jnp.int32)` -> "int32[1,8]"."""
    if isinstance(node, ast.Name) and node.id in names:
        return _input_spec(names[node.id], {k: v for k, v in names.items() if k != node.id})
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        raise _Unknown
    attr = node.func.attr
    keywords = {k.arg: k.value for k in node.keywords if k.arg}
    if attr in ("array", "asarray") and node.args:
        return _array_spec(_literal(node.args[0], names), node.args[1] if len(node.args) > 1 else keywords.get("dtype"))
    if attr in _RANDOM and "size" in keywords and not node.args:  # numpy's RandomState(0).normal(size=...)
        shape_node, dtype_node = keywords["size"], None
    elif attr in _FILLERS and attr not in ("ones_like", "zeros_like") and node.args:
        shape_node, dtype_node = node.args[0], (node.args[1] if len(node.args) > 1 else keywords.get("dtype"))
    elif attr in _RANDOM and len(node.args) >= 2:
        shape_node, dtype_node = node.args[1], (node.args[2] if len(node.args) > 2 else keywords.get("dtype"))
    else:
        raise _Unknown
    shape = _literal(shape_node, names)
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _Unknown
    dtype = _dtype(dtype_node)
    return f"{dtype}[{','.join(map(str, shape))}]"


def _array_spec(value, dtype_node) -> str:
    """`np.array([[2, 4, 3], [2, 6, 3]], np.int32)` -> "int32[2,3]:2..7" (the values' range)."""
    shape, flat = [], [value]
    while flat and all(isinstance(v, (list, tuple)) for v in flat):
        if len({len(v) for v in flat}) != 1:
            raise _Unknown
        shape.append(len(flat[0]))
        flat = [x for v in flat for x in v]
    if not flat or not all(isinstance(v, (int, float, bool)) for v in flat):
        raise _Unknown
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in flat)
    dtype = _dtype(dtype_node) if dtype_node is not None else "int32" if ints else "float32"
    spec = f"{dtype}[{','.join(map(str, shape))}]"
    if dtype.startswith(("int", "uint")) and ints:
        spec += f":{min(flat)}..{max(flat) + 1}"
    return spec


def _class_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


class _Scope(ast.NodeVisitor):
    """One function body (or the module body without its functions), in source order."""

    def __init__(self, classes: set[str], module_names: dict[str, ast.AST], path: str, out: dict[str, list[Example]]):
        self.classes = classes
        self.names = dict(module_names)
        self.models: dict[str, ast.Call] = {}  # V -> Cls(...)
        self.path = path
        self.out = out

    def visit_FunctionDef(self, node):  # nested functions are scopes of their own
        return None

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            self.models.pop(name, None)
            self.names.pop(name, None)
            if isinstance(value, ast.Call) and _class_name(value.func) in self.classes:
                self.models[name] = value
            else:
                self.names[name] = value

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in ("init", "init_with_output") and node.args):
            return
        receiver = func.value
        ctor = self.models.get(receiver.id) if isinstance(receiver, ast.Name) else receiver
        if not (isinstance(ctor, ast.Call) and _class_name(ctor.func) in self.classes) or ctor.args:
            return
        try:
            kwargs = {k.arg: _literal(k.value, self.names) for k in ctor.keywords if k.arg}
            if any(k.arg is None for k in ctor.keywords) or any(k.arg is None for k in node.keywords):
                return
            inputs = [_input_spec(arg, self.names) for arg in node.args[1:]]
            call = {k.arg: _literal(k.value, self.names) for k in node.keywords if k.arg != "method"}
        except _Unknown:
            return
        if not inputs or any(k.arg == "method" for k in node.keywords):
            return
        self.out.setdefault(_class_name(ctor.func), []).append(
            Example(kwargs, inputs, call, f"{self.path}:{node.lineno}"))


def collect_examples(source: str, classes: set[str], path: str = "") -> dict[str, list[Example]]:
    """Class name -> the examples its `init` sites in `source` give (in source order)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    module_names = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            module_names[stmt.targets[0].id] = stmt.value
    out: dict[str, list[Example]] = {}
    _Scope(classes, module_names, path, out).visit(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope = _Scope(classes, module_names, path, out)
            for stmt in node.body:
                scope.visit(stmt)
    return out
