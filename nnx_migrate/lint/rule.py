"""What a lint rule is: a LibCST visitor that reports nodes, optionally with a fix.

Lint and fix share one path (as in Fixit and ruff): a rule calls `report()` on a node and
may pass the node that should replace it. The engine decides whether to apply it.
A rule's `VALID`/`INVALID` examples are its tests (tests/lint/test_rule_examples.py) and
its documentation (`nnx-migrate explain CODE`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

if TYPE_CHECKING:
    from nnx_migrate.lint.analysis import FileAnalysis


@dataclass(frozen=True)
class Valid:
    """Code the rule must not report."""

    code: str


@dataclass(frozen=True)
class Invalid:
    """Code the rule must report; `fixed` is the whole file after the rule's fix.

    `fixed=None` means the rule reports it without a fix.
    """

    code: str
    fixed: str | None = None


@dataclass(frozen=True)
class ImportNeeded:
    """An import a fix relies on: `from module import name` (or `import module` if no name)."""

    module: str
    name: str | None = None


@dataclass
class Report:
    """One finding of one rule in one file, with its fix if it has one."""

    rule: type[LintRule]
    node: cst.CSTNode
    message: str
    replace: cst.CSTNode | None = None  # the node the fix replaces (default: `node`)
    replacement: cst.CSTNode | cst.RemovalSentinel | None = None
    unsafe: bool = False
    imports: tuple[ImportNeeded, ...] = field(default_factory=tuple)

    @property
    def has_fix(self) -> bool:
        return self.replacement is not None


class LintRule(cst.BatchableCSTVisitor):
    """Base class of every rule. Subclasses set the class attributes and visit nodes.

    The docstring of a rule is its documentation, in sections: what it does, why, and
    fix safety; `explain` adds the first INVALID example as before/after.
    """

    CODE: ClassVar[str]
    NAME: ClassVar[str]
    SUMMARY: ClassVar[str]
    # "safe": applied by --fix; "unsafe": only with --unsafe-fixes; "none": report only;
    # "mixed": the docstring says which cases are safe.
    FIX_SAFETY: ClassVar[str] = "safe"
    VALID: ClassVar[Sequence[Valid]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()
    # Text that any file this rule can report must contain. A file matching no rule's
    # trigger is not parsed at all, which keeps linting a big tree cheap. A trigger may
    # match too often, never too rarely.
    TRIGGER: ClassVar[re.Pattern[str]]

    # Rules read metadata through `self.analysis` (resolved lazily, shared by all rules),
    # not through LibCST's per-visitor dependencies, which would resolve every provider
    # for every file up front.
    METADATA_DEPENDENCIES = ()

    def __init__(self, analysis: FileAnalysis) -> None:
        super().__init__()
        self.analysis = analysis
        self.reports: list[Report] = []

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        replacement: cst.CSTNode | cst.RemovalSentinel | None = None,
        replace: cst.CSTNode | None = None,
        unsafe: bool = False,
        imports: Sequence[ImportNeeded] = (),
    ) -> None:
        self.reports.append(
            Report(
                rule=type(self),
                node=node,
                message=message,
                replace=replace,
                replacement=replacement,
                unsafe=unsafe,
                imports=tuple(imports),
            )
        )

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")
