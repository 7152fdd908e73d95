"""Runs the lint rules on one file's source and, if asked, applies their fixes.

Pure function of (source, settings): no file system access, so it is easy to test and
safe to run in worker processes.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import MetadataWrapper, PositionProvider

from nnx_migrate.lint.analysis import FileAnalysis
from nnx_migrate.lint.rule import LintRule, Report
from nnx_migrate.lint.suppression import suppressed_codes_by_line

# Every rule is about flax.nnx, which a file can only use by importing it: a file without
# both words is never given to the rules, only to Python's parser (E902). This keeps
# linting a large tree well under the cost of LibCST-parsing it.
RELEVANT_TEXT = "nnx"
FLAX_TEXT = "flax"

# A fix can uncover another (a fixed node inside a fixed node): re-lint a few times.
MAX_FIX_ROUNDS = 5


@dataclass(frozen=True)
class Finding:
    """One reported problem, in plain data (safe to send between processes)."""

    code: str
    message: str
    line: int  # 1-based
    column: int  # 1-based
    end_line: int
    end_column: int
    fix: str | None  # "safe", "unsafe" or None (no fix)


@dataclass
class LintOutcome:
    findings: list[Finding] = field(default_factory=list)  # what remains after fixing
    initial_findings: list[Finding] = field(default_factory=list)  # before any fix
    fixed_source: str | None = None  # set when fixes changed the source
    fixes_applied: int = 0


def lint_source(
    source: str,
    rules: Sequence[type[LintRule]],
    *,
    fix: bool = False,
    unsafe_fixes: bool = False,
) -> LintOutcome:
    """Lints `source`; with `fix`, applies safe fixes (and unsafe ones if allowed).

    Raises `libcst.ParserSyntaxError` for source that does not parse, whatever its text.
    Source that never mentions flax cannot hold Flax code: no rule sees it, and only
    Python's own parser reads it (`check_syntax`).
    """
    outcome = LintOutcome()
    if FLAX_TEXT in source and RELEVANT_TEXT in source:
        rules = [rule for rule in rules if rule.TRIGGER.search(source)]
    else:
        rules = []
    if not rules:
        check_syntax(source)
        return outcome
    current = source
    for _ in range(MAX_FIX_ROUNDS):
        module = cst.parse_module(current)
        reports, positions = _run_rules(module, rules, current)
        if current is source:
            outcome.initial_findings = [_finding(r, positions) for r in reports]
        applicable = [r for r in reports if r.has_fix and (unsafe_fixes or not r.unsafe)]
        if not fix or not applicable:
            outcome.findings = [_finding(r, positions) for r in reports]
            break
        fixed = _apply(module, applicable)
        outcome.fixes_applied += len(applicable)
        if fixed == current:  # a fix that changes nothing would loop forever
            outcome.findings = [_finding(r, positions) for r in reports]
            break
        current = fixed
    else:
        module = cst.parse_module(current)
        reports, positions = _run_rules(module, rules, current)
        outcome.findings = [_finding(r, positions) for r in reports]
    if current != source:
        outcome.fixed_source = current
    return outcome


def check_syntax(source: str) -> None:
    """Raises `libcst.ParserSyntaxError` for source that does not parse, also when no rule
    would look at it: a broken file is reported (E902), never passed as clean.

    Python's own parser answers first (seven times faster than LibCST's: on a whole
    site-packages it costs 0.14x of LibCST-parsing every file); LibCST decides only for
    what Python rejects, since it also reads syntax newer than this Python's.
    """
    try:
        compile(source, "<lint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        cst.parse_module(source)


def _run_rules(module: cst.Module, rules: Sequence[type[LintRule]], source: str):
    # unsafe_skip_copy: the module was parsed here and is not shared, so the wrapper may
    # use it as is (copying it costs as much as parsing it again).
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    analysis = FileAnalysis(wrapper)
    visitors = [rule(analysis) for rule in rules]
    cst.visit_batched(wrapper.module, visitors)
    reports = [report for visitor in visitors for report in visitor.reports]
    if not reports:
        return [], {}
    positions = wrapper.resolve(PositionProvider)  # only files with findings pay for it
    suppressed = suppressed_codes_by_line(source)
    if suppressed:
        reports = [r for r in reports if not _is_suppressed(r, positions, suppressed)]
    reports.sort(key=lambda r: (positions[r.node].start.line, positions[r.node].start.column, r.rule.CODE))
    return reports, positions


def _is_suppressed(report: Report, positions, suppressed: dict[int, set[str] | None]) -> bool:
    span = positions[report.node]
    for line in {span.start.line, span.end.line}:
        if line not in suppressed:
            continue
        codes = suppressed[line]
        if codes is None or any(report.rule.CODE.startswith(code) for code in codes):
            return True
    return False


def _finding(report: Report, positions) -> Finding:
    span = positions[report.node]
    return Finding(
        code=report.rule.CODE,
        message=report.message,
        line=span.start.line,
        column=span.start.column + 1,
        end_line=span.end.line,
        end_column=span.end.column + 1,
        fix=None if not report.has_fix else ("unsafe" if report.unsafe else "safe"),
    )


class _ReplaceNodes(cst.CSTTransformer):
    """Swaps nodes by identity; an outer fix wins over one nested in it (next round)."""

    def __init__(self, replacements: dict[int, cst.CSTNode | cst.RemovalSentinel]) -> None:
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original_node, updated_node):
        replacement = self.replacements.get(id(original_node))
        if replacement is None:
            return updated_node
        return replacement


def _apply(module: cst.Module, reports: Sequence[Report]) -> str:
    replacements = {}
    for report in reports:
        target = report.replace if report.replace is not None else report.node
        replacements.setdefault(id(target), report.replacement)
    new_module = module.visit(_ReplaceNodes(replacements))
    imports = {imp for report in reports for imp in report.imports}
    if imports:
        context = CodemodContext()
        for imp in sorted(imports, key=lambda i: (i.module, i.name or "")):
            AddImportsVisitor.add_needed_import(context, imp.module, imp.name)
        new_module = AddImportsVisitor(context).transform_module(new_module)
    return new_module.code
