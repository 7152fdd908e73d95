"""Input-size inference: the last dimension of the arrays a method computes, as Python
source that is valid in the generated `__init__` (fields via `self.`, input-size
parameters such as `in_features`, literals, hoisted static locals). Unknown is None,
never a guess."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite import templates
from nnx_migrate.rewrite.lines import render
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.visitors import FastTransformer

# Builtins an `__init__` may call while computing a size from fields.
_STATIC_BUILTINS = frozenset({"int", "len", "max", "min", "sum", "round", "abs", "tuple", "list", "range", "float", "bool", "str", "None", "True", "False", "isinstance", "dict", "sorted", "zip", "enumerate", "any", "all"})


# A class conversion renders the same nodes again and again (a value's text for a literal
# check, then as a local's source; a size expression per use): trees are immutable, so
# each node's text is kept. The entry holds the node, so its id is not reused meanwhile.
_TEXTS: dict[int, tuple[cst.CSTNode, str]] = {}


def code(node: cst.CSTNode) -> str:
    entry = _TEXTS.get(id(node))
    if entry is not None and entry[0] is node:
        return entry[1]
    text = render(node)
    if len(_TEXTS) >= 4096:
        _TEXTS.clear()
    _TEXTS[id(node)] = (node, text)
    return text


def size_param_name(index: int, arg: str) -> str:
    """Contract with the harness: first positional `__call__` argument -> `in_features`,
    another positional argument `a` -> `a_in_features`."""
    return "in_features" if index == 0 else f"{arg}_in_features"


@dataclass
class Scope:
    """What one method body knows while it is walked in execution order."""

    imports: ImportMap
    fields: set[str]
    method_locals: set[str]  # every name bound in the method (params included)
    env: dict[str, str | None] = field(default_factory=dict)  # array local -> last-dim size
    static: dict[str, tuple[str, list]] = field(default_factory=dict)  # field-only locals: (__init__ source, hoists)
    module_names: set[str] = field(default_factory=set)  # names bound at module level
    extra_static_attrs: set[str] = field(default_factory=set)  # self.X usable in __init__
    loop_vars: set[str] = field(default_factory=set)  # targets of a loop __init__ replicates
    aliases: dict[str, str] = field(default_factory=dict)  # local int -> the size it equals
    literals: dict[str, cst.BaseExpression] = field(default_factory=dict)  # local -> its literal value
    optional_params: dict[str, str] = field(default_factory=dict)  # call argument defaulting to None -> its size parameter
    shapes: dict[str, tuple] = field(default_factory=dict)  # array local -> whole shape, in straight-line code (shapes.py)


# Functions whose result has the shape given by their `shape` argument.
# functions whose result has the shape given as their second argument (or `shape=`)
_SHAPE_FUNCTIONS = frozenset({"jax.numpy.reshape", "jax.image.resize", "jax.numpy.broadcast_to", "jax.random.normal", "jax.random.uniform"})
# array constructors whose first argument (or `shape=`) is the shape: a carry made as
# `jnp.zeros((batch, self.hidden))` has the size `self.hidden`
_CREATION_FUNCTIONS = frozenset({"jax.numpy.zeros", "jax.numpy.ones", "jax.numpy.empty", "jax.numpy.full"})


class NotStatic(Exception):
    pass


class _StaticTranslator(FastTransformer):
    """Rewrites `x.shape[-1]` into x's known size; raises NotStatic on anything that
    depends on the method's arrays."""

    def __init__(self, scope: Scope, used_static: list[str]) -> None:
        self.scope = scope
        self.used_static = used_static
        self._lambda_params: list[set[str]] = []
        self._alias_nodes: set[int] = set()
        self._not_refs: dict[int, cst.CSTNode] = {}

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._lambda_params.append({p.name.value for p in node.params.params})

    def leave_Lambda(self, original, updated):
        self._lambda_params.pop()
        return updated

    @staticmethod
    def _is_last_dim(original: cst.Subscript) -> bool:
        value = original.value
        return (
            isinstance(value, cst.Attribute)
            and value.attr.value == "shape"
            and isinstance(value.value, cst.Name)
            and len(original.slice) == 1
            and isinstance(original.slice[0].slice, cst.Index)
            and code(original.slice[0].slice.value).replace(" ", "") == "-1"
        )

    def visit_Subscript(self, node: cst.Subscript):
        if self._is_last_dim(node) and node.value.value.value in self.scope.env:
            return False
        return True

    def leave_Subscript(self, original: cst.Subscript, updated):
        # x.shape[-1]
        value = original.value
        if self._is_last_dim(original) and value.value.value in self.scope.env:
            size = self.scope.env[value.value.value]
            if size is None:
                raise NotStatic(f"the size of '{value.value.value}' is not known")
            return templates.parse_expression(f"({size})" if not size.isidentifier() and not size.isdigit() else size)
        return updated

    def visit_Attribute(self, node: cst.Attribute):
        self._not_refs[id(node.attr)] = node.attr  # `b` of `a.b` is no variable
        if isinstance(node.value, cst.Name) and node.value.value == "self":
            if node.attr.value not in self.scope.fields and node.attr.value not in self.scope.extra_static_attrs:
                raise NotStatic(f"'self.{node.attr.value}' is not a field")
            return False
        return True

    def leave_Name(self, original: cst.Name, updated):
        if id(original) in self._alias_nodes:
            size = self.scope.aliases[original.value]
            return templates.parse_expression(size if size.isidentifier() or size.isdigit() else f"({size})")
        return updated

    def visit_Name(self, node: cst.Name) -> None:
        if self._not_refs.get(id(node)) is node:
            return
        name = node.value
        if name in self.scope.aliases and not any(name in params for params in self._lambda_params):
            self._alias_nodes.add(id(node))
            return
        if any(name in params for params in self._lambda_params):
            return
        if name == "self":
            raise NotStatic("uses 'self'")
        if name in self.scope.loop_vars:
            return
        if name in self.scope.static:
            if name not in self.used_static:
                self.used_static.append(name)
            return
        if name in self.scope.method_locals:
            raise NotStatic(f"depends on the local '{name}'")

    def visit_Call(self, node: cst.Call):
        func = node.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            raise NotStatic("calls a method of the module")
        return True

    # Keyword names and attribute names are not variable references.
    def visit_Arg(self, node: cst.Arg):
        if node.keyword is not None:
            self._not_refs[id(node.keyword)] = node.keyword
        return True

    def visit_Param(self, node: cst.Param):
        return False


def translate_static(expr: cst.BaseExpression, scope: Scope, used_static: list[str] | None = None) -> str:
    """The expression as `__init__` source, or NotStatic saying why it cannot be."""
    used = used_static if used_static is not None else []
    translator = _StaticTranslator(scope, used)
    # Attribute names (the `b` of `a.b`) are Name nodes too: shield them.
    return code(translator.transform(expr))


def try_static(expr: cst.BaseExpression, scope: Scope, used_static: list[str] | None = None) -> str | None:
    try:
        return translate_static(expr, scope, used_static)
    except NotStatic:
        return None


def none_test(test: cst.BaseExpression, scope: Scope) -> str | None:
    """`arg is None` / `arg is not None` on a call argument that defaults to None, as the
    same test on its input size in `__init__` (the size is None when the argument is not
    given); None for any other test."""
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and isinstance(test.left, cst.Name)):
        return None
    target = test.comparisons[0]
    if not (isinstance(target.comparator, cst.Name) and target.comparator.value == "None" and isinstance(target.operator, (cst.Is, cst.IsNot))):
        return None
    name = test.left.value
    param = scope.optional_params.get(name)
    if param is None or scope.env.get(name) != param:
        return None  # not the argument as given any more
    return f"{param} is None" if isinstance(target.operator, cst.Is) else f"{param} is not None"


def _parenthesized_src(src: str) -> str:
    return src if src.isidentifier() or src.isdigit() else f"({src})"


def scalar(size) -> str | None:
    """A single array's size; None for a tuple or unknown."""
    return size if isinstance(size, str) else None


class SizeOf:
    """Last-dimension size of an expression, given callbacks for the constructs the class
    converter knows (layer calls)."""

    def __init__(self, scope: Scope, keep_last_dim: frozenset[str], keep_methods: frozenset[str], call_size: Callable[[cst.Call, Scope], str | None]):
        self.scope = scope
        self.keep = keep_last_dim
        self.keep_methods = keep_methods
        self.call_size = call_size
        self.shape_of = None  # whole shapes (shapes.ShapeOf), where the caller follows them

    def __call__(self, expr: cst.BaseExpression):
        """A size (str), a tuple of sizes for a tuple of arrays, or None."""
        scope = self.scope
        if isinstance(expr, cst.Name):
            return scope.env.get(expr.value)
        if isinstance(expr, cst.Tuple):
            if any(isinstance(el, cst.StarredElement) for el in expr.elements):
                return None
            return tuple(self(el.value) for el in expr.elements)
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index) and isinstance(expr.slice[0].slice.value, cst.Integer):
            whole = self(expr.value)
            index = int(expr.slice[0].slice.value.value)
            if isinstance(whole, tuple) and index < len(whole):
                return whole[index]
            return None
        if isinstance(expr, cst.Call):
            known = self.call_size(expr, scope)
            if known is not None:
                return known
            qual = scope.imports.qualify(expr.func)
            if qual in self.keep and expr.args:
                return scalar(self(expr.args[0].value))
            if qual in ("jax.numpy.concatenate", "jax.numpy.concat") and expr.args:
                return self._concat(expr)
            if qual == "jax.numpy.split" and len(expr.args) >= 2:
                return self._split(expr)
            if qual == "jax.numpy.stack" and expr.args:
                return self._stack(expr)
            if qual in ("jax.numpy.dot", "jax.numpy.matmul") and len(expr.args) == 2 and all(a.keyword is None and not a.star for a in expr.args):
                return self.shape_of.last_of_matmul(expr.args[0].value, expr.args[1].value) if self.shape_of is not None else None
            if qual == "jax.numpy.einsum" and expr.args:
                return self._einsum(expr)
            if qual == "jax.numpy.pad" and expr.args and expr.args[0].keyword is None and self._pads_last_axis_by_zero(expr):
                return scalar(self(expr.args[0].value))
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in self.keep_methods:
                return scalar(self(func.value))
            shape = None
            if isinstance(func, cst.Attribute) and func.attr.value == "reshape" and qual is None:
                positional = [a.value for a in expr.args if a.keyword is None and not a.star]
                shape = positional[0] if len(positional) == 1 else (cst.Tuple([cst.Element(v) for v in positional]) if positional else None)
            elif qual in _SHAPE_FUNCTIONS or qual in _CREATION_FUNCTIONS:
                shape = next((a.value for a in expr.args if a.keyword is not None and a.keyword.value == "shape"), None)
                positional = [a.value for a in expr.args if a.keyword is None and not a.star]
                where = 0 if qual in _CREATION_FUNCTIONS else 1
                if shape is None and len(positional) > where:
                    shape = positional[where]
            if isinstance(shape, (cst.Tuple, cst.List)) and shape.elements and not isinstance(shape.elements[-1], cst.StarredElement):
                # the new shape's last entry, when __init__ can compute it (`channels`
                # from `b, h, w, channels = x.shape`, a field, a literal)
                last = try_static(shape.elements[-1].value, scope)
                if last is not None and last.replace(" ", "") not in ("-1",):
                    return last
            if shape is not None or qual == "jax.numpy.reshape":
                # a reshape with -1 merging axes whose sizes are known
                whole = self.shape_of(expr) if self.shape_of is not None else None
                if whole:
                    return whole[-1]
            return None
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.MatrixMultiply):
                # `x @ kernel` with a parameter of known shape: the kernel's last axis
                return self.shape_of.last_of_matmul(expr.left, expr.right) if self.shape_of is not None else None
            left = scalar(self(expr.left))
            if left is not None:
                # Broadcasting: a last axis of size 1 takes the other operand's size.
                if left.strip() == "1" and not isinstance(expr.right, (cst.Integer, cst.Float)):
                    return scalar(self(expr.right))
                return left
            if isinstance(expr.left, (cst.Integer, cst.Float)):
                return scalar(self(expr.right))
            return None
        if isinstance(expr, cst.UnaryOperation):
            return scalar(self(expr.expression))
        if isinstance(expr, cst.IfExp):
            a, b = self(expr.body), self(expr.orelse)
            if a == b:
                return a
            cond = none_test(expr.test, scope)
            if cond is None:
                used: list[str] = []
                cond = try_static(expr.test, scope, used)
                cond = None if used else cond  # (a local __init__ would have to recompute first)
            if cond is not None and isinstance(a, str) and isinstance(b, str):
                # `context = x if context is None else context`
                return f"{_parenthesized_src(a)} if {cond} else {_parenthesized_src(b)}"
            return None
        return None

    def _einsum(self, expr: cst.Call) -> str | None:
        """`jnp.einsum('bij,bjd->bid', a, v)`: the output's last index is the last axis of
        an operand (`v`), whose size it has."""
        spec = expr.args[0].value
        if not isinstance(spec, cst.SimpleString) or not isinstance(spec.evaluated_value, str):
            return None
        text = spec.evaluated_value.replace(" ", "")
        if text.count("->") != 1:
            return None
        inputs, output = text.split("->")
        if not output or not output[-1].isalpha():
            return None
        operands = [a.value for a in expr.args[1:] if a.keyword is None and not a.star]
        subscripts = inputs.split(",")
        if len(subscripts) != len(operands) or any(a.star for a in expr.args[1:]):
            return None
        for sub, operand in zip(subscripts, operands, strict=False):
            if sub and sub[-1] == output[-1]:
                return scalar(self(operand))
        return None

    def _pads_last_axis_by_zero(self, expr: cst.Call) -> bool:
        """`jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))`: the last axis gets no padding
        (the pad width a literal, or a local bound to one)."""
        width = next((a.value for a in expr.args[1:] if a.keyword is not None and a.keyword.value == "pad_width"), None)
        if width is None and len(expr.args) > 1 and expr.args[1].keyword is None:
            width = expr.args[1].value
        if isinstance(width, cst.Name):
            width = self.scope.literals.get(width.value)
        if width is None:
            return False
        try:
            value = ast.literal_eval(code(width))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return False
        if isinstance(value, int):
            return value == 0
        if isinstance(value, (tuple, list)) and value:
            last = value[-1]
            if isinstance(last, int):  # one (before, after) pair for every axis
                return tuple(value) == (0, 0) or value == [0, 0]
            return isinstance(last, (tuple, list)) and list(last) == [0, 0]
        return False

    @staticmethod
    def _axis(expr: cst.Call, position: int, default: str) -> str:
        """The call's `axis` argument as source (keyword, or positional at `position`)."""
        for i, arg in enumerate(expr.args):
            if (arg.keyword is not None and arg.keyword.value == "axis") or (arg.keyword is None and i == position):
                return code(arg.value).replace(" ", "")
        return default

    def _is_last_axis(self, axis: str, array: cst.BaseExpression) -> bool | None:
        """Whether `axis` is the array's last: -1 is; another literal only where the number
        of axes is known (axis 1 of a matrix is its last); None where it cannot be told."""
        if axis == "-1":
            return True
        if not axis.lstrip("-").isdigit():
            return None
        whole = self.shape_of(array) if self.shape_of is not None else None
        if whole is None:
            return None
        return int(axis) in (len(whole) - 1, -1)

    def _split(self, expr: cst.Call):
        """`a, b = jnp.split(h, 2, axis=-1)`: equal parts of the last axis; along another
        axis every part keeps the last size. A tuple of the parts' sizes."""
        array = expr.args[0].value
        sections = expr.args[1].value if expr.args[1].keyword is None else None
        if not isinstance(sections, cst.Integer) or expr.args[0].keyword is not None:
            return None
        count = int(sections.value)
        size = scalar(self(array))
        last = self._is_last_axis(self._axis(expr, 2, "0"), array)
        if size is None or last is None or count < 1:
            return None
        part = f"{_parenthesized_src(size)} // {count}" if last else size
        return (part,) * count

    def _stack(self, expr: cst.Call) -> str | None:
        """`jnp.stack([a, b, c], axis=-1)`: a new last axis of the parts' count; at axis 0
        the parts' own last axis stays last (parts with a size have at least one axis)."""
        seq = expr.args[0].value
        if expr.args[0].keyword is not None or not isinstance(seq, (cst.List, cst.Tuple)) or not seq.elements:
            return None
        if any(isinstance(el, cst.StarredElement) for el in seq.elements):
            return None
        axis = self._axis(expr, 1, "0")
        if axis == "-1":
            return str(len(seq.elements))
        sizes = {scalar(self(el.value)) for el in seq.elements}
        if axis == "0" and len(sizes) == 1 and None not in sizes:
            return sizes.pop()
        return None

    def _concat(self, expr: cst.Call) -> str | None:
        axis = self._axis(expr, 1, "0")
        seq = expr.args[0].value
        if axis != "-1" and isinstance(seq, (cst.List, cst.Tuple)) and seq.elements and not isinstance(seq.elements[0], cst.StarredElement):
            last = self._is_last_axis(axis, seq.elements[0].value)
            if last is None:
                return None
            if not last:
                # along another axis the parts share their last size
                sizes = {scalar(self(el.value)) for el in seq.elements if not isinstance(el, cst.StarredElement)}
                return sizes.pop() if len(sizes) == 1 and None not in sizes else None
        elif axis != "-1":
            return None
        if not isinstance(seq, (cst.List, cst.Tuple)):
            return None
        parts = []
        for el in seq.elements:
            if isinstance(el, cst.StarredElement):
                return None
            size = scalar(self(el.value))
            if size is None:
                return None
            parts.append(size if size.isidentifier() or size.isdigit() else f"({size})")
        return " + ".join(parts) if parts else None


class _NameSubstitution(FastTransformer):
    """Replaces variable references and `self.<attr>` in a size expression through two
    callbacks that return replacement source or raise NotStatic."""

    def __init__(self, on_name: Callable[[str], str], on_self_attr: Callable[[str], str]) -> None:
        self.on_name = on_name
        self.on_self_attr = on_self_attr
        self._not_refs: set[int] = set()

    def visit_Attribute(self, node: cst.Attribute):
        self._not_refs.add(id(node.attr))
        return not (isinstance(node.value, cst.Name) and node.value.value == "self")

    def visit_Arg(self, node: cst.Arg):
        if node.keyword is not None:
            self._not_refs.add(id(node.keyword))
        return True

    def visit_Lambda(self, node: cst.Lambda):
        raise NotStatic("a lambda in a size")

    def leave_Attribute(self, original: cst.Attribute, updated):
        if isinstance(original.value, cst.Name) and original.value.value == "self":
            return _parenthesized(self.on_self_attr(original.attr.value))
        return updated

    def leave_Name(self, original: cst.Name, updated):
        if id(original) in self._not_refs:
            return updated
        if original.value in _STATIC_BUILTINS:
            return updated
        return _parenthesized(self.on_name(original.value))


_ATOMS = (cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.Subscript, cst.Call, cst.SimpleString)


def _parenthesized(src: str) -> cst.BaseExpression:
    expr = templates.parse_expression(src)
    if isinstance(expr, _ATOMS) or expr.lpar:
        return expr
    return templates.parse_expression(f"({src})")


class _FoldNoneTests(FastTransformer):
    """`a if None is None else b` -> `a`: a default substituted into a test on it."""

    def leave_IfExp(self, original, updated: cst.IfExp):
        test = updated.test
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            target = test.comparisons[0]
            left, right = test.left, target.comparator
            if isinstance(right, cst.Name) and right.value == "None" and isinstance(left, (cst.Name, cst.Integer, cst.Float)) and (not isinstance(left, cst.Name) or left.value in ("None", "True", "False")):
                is_none = isinstance(left, cst.Name) and left.value == "None"
                if isinstance(target.operator, cst.Is):
                    return updated.body if is_none else updated.orelse
                if isinstance(target.operator, cst.IsNot):
                    return updated.orelse if is_none else updated.body
        return updated


def substitute_names(src: str, on_name: Callable[[str], str], on_self_attr: Callable[[str], str]) -> str | None:
    """`src` with its variables and `self.<attr>` replaced; None when a callback refuses."""
    try:
        expr = _NameSubstitution(on_name, on_self_attr).transform(templates.parse_expression(src))
        return code(_strip_parens(_FoldNoneTests().transform(expr)))
    except (NotStatic, cst.ParserSyntaxError):
        return None


def _strip_parens(expr: cst.BaseExpression) -> cst.BaseExpression:
    """A folded branch keeps its parentheses; an atom does not need them."""
    if isinstance(expr, _ATOMS) and expr.lpar:
        return expr.with_changes(lpar=[], rpar=[])
    return expr


def portable_size(src: str | None, fields: set[str], size_params: set[str], local_sources: dict[str, str]) -> str | None:
    """An output size in a class's own terms that a parent can translate: only literals,
    builtins, `self.<field>` and input-size parameters. Locals that `__init__` computes
    from those (`out = self.a if self.b is None else self.b`) are replaced by their
    definition."""
    if src is None:
        return None

    def on_name(name: str, depth: int = 0) -> str:
        if name in size_params:
            return name
        if name in local_sources and depth < 8:
            inner = substitute_names(local_sources[name], lambda n: on_name(n, depth + 1), on_self_attr)
            if inner is not None:
                return inner
        raise NotStatic(f"'{name}' is local to the class")

    def on_self_attr(attr: str) -> str:
        if attr in fields:
            return f"self.{attr}"
        raise NotStatic(f"'self.{attr}' is not a field")

    return substitute_names(src, on_name, on_self_attr)
