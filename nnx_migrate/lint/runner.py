"""Lints many files: walking, reading, parallel jobs, writing fixes, collecting results."""

from __future__ import annotations

import difflib
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import libcst as cst

from nnx_migrate.files import SourceError, TreeWalk, atomic_write, read_source
from nnx_migrate.lint.config import LintConfig
from nnx_migrate.lint.engine import Finding, lint_source
from nnx_migrate.lint.rules import rule_by_code, select_rules
from nnx_migrate.progress import progress
from nnx_migrate.run_files.collections import rare_collections, worker_start


@dataclass(frozen=True)
class LintOptions:
    select: tuple[str, ...] = ("NNX",)
    ignore: tuple[str, ...] = ()
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False  # compute the fixes, show them as a diff, write nothing

    @property
    def rule_codes(self) -> tuple[str, ...]:
        return tuple(rule.CODE for rule in select_rules(list(self.select), list(self.ignore)))


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # the file could not be read or parsed
    fixes_applied: int = 0
    diff: str | None = None


@dataclass
class LintRun:
    files: list[FileResult]

    @property
    def findings(self) -> list[tuple[str, Finding]]:
        return [(f.path, finding) for f in self.files for finding in f.findings]

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    @property
    def fixes_applied(self) -> int:
        return sum(f.fixes_applied for f in self.files)


def lint_file(path: str, options: LintOptions) -> FileResult:
    """Lints one file; never raises for a bad file (the error is in the result)."""
    result = FileResult(path)
    try:
        source_file = read_source(Path(path))
    except SourceError as exc:
        result.error = str(exc)
        return result
    source = source_file.text
    rules = [rule_by_code(code) for code in options.rule_codes]
    try:
        outcome = lint_source(
            source, rules, fix=options.fix or options.diff, unsafe_fixes=options.unsafe_fixes
        )
    except cst.ParserSyntaxError as exc:
        result.error = f"cannot parse (line {exc.raw_line}, column {exc.raw_column}): {exc.message}"
        return result
    except RecursionError:
        result.error = "cannot parse: nested too deeply"
        return result
    except Exception as exc:  # a bug in a rule must not end a run over a whole tree
        result.error = f"internal error in nnx-migrate (please report it): {type(exc).__name__}: {exc}"
        return result
    if options.diff:
        result.findings = outcome.initial_findings if outcome.fixed_source is not None else outcome.findings
        if outcome.fixed_source is not None:
            result.diff = "".join(
                difflib.unified_diff(
                    source.splitlines(keepends=True),
                    outcome.fixed_source.splitlines(keepends=True),
                    fromfile=f"a/{path}",
                    tofile=f"b/{path}",
                )
            )
        return result
    result.findings = outcome.findings
    if outcome.fixed_source is not None:
        try:
            atomic_write(Path(path), outcome.fixed_source, source_file.encoding)
        except OSError as exc:  # an unwritable file or folder: reported, the run goes on
            result.error = f"cannot write the fixes: {exc.strerror or exc}"
            result.findings = outcome.initial_findings  # the file keeps every finding
            return result
        result.fixes_applied = outcome.fixes_applied
    return result


def _process_context():
    # fork is the cheapest start, and the CLI never loads jax; but a caller that has
    # (a test session, a notebook) would fork a multithreaded process, which can deadlock.
    if "jax" in sys.modules or "jaxlib" in sys.modules:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("fork")


def collect_files(paths: Sequence[str] | TreeWalk, config: LintConfig) -> list[str]:
    """The files to lint; raises FileNotFoundError for a path that does not exist."""
    walk = paths if isinstance(paths, TreeWalk) else TreeWalk(paths)
    return [str(p) for p in walk if not config.excludes(p)]


def lint_paths(files: Sequence[str], options: LintOptions, jobs: int = 1) -> LintRun:
    results: list[FileResult] = []
    with rare_collections(), progress(len(files), "nnx-migrate lint") as advance:
        if jobs <= 1 or len(files) < 2:
            for path in files:
                results.append(lint_file(path, options))
                advance()
        else:
            chunksize = max(1, min(64, len(files) // (jobs * 8)))
            with ProcessPoolExecutor(max_workers=jobs, mp_context=_process_context(), initializer=worker_start) as pool:
                for result in pool.map(lint_file, files, repeat(options), chunksize=chunksize):
                    results.append(result)
                    advance()
    return LintRun(results)
