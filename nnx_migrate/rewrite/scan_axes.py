"""Linen `nn.scan` `in_axes` / `out_axes` in `nnx.scan` terms, read from the CST.

Linen's `in_axes` gives one entry per scanned argument after the carry (a tuple), or one
entry for all of them: an int scans that axis, `nn.broadcast` passes the argument whole
to every step (a mask, a context). `nnx.scan` spells "not scanned" `None`; it rejects
`nn.broadcast` itself (flax 0.12.8: `ValueError: Invalid axes`). Outputs: Linen's
`out_axes` may broadcast an output, `nnx.scan` cannot (`Cannot broadcast output state`),
so only ints are kept there. Used by both scan forms, over time (recurrent.py) and over
layers (classes/constructs/scan_layers.py).

Fix safety: an entry that is not an int literal or `nn.broadcast` (a name, an attribute, a
nested tree) could be anything at run time; it is reported, never copied as text.
Pure: no jax or flax import.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from nnx_migrate.rewrite.sizes import code

# Every public spelling of Linen's broadcast marker (all the same object).
BROADCAST = {"flax.linen.broadcast", "flax.core.broadcast", "flax.core.axes_scan.broadcast"}


@dataclass(frozen=True)
class ScanAxes:
    """Axes as nnx.scan source: one per argument (`per_argument`), or `every` for all."""

    per_argument: tuple[str, ...] | None = None
    every: str = "0"
    problems: tuple[str, ...] = ()

    def for_arguments(self, count: int) -> list[str] | None:
        """One axis per scanned argument; None when a tuple's length is not `count`."""
        if self.per_argument is None:
            return [self.every] * count
        return list(self.per_argument) if len(self.per_argument) == count else None

    @property
    def source(self) -> str:
        """The whole spec, as nnx.scan's `out_axes` entry for the outputs after the carry."""
        if self.per_argument is None:
            return self.every
        trailing = "," if len(self.per_argument) == 1 else ""
        return f"({', '.join(self.per_argument)}{trailing})"


def _int_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        node = node.expression
    return isinstance(node, cst.Integer)


def _entry(imports, node: cst.BaseExpression, option: str) -> tuple[str, str | None]:
    """One axis entry -> (nnx source, why it is reported or None). A reported entry keeps
    its Linen text, next to its TODO marker, rather than a made-up axis."""
    if _int_literal(node):
        return code(node), None
    if imports.qualify(node) in BROADCAST:
        if option == "out_axes":
            return code(node), "nn.scan out_axes broadcasts an output; nnx.scan cannot: convert by hand"
        return "None", None
    return code(node), f"nn.scan {option} entry '{code(node)}' is not an int or nn.broadcast: convert by hand"


def scan_axes(imports, node: cst.BaseExpression | None, option: str) -> ScanAxes:
    """`in_axes=` / `out_axes=` of an `nn.scan` (`option` names which) -> ScanAxes.
    Absent: Linen's default, axis 0 for everything."""
    if node is None:
        return ScanAxes()
    if not isinstance(node, cst.Tuple):
        source, why = _entry(imports, node, option)
        return ScanAxes(every=source, problems=(why,) if why else ())
    axes, problems = [], []
    for element in node.elements:
        if isinstance(element, cst.StarredElement):
            problems.append(f"nn.scan {option} with a starred entry: convert by hand")
            continue
        source, why = _entry(imports, element.value, option)
        axes.append(source)
        if why:
            problems.append(why)
    return ScanAxes(per_argument=tuple(axes), problems=tuple(problems))
