"""Whole shapes of arrays in straight-line code: a tuple with one entry per axis, each the
axis's size as `__init__` source or None where the class does not know it (a batch or
spatial size of the input). They come from reshapes with explicit sizes and from einsums
of arrays whose shapes are known; they give the size after a reshape with `-1` (merging
heads: `x.reshape(x.shape[:2] + (-1,))` is `heads * head_dim`), which is the product of
the merged axes only when every one of them is known. Nothing is guessed."""

from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.rewrite.sizes import scalar, try_static

Shape = tuple  # of str | None


def _int(node: cst.BaseExpression) -> int | None:
    if isinstance(node, cst.Integer):
        return int(node.value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and isinstance(node.expression, cst.Integer):
        return -int(node.expression.value)
    return None


def _source_dim(node: cst.BaseExpression, source: str | None) -> int | None:
    """`x.shape[i]` (i >= 0) of the reshaped array `x`: the axis i."""
    if (
        source is not None and isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute)
        and node.value.attr.value == "shape" and isinstance(node.value.value, cst.Name) and node.value.value.value == source
        and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index)
    ):
        index = _int(node.slice[0].slice.value)
        return index if index is not None and index >= 0 else None
    return None


def _source_lead(node: cst.BaseExpression, source: str | None) -> int | None:
    """`x.shape[:k]` of the reshaped array `x`: its first k axes."""
    if (
        source is not None and isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute)
        and node.value.attr.value == "shape" and isinstance(node.value.value, cst.Name) and node.value.value.value == source
        and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Slice)
    ):
        piece = node.slice[0].slice
        if piece.lower is None and piece.step is None and piece.upper is not None:
            k = _int(piece.upper)
            return k if k is not None and k >= 0 else None
    return None


def _product(dims) -> str:
    return " * ".join(d if re.fullmatch(r"[\w.]+", d) else f"({d})" for d in dims)


# Functions that return their first argument's array unchanged but for its placement.
SHARDING_CONSTRAINTS = frozenset({
    "flax.linen.with_logical_constraint", "flax.linen.partitioning.with_sharding_constraint", "jax.lax.with_sharding_constraint",
})


class ShapeOf:
    """Whole shape of an expression (a tuple of entries), or None where even the number of
    axes is unknown."""

    def __init__(self, size_of) -> None:
        self.size_of = size_of
        self.scope = size_of.scope

    def __call__(self, expr: cst.BaseExpression) -> Shape | None:
        if isinstance(expr, cst.Name):
            return self.scope.shapes.get(expr.value)
        if not isinstance(expr, cst.Call):
            return None
        qual = self.scope.imports.qualify(expr.func)
        positional = [a.value for a in expr.args if a.keyword is None and not a.star]
        if any(a.star for a in expr.args):
            return None
        if isinstance(expr.func, cst.Attribute) and isinstance(expr.func.value, cst.Name) and expr.func.value.value == "self" and expr.func.attr.value == "param":
            return self._param(positional)
        if qual in SHARDING_CONSTRAINTS and positional:
            return self(positional[0])  # the array itself, placed on devices
        if qual in ("jax.numpy.dot", "jax.numpy.matmul") and len(positional) == 2 and len(expr.args) == 2:
            return self._matmul(positional[0], positional[1])
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "reshape" and qual is None:
            array = expr.func.value
            target = positional[0] if len(positional) == 1 else (cst.Tuple([cst.Element(v) for v in positional]) if positional else None)
        elif qual == "jax.numpy.reshape" and len(positional) == 2:
            array, target = positional
        elif qual == "jax.numpy.einsum" and positional:
            return self._einsum(expr.args[0].value, positional[1:])
        else:
            return None
        if target is None or any(a.keyword is not None for a in expr.args):
            return None
        return self._reshape(array, target)

    def _param(self, positional) -> Shape | None:
        """`self.param('kernel', init, (x.shape[-1], self.features))`: an initializer's
        second argument is the shape it makes (Linen's and JAX's initializers, or a field
        named for one: `self.kernel_init`); each entry as `__init__` computes it
        (`x.shape[-1]` is the input's size, what a Dense gets as `in_features`)."""
        if len(positional) != 3 or not isinstance(positional[2], (cst.Tuple, cst.List)):
            return None
        init = positional[1]
        qual = self.scope.imports.qualify(init.func if isinstance(init, cst.Call) else init) or ""
        by_field = isinstance(init, cst.Attribute) and isinstance(init.value, cst.Name) and init.value.value == "self" and init.attr.value.endswith("init")
        if not (by_field or qual.startswith(("jax.nn.initializers.", "flax.linen.initializers.", "flax.nnx.initializers."))):
            return None
        elements = positional[2].elements
        if any(isinstance(el, cst.StarredElement) for el in elements):
            return None
        return tuple(try_static(el.value, self.scope) for el in elements)

    def _matmul(self, left: cst.BaseExpression, right: cst.BaseExpression) -> Shape | None:
        """`x @ w` with `w` of known shape (two axes or more): the product's last axis is
        w's last; the others are not followed."""
        kernel = self(right)
        if kernel is None or len(kernel) < 2 or kernel[-1] is None:
            return None
        left_shape = self(left)
        if left_shape is not None and len(left_shape) == 2 and len(kernel) == 2:
            return (left_shape[0], kernel[-1])
        return None

    def last_of_matmul(self, left: cst.BaseExpression, right: cst.BaseExpression) -> str | None:
        kernel = self(right)
        if kernel is None or len(kernel) < 2:
            return None
        return kernel[-1]

    def _entries(self, target: cst.BaseExpression, source: str | None):
        """The target shape as a list of entries: ("axis", i) for the source's axis i kept,
        ("size", src_or_None), ("rest",) for -1; None if its length is unknown."""
        if isinstance(target, cst.BinaryOperation) and isinstance(target.operator, cst.Add):
            left, right = self._entries(target.left, source), self._entries(target.right, source)
            return None if left is None or right is None else left + right
        lead = _source_lead(target, source)
        if lead is not None:
            return [("axis", i) for i in range(lead)]
        if isinstance(target, (cst.Tuple, cst.List)):
            out = []
            for el in target.elements:
                if isinstance(el, cst.StarredElement):
                    lead = _source_lead(el.value, source)
                    if lead is None:
                        return None
                    out.extend(("axis", i) for i in range(lead))
                    continue
                out.extend(self._entries(el.value, source) or [None])
            return None if None in out else out
        if _int(target) == -1:
            return [("rest",)]
        axis = _source_dim(target, source)
        if axis is not None:
            return [("axis", axis)]
        if isinstance(target, (cst.Integer, cst.Name, cst.Attribute, cst.BinaryOperation, cst.Subscript, cst.Call)):
            return [("size", try_static(target, self.scope))]
        return None

    def _reshape(self, array: cst.BaseExpression, target: cst.BaseExpression) -> Shape | None:
        source = array.value if isinstance(array, cst.Name) else None
        entries = self._entries(target, source)
        if not entries:
            return None
        before = self(array)
        dims: list[str | None] = []
        for position, entry in enumerate(entries):
            if entry[0] == "size":
                dims.append(entry[1] if entry[1] is None or entry[1].replace(" ", "") != "-1" else None)
            elif entry[0] == "axis":
                dims.append(before[entry[1]] if before is not None and entry[1] < len(before) else None)
            else:
                dims.append(self._rest(entries, position, before))
        return tuple(dims)

    @staticmethod
    def _rest(entries, position: int, before: Shape | None) -> str | None:
        """The -1 entry: when it is the last one and every entry before it keeps the
        source's axis at the same place, the product of the source's remaining axes (all
        of them known); else unknown."""
        if before is None or position != len(entries) - 1:
            return None
        if any(entry != ("axis", i) for i, entry in enumerate(entries[:position])):
            return None
        merged = before[position:]
        if not merged or any(d is None for d in merged):
            return None
        return _product(merged)

    def _einsum(self, spec: cst.BaseExpression, operands) -> Shape | None:
        """`jnp.einsum('bhqk,bkhd->bqhd', w, v)`: each output axis has the size of the
        operand axis with the same letter."""
        if not isinstance(spec, cst.SimpleString) or not isinstance(spec.evaluated_value, str):
            return None
        text = spec.evaluated_value.replace(" ", "")
        if text.count("->") != 1 or "." in text:
            return None
        inputs, output = text.split("->")
        subscripts = inputs.split(",")
        if len(subscripts) != len(operands) or not output.isalpha():
            return None
        letters: dict[str, str] = {}
        for sub, operand in zip(subscripts, operands, strict=False):
            shape = self(operand)
            if shape is not None and len(shape) == len(sub):
                for letter, dim in zip(sub, shape, strict=False):
                    if dim is not None:
                        letters.setdefault(letter, dim)
            elif sub:
                last = scalar(self.size_of(operand))
                if last is not None:
                    letters.setdefault(sub[-1], last)
        return tuple(letters.get(letter) for letter in output)
