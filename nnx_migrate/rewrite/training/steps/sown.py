"""Sown values read back: Linen's `apply(..., mutable=['intermediates'])` (and
`capture_intermediates=True`) -> `nnx.capture(model, nnx.Intermediate)(...)`.

Linen returns `(output, {'intermediates': {...}})`; `nnx.capture` returns `(output, sown)`
where `sown` is the `'intermediates'` level itself, keyed by NNX attribute names (Linen's
`Block_0` is `block_0`) with the same tuples as leaves. So `updates['intermediates']` is
read as `updates`, and the auto-named keys below it take their NNX names. `nnx.capture`
is the form that works in NNX's graph and tree mode alike (a sow outside it warns, and
in tree mode a step cannot add the attribute it would set). `capture_intermediates=True`
is `method_outputs=nnx.Intermediate` (NNX also records other public methods' outputs).

Anything else is reported: the collection asked for along with others (`mutable=True`,
`['intermediates', 'batch_stats']`), a `capture_intermediates` filter function, or a
result used otherwise than by `updates['intermediates']`.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.naming import is_linen_auto_name, nnx_attribute_name
from nnx_migrate.rewrite.training.steps.common import _subscript_key, code_of
from nnx_migrate.rewrite.visitors import nodes_of_type

INTERMEDIATES = "intermediates"
_BY_HAND = "call `nnx.capture(model, nnx.Intermediate)(...)`, which returns (output, sown values), by hand"


class SownValues:
    """Part of `TrainingTransformer`: calls that read back what the model sows."""

    def _sown_capture(self, args: list[cst.Arg]) -> tuple[str, ...] | None:
        """For an apply call's arguments: the extra arguments of `nnx.capture` (empty: the
        sown values only) when the call reads sown values and nothing else, else None
        (a call that reads them along with other collections is reported)."""
        keywords = {a.keyword.value: a.value for a in args if a.keyword is not None}
        mutable = _collections(keywords.get("mutable"))
        capture = keywords.get("capture_intermediates")
        if capture is not None and not (isinstance(capture, cst.Name) and capture.value in ("True", "False")):
            self._stmt_stack[-1]["todos"].append(("capture_intermediates=", f"a filter of the outputs Linen records: {_BY_HAND} "
                                                  "(method_outputs=nnx.Intermediate records every public method's output)"))
            return None
        captures = capture is not None and capture.value == "True"
        if not captures and (mutable is None or INTERMEDIATES not in mutable):
            return None
        others = mutable - {INTERMEDIATES} if mutable is not None else "mutable" in keywords
        if others:
            self._stmt_stack[-1]["todos"].append(("mutable=", f"reads sown values along with other collections: {_BY_HAND}; "
                                                  "the model updates its other variables in place"))
            return None
        return ("method_outputs=nnx.Intermediate",) if captures else ()

    def _captured_call(self, callee: cst.BaseExpression, args: list[cst.Arg], options: tuple[str, ...]) -> cst.Call:
        capture = cst.parse_expression(f"nnx.capture({code_of(callee)}, {', '.join(('nnx.Intermediate', *options))})")
        return cst.Call(func=capture, args=args)

    def _captured_assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        """`out, updates = <captured call>`: `updates` is read as the sown values below."""
        target = original.targets[0].target if len(original.targets) == 1 else None
        name = target.elements[1].value if isinstance(target, cst.Tuple) and len(target.elements) == 2 else None
        if not isinstance(name, cst.Name):
            self._stmt_stack[-1]["todos"].append(("mutable=", "was (output, {'intermediates': ...}); nnx.capture returns (output, "
                                                  "sown values) without the 'intermediates' level: unpack it by hand"))
            return updated
        if not self._reads_only_intermediates(name.value):
            self._stmt_stack[-1]["todos"].append(("mutable=", f"`{name.value}` was {{'intermediates': ...}}; nnx.capture gives the "
                                                  "sown values without that level (keyed by NNX attribute names): adjust its other uses"))
        self._captured_names.add((self._top, name.value))
        return updated

    def _reads_only_intermediates(self, name: str) -> bool:
        """Every use of `name` in the function (after its binding) is `name['intermediates']`."""
        if self._top_node is None:
            return False
        uses = [n for n in nodes_of_type(self._top_node, cst.Name) if n.value == name]
        reads = [s for s in nodes_of_type(self._top_node, cst.Subscript) if _subscript_key(s) is not None
                 and isinstance(s.value, cst.Name) and s.value.value == name]
        return all(_subscript_key(s)[1] == INTERMEDIATES for s in reads) and len(uses) == len(reads) + 1

    def leave_Subscript(self, original: cst.Subscript, updated: cst.BaseExpression) -> cst.BaseExpression:
        if not self._captured_names:
            return updated
        depth, root = 0, original
        while isinstance(root, cst.Subscript):
            depth, root = depth + 1, root.value
        if not isinstance(root, cst.Name) or (self._top, root.value) not in self._captured_names:
            return updated
        found = _subscript_key(original)
        if depth == 1:
            return updated.value if found is not None and found[1] == INTERMEDIATES else updated
        if found is not None and is_linen_auto_name(found[1]):
            # a module Linen named automatically (`Block_0`): NNX's attribute name
            key = cst.SimpleString(repr(nnx_attribute_name(found[1])))
            return updated.with_changes(slice=[updated.slice[0].with_changes(slice=cst.Index(value=key))])
        return updated


def _collections(node: cst.BaseExpression | None) -> frozenset[str] | None:
    """The collections a `mutable=` literal names (None: not a literal list of names)."""
    if isinstance(node, cst.SimpleString) and isinstance(node.evaluated_value, str):
        return frozenset({node.evaluated_value})
    if isinstance(node, (cst.List, cst.Tuple)):
        names = [el.value.evaluated_value for el in node.elements if isinstance(el.value, cst.SimpleString)]
        if len(names) == len(node.elements) and all(isinstance(n, str) for n in names):
            return frozenset(names)
    return None
