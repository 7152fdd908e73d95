"""Example inputs written in the code: `model.init(key, jnp.ones((1, 28, 28, 1)))`.

Pure `ast`, no jax. Each function body (and the module body) is read in source order by
a small evaluator that knows only what the source spells out:
- plain values: literals, names bound to them (tuple unpacking included), int arithmetic,
  indexing, literal dicts (`Cls(**hyperparams)`), `self.x` set in a test class's `setUp`;
- arrays as dtype and shape: `jnp.ones/zeros/empty/full(shape, dtype)`, `jnp.arange(n)`,
  `jax.random.normal/uniform/truncated_normal/randint/bernoulli(key, shape, ...)`, numpy's
  `random.*(size=...)`, `np.array([[...]])`, then `.reshape(...)`, `.astype(...)`,
  slicing (`x[:, :-1]`) and `ones_like`;
- models: `Cls(literal keywords)` of a class the run converts.
A call `M.init(rngs, *inputs, **call)` (or `init_with_output`, `jax.jit(M.init)(...)`) whose
model and inputs are all known gives the class an example: its constructor keywords, one
input SPEC per positional input (`float32[1,28,28,1]`, `int32[8,50]:0..408`, the syntax of
`check --input`), and the call keywords. A helper the code calls with a known model
(`self._check_decoder(model)`, `run(model, x)`) is read with its parameters bound, two calls
deep. Anything else (a shape computed at run time, a config attribute) gives no example.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field

_FILLERS = {"ones", "zeros", "empty"}
_RANDOM = {"normal", "uniform", "truncated_normal"}
_DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
           "uint8", "uint16", "uint32", "bool", "bool_"}
_SETUP = ("setUp", "setUpClass", "setup_method", "setup_class")
_DEPTH = 2  # helper calls read with bound parameters, nested
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod, ast.Pow: operator.pow, ast.Div: operator.truediv}


@dataclass
class Example:
    kwargs: dict
    inputs: list[str]
    call: dict = field(default_factory=dict)
    where: str = ""  # "train.py:12": the init site it comes from


class _Unknown(Exception):
    """A value the evaluator cannot read from the source."""


@dataclass(frozen=True)
class _Dtype:
    name: str


@dataclass(frozen=True)
class _Array:
    dtype: str
    shape: tuple
    low: int | None = None  # integer values drawn in [low, high)
    high: int | None = None

    def spec(self) -> str:
        text = f"{self.dtype}[{','.join(map(str, self.shape))}]"
        if self.low is not None and self.dtype.startswith(("int", "uint")):
            text += f":{self.low}..{self.high}"
        return text


@dataclass
class _Model:
    name: str
    kwargs: dict


class _Self:
    """`self` of a test class: the attributes its setUp assigns."""

    def __init__(self):
        self.attrs: dict = {}


class _Function:
    def __init__(self, node, owner: _Self | None):
        self.node, self.owner = node, owner


def _dtype_name(value) -> str:
    name = value.name if isinstance(value, _Dtype) else value if isinstance(value, str) else None
    if name not in _DTYPES:
        raise _Unknown
    return "bool" if name == "bool_" else name


def _shape(value) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise _Unknown
    return tuple(value)


def _plain(value):
    """Data a checks file can hold (the constructor's and the call's keywords)."""
    if isinstance(value, _Dtype):
        return value.name  # jax and Linen take a dtype's name too
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Unknown


def _literal_array(value, dtype) -> _Array:
    """`np.array([[2, 4, 3], [2, 6, 3]], np.int32)` -> int32[2,3] in [2, 7)."""
    shape, flat = [], [value]
    while flat and all(isinstance(v, (list, tuple)) for v in flat):
        if len({len(v) for v in flat}) != 1:
            raise _Unknown
        shape.append(len(flat[0]))
        flat = [x for v in flat for x in v]
    if not flat or not all(isinstance(v, (int, float, bool)) for v in flat):
        raise _Unknown
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in flat)
    name = _dtype_name(dtype) if dtype is not None else "int32" if ints else "float32"
    if name.startswith(("int", "uint")) and ints:
        return _Array(name, tuple(shape), min(flat), max(flat) + 1)
    return _Array(name, tuple(shape))


def _reshape(array: _Array, shape) -> _Array:
    shape = list(shape if isinstance(shape, (tuple, list)) else (shape,))
    size = 1
    for d in array.shape:
        size *= d
    if shape.count(-1) == 1:
        rest = 1
        for d in shape:
            rest *= d if d != -1 else 1
        if rest == 0 or size % rest:
            raise _Unknown
        shape[shape.index(-1)] = size // rest
    new = _shape(shape)
    total = 1
    for d in new:
        total *= d
    if total != size:
        raise _Unknown
    return _Array(array.dtype, new, array.low, array.high)


def _sliced(array: _Array, index) -> _Array:
    items = index if isinstance(index, tuple) else (index,)
    if len(items) > len(array.shape) or any(item is Ellipsis or item is None for item in items):
        raise _Unknown
    shape = []
    for dim, item in zip(array.shape, items, strict=False):
        if isinstance(item, slice):
            shape.append(len(range(*item.indices(dim))))
        elif not (isinstance(item, int) and -dim <= item < dim):
            raise _Unknown
    return _Array(array.dtype, (*shape, *array.shape[len(items):]), array.low, array.high)


class _Evaluator:
    """Reads one file; `out` collects class name -> examples."""

    def __init__(self, tree: ast.Module, classes: set[str], path: str):
        self.classes, self.path = classes, path
        self.out: dict[str, list[Example]] = {}
        self.functions: dict[str, _Function] = {}
        self.module_env: dict = {}
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[stmt.name] = _Function(stmt, None)
        self.depth = 0

    # -- statements ------------------------------------------------------------------
    def run_body(self, body, env: dict) -> object:
        """Runs the statements; returns the value of the first `return` reached (or None)."""
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # scopes of their own
            if isinstance(stmt, ast.Return):
                return self.value(stmt.value, env) if stmt.value is not None else None
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                value = self.value(stmt.value, env) if stmt.value is not None else _Unknown
                for target in targets:
                    self.bind(target, value, env)
            elif isinstance(stmt, ast.AugAssign):
                self.bind(stmt.target, _Unknown, env)
            elif isinstance(stmt, ast.Expr):
                self.value(stmt.value, env)
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                self.value(stmt.iter, env)
                self.bind(stmt.target, _Unknown, env)
                self.run_body(stmt.body, env)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    self.value(item.context_expr, env)
                    if item.optional_vars is not None:
                        self.bind(item.optional_vars, _Unknown, env)
                self.run_body(stmt.body, env)
            elif isinstance(stmt, (ast.If, ast.While)):
                self.value(stmt.test, env)
                self.run_body(stmt.body, env)
                self.run_body(stmt.orelse, env)
            elif isinstance(stmt, ast.Try):
                self.run_body(stmt.body, env)
        return None

    def bind(self, target, value, env: dict) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            owner = env.get(target.value.id)
            if isinstance(owner, _Self):
                owner.attrs[target.attr] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value if isinstance(value, (tuple, list)) and len(value) == len(target.elts) else None
            for i, element in enumerate(target.elts):
                self.bind(element, items[i] if items is not None else _Unknown, env)

    # -- expressions -----------------------------------------------------------------
    def value(self, node, env: dict):
        """The value of `node`, or the class `_Unknown` itself when it cannot be read
        (init sites inside it are still recorded)."""
        try:
            return self.eval(node, env)
        except _Unknown:
            return _Unknown
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, ZeroDivisionError, OverflowError,
                RecursionError):
            return _Unknown

    def known(self, node, env: dict):
        result = self.value(node, env)
        if result is _Unknown:
            raise _Unknown
        return result

    def eval(self, node, env: dict):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            if node.id in self.module_env:
                return self.module_env[node.id]
            raise _Unknown
        if isinstance(node, (ast.Tuple, ast.List)):
            items = []
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    items.extend(self.known(element.value, env))
                else:
                    items.append(self.known(element, env))
            return tuple(items) if isinstance(node, ast.Tuple) else items
        if isinstance(node, ast.Dict):
            out = {}
            for key, item in zip(node.keys, node.values, strict=True):
                if key is None:
                    out.update(self.known(item, env))
                else:
                    out[self.known(key, env)] = self.known(item, env)
            return out
        if isinstance(node, ast.Attribute):
            return self.attribute(node, env)
        if isinstance(node, ast.Subscript):
            base, index = self.known(node.value, env), self.index(node.slice, env)
            if isinstance(base, _Array):
                return _sliced(base, index)
            if isinstance(base, (tuple, list)) or isinstance(base, dict) and not isinstance(index, slice):
                return base[index]
            raise _Unknown
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = self.known(node.left, env), self.known(node.right, env)
            if isinstance(left, (_Array, _Model)) or isinstance(right, (_Array, _Model)):
                raise _Unknown
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self.known(node.operand, env)
            if not isinstance(operand, (int, float)):
                raise _Unknown
            return -operand
        if isinstance(node, ast.Call):
            return self.call(node, env)
        raise _Unknown

    def index(self, node, env):
        if isinstance(node, ast.Slice):
            parts = [None if part is None else self.known(part, env) for part in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if isinstance(node, ast.Tuple):
            return tuple(self.index(element, env) for element in node.elts)
        return self.known(node, env)

    def attribute(self, node: ast.Attribute, env):
        if node.attr in _DTYPES and isinstance(node.value, ast.Name) and node.value.id in ("jnp", "np", "numpy"):
            return _Dtype(node.attr)
        base = self.known(node.value, env)
        if isinstance(base, _Self):
            if node.attr in base.attrs:
                return base.attrs[node.attr]
            raise _Unknown
        if isinstance(base, _Array):
            if node.attr == "shape":
                return base.shape
            if node.attr == "dtype":
                return _Dtype(base.dtype)
            if node.attr == "ndim":
                return len(base.shape)
        raise _Unknown

    # -- calls -----------------------------------------------------------------------
    def call(self, node: ast.Call, env):
        func = node.func
        args = [self.value(arg.value if isinstance(arg, ast.Starred) else arg, env) for arg in node.args]
        values = [self.value(k.value, env) for k in node.keywords]
        keywords = {k.arg: value for k, value in zip(node.keywords, values, strict=True)}
        if isinstance(func, ast.Call):  # jax.jit(model.init)(key, x)
            inner = func
            if inner.args and isinstance(inner.args[0], ast.Attribute) and inner.args[0].attr in ("init", "init_with_output"):
                self.init_site(inner.args[0].value, node, args, keywords, env)
            raise _Unknown
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name is None:
            raise _Unknown
        if name in ("init", "init_with_output") and isinstance(func, ast.Attribute):
            self.init_site(func.value, node, args, keywords, env)
            raise _Unknown
        if name in self.classes:
            return self.model(node, name, args, values)
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _Unknown
        if isinstance(func, ast.Attribute):
            receiver = self.value(func.value, env)
            if isinstance(receiver, _Array):
                return self.array_method(receiver, name, args, keywords)
            if isinstance(receiver, _Self):
                self.helper(receiver, name, node, args, keywords)
                raise _Unknown
        elif name in self.functions:
            self.helper(None, name, node, args, keywords)
            raise _Unknown
        return self.array_factory(name, args, keywords)

    def model(self, node: ast.Call, name, args, values):
        if args:
            raise _Unknown
        kwargs = {}
        for keyword, value in zip(node.keywords, values, strict=True):
            if value is _Unknown:
                raise _Unknown
            if keyword.arg is None:
                if not isinstance(value, dict):
                    raise _Unknown
                kwargs.update(value)
            else:
                kwargs[keyword.arg] = value
        return _Model(name, {k: _plain(v) for k, v in kwargs.items()})

    def init_site(self, receiver_node, node: ast.Call, args, keywords, env) -> None:
        receiver = self.value(receiver_node, env)
        if not isinstance(receiver, _Model) or "method" in keywords or None in keywords:
            return
        inputs = args[1:]
        if not inputs or not all(isinstance(a, _Array) for a in inputs):
            return
        if any(isinstance(a, ast.Starred) for a in node.args):
            return
        try:
            call = {k: _plain(v) for k, v in keywords.items() if v is not _Unknown}
        except _Unknown:
            return
        if len(call) != len(keywords):
            return
        where = f"{self.path}:{node.lineno}"
        examples = self.out.setdefault(receiver.name, [])
        if not any(e.where == where for e in examples):
            examples.append(Example(dict(receiver.kwargs), [a.spec() for a in inputs], call, where))

    def helper(self, owner, name, node: ast.Call, args, keywords) -> None:
        """Reads a helper the code calls with a known model or array, its parameters bound."""
        function = owner.methods.get(name) if isinstance(owner, _SelfWithMethods) else self.functions.get(name)
        if function is None or self.depth >= _DEPTH:
            return
        if not any(isinstance(v, (_Model, _Array)) for v in (*args, *keywords.values())):
            return
        parameters = function.node.args
        names = [a.arg for a in (*parameters.posonlyargs, *parameters.args)]
        env: dict = {}
        if owner is not None and names:
            env[names[0]] = owner
            names = names[1:]
        for parameter, value in zip(names, args, strict=False):
            env[parameter] = value
        for key, value in keywords.items():
            if key is not None:
                env[key] = value
        self.depth += 1
        try:
            self.run_body(function.node.body, env)
        finally:
            self.depth -= 1

    def array_method(self, array: _Array, name, args, keywords):
        if name == "reshape":
            return _reshape(array, args[0] if len(args) == 1 else tuple(args))
        if name == "astype" and args:
            return _Array(_dtype_name(args[0]), array.shape)
        raise _Unknown

    def array_factory(self, name, args, keywords):
        dtype = keywords.get("dtype")
        if name in _FILLERS and (args or "shape" in keywords):
            shape = args[0] if args else keywords["shape"]
            return _Array(_dtype_name(args[1] if len(args) > 1 else dtype or "float32"), _shape(shape))
        if name == "full" and len(args) >= 2:
            default = "int32" if isinstance(args[1], int) and not isinstance(args[1], bool) else "float32"
            return _Array(_dtype_name(args[2] if len(args) > 2 else dtype or default), _shape(args[0]))
        if name in ("ones_like", "zeros_like") and args and isinstance(args[0], _Array):
            return _Array(args[0].dtype if dtype is None else _dtype_name(dtype), args[0].shape)
        if name in ("array", "asarray") and args:
            return _literal_array(args[0], args[1] if len(args) > 1 else dtype)
        if name == "arange" and args and all(isinstance(a, int) for a in args[:2]):
            start, stop = (0, args[0]) if len(args) == 1 else (args[0], args[1])
            name = _dtype_name(dtype) if dtype is not None else "int32"
            return _Array(name, (max(stop - start, 0),), start, max(stop, start + 1))
        if name in _RANDOM and "size" in keywords and not args:  # numpy's RandomState(0).normal(size=...)
            return _Array("float32", _shape(keywords["size"]))
        if name in _RANDOM and len(args) >= 2:
            return _Array(_dtype_name(args[2] if len(args) > 2 else dtype or "float32"), _shape(args[1]))
        if name in ("normal", "uniform", "truncated_normal") and len(args) == 1 and "shape" in keywords:
            return _Array(_dtype_name(dtype or "float32"), _shape(keywords["shape"]))
        if name == "randint" and len(args) >= 4:  # jax.random.randint(key, shape, minval, maxval)
            low, high = args[2], args[3]
            if isinstance(low, int) and isinstance(high, int) and high > low:
                return _Array(_dtype_name(args[4] if len(args) > 4 else dtype or "int32"), _shape(args[1]), low, high)
        if name == "bernoulli" and len(args) >= 3:
            return _Array("bool", _shape(args[2]))
        if name in ("rand", "randn") and args:  # numpy's rand(d0, d1, ...)
            return _Array("float32", _shape(tuple(args)))
        raise _Unknown


class _SelfWithMethods(_Self):
    def __init__(self, methods: dict[str, _Function]):
        super().__init__()
        self.methods = methods


def collect_examples(source: str, classes: set[str], path: str = "") -> dict[str, list[Example]]:
    """Class name -> the examples its `init` sites in `source` give (in source order)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    evaluator = _Evaluator(tree, classes, path)
    evaluator.run_body(tree.body, evaluator.module_env)
    scopes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            methods = {s.name: _Function(s, None) for s in node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
            owner = _SelfWithMethods(methods)
            for name in _SETUP:  # what setUp gives every test method
                if name in methods:
                    _run_method(evaluator, methods[name].node, owner)
            scopes.extend((method.node, owner) for method in methods.values())
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not any(node is n for n, _ in scopes):
            scopes.append((node, None))
    for node, owner in scopes:
        if owner is not None:
            _run_method(evaluator, node, owner)
        else:
            evaluator.run_body(node.body, {})
    return {name: examples for name, examples in evaluator.out.items() if examples}


def _run_method(evaluator: _Evaluator, node, owner: _Self) -> None:
    parameters = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    env = {parameters[0]: owner} if parameters else {}
    evaluator.run_body(node.body, env)
