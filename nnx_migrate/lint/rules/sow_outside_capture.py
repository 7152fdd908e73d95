from __future__ import annotations

import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.lint.rule import Invalid, LintRule, Valid


class SowOutsideCapture(LintRule):
    """`Module.sow(...)` in a file that never runs a model under `nnx.capture`.

    ## What it does
    Finds `self.sow(...)` (and `self.perturb(...)`) in the methods of an `nnx.Module`
    subclass of a file that does not mention `nnx.capture`. A file whose code runs the
    model with `nnx.capture` is taken to collect what the module sows.

    ## Why
    Since Flax 0.12.6 `sow` and `perturb` called outside `nnx.capture` emit
    `DeprecationWarning: Using 'Module.sow()' outside of 'nnx.capture()' is deprecated`,
    and in NNX's tree mode (the planned default) the old way of reading the values back
    (`nnx.pop(model, nnx.Intermediate)` after the call) has no graph updates to rely on.

    ## Fix safety
    None: the change is at the callers. Where the values are read, run the model as
    `y, intermediates = nnx.capture(model, nnx.Intermediate)(x)` (a function of the model:
    `nnx.capture(lambda model, x: model(x), nnx.Intermediate)(model, x)`); `intermediates`
    is an `nnx.State` shaped like the model (`intermediates['block']['h']` for a value the
    submodule `block` sowed as `'h'`). Where nothing reads them, the `sow` can go.
    """

    CODE = "NNX013"
    NAME = "sow-outside-capture"
    SUMMARY = "`Module.sow` outside `nnx.capture` warns since Flax 0.12.6"
    FIX_SAFETY = "none"
    TRIGGER = re.compile(r"\.(?:sow|perturb)\(")

    VALID = [
        Valid(
            "from flax import nnx\n"
            "class Block(nnx.Module):\n"
            "    def __call__(self, x):\n"
            "        self.sow(nnx.Intermediate, 'h', x)\n"
            "        return x\n"
            "y, intermediates = nnx.capture(Block(), nnx.Intermediate)(x)\n"
        ),
        Valid("from flax import nnx\nclass Farm:\n    def run(self):\n        self.sow('wheat')\n"),
    ]
    INVALID = [
        Invalid(
            "from flax import nnx\n"
            "class Block(nnx.Module):\n"
            "    def __call__(self, x):\n"
            "        self.sow(nnx.Intermediate, 'h', x)\n"
            "        return x\n"
            "y = Block()(x)\n"
            "h = nnx.pop(model, nnx.Intermediate)\n"
        ),
    ]

    def __init__(self, analysis) -> None:
        super().__init__(analysis)
        self._classes: list[cst.ClassDef] = []
        self._calls: list[cst.Call] = []
        self._captures = False

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "capture" and self.analysis.nnx_symbol(node, {"capture"}):
            self._captures = True

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "capture" and self.analysis.nnx_symbol(node, {"capture"}):
            self._captures = True

    def visit_Call(self, node: cst.Call) -> None:
        if self._classes and m.matches(node.func, m.Attribute(value=m.Name("self"), attr=m.Name("sow") | m.Name("perturb"))):
            if self._classes[-1].name.value in self.analysis.local_module_classes:
                self._calls.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        if self._captures:
            return
        for call in self._calls:
            self.report(
                call,
                f"`Module.{call.func.attr.value}` outside `nnx.capture` warns since Flax 0.12.6: run the model as "
                "`nnx.capture(model, nnx.Intermediate)(x)` where the values are read",
            )
