"""`nnx-migrate lint`: find (and fix) NNX code broken by Flax's API changes."""

from __future__ import annotations

import argparse
import os
import sys

NAME = "lint"
HELP = "find NNX code broken by Flax API changes (Optimizer without wrt, ...) and fix it"
DESCRIPTION = """\
Find NNX code broken by Flax's API changes and, with --fix, repair it in place.

Folders are walked for *.py files, skipping .git, virtual environments and build
folders; linked folders are not followed, a linked file is linted (and fixed) through to
its target when that lies under the paths given, and skipped with a warning otherwise.
Every file is checked for syntax (a file that does not parse is reported as E902); files
that never mention flax cannot hold Flax code, so no rule reads them. Fixes are written
atomically and keep every byte outside the edit. Settings can live in pyproject.toml
under [tool.nnx-migrate] (select, ignore, unsafe-fixes, exclude). Silence one finding with a trailing `# nnx-migrate: ignore[NNX001]`, or
`# nnx-migrate: ignore` for every rule; on a line of its own it silences the next line.
Run 'nnx-migrate explain' for the rules."""
EPILOG = """\
exit status (bit flags, OR-ed together):
  0  no findings remain
  1  findings remain (after fixing, with --fix)
  2  a file or folder could not be read or parsed, or fixes could not be written
     (reported with its path as E902; the run goes on)
  4  usage error, nothing written: a bad flag, a path that does not exist, bad
     configuration, or another run fixing the same tree"""

EXIT_FINDINGS = 1
EXIT_FILE_ERROR = 2
EXIT_USAGE = 4
EXIT_LOCKED = EXIT_USAGE  # another run is fixing the same tree: this one cannot start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnx_migrate.lint.output_formats import FORMATS  # no jax/flax: cheap

    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to lint")
    parser.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    parser.add_argument(
        "--unsafe-fixes", action="store_true", default=None,
        help="also apply unsafe fixes (review them: see 'nnx-migrate explain CODE')",
    )
    parser.add_argument("--diff", action="store_true", help="print the fixes as a unified diff; write nothing")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--select", metavar="CODES", help="comma-separated code prefixes to run (default: all)")
    parser.add_argument("--ignore", metavar="CODES", help="comma-separated code prefixes to skip")
    parser.add_argument("--config", metavar="FILE", help="read [tool.nnx-migrate] from this file")
    parser.add_argument(
        "--jobs", "-j", type=_jobs, default=1, metavar="N",
        help="worker processes (default 1; 0 = one per CPU)",
    )


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return jobs or (os.cpu_count() or 1)


def _codes(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(code.strip() for code in value.split(",") if code.strip())


def run(args: argparse.Namespace) -> int:
    import contextlib

    from nnx_migrate.files import TreeWalk
    from nnx_migrate.lint.config import ConfigError, find_config
    from nnx_migrate.run_files.lock import TreeLocked, tree_locks

    try:
        config = find_config(args.paths, args.config)
        walk = TreeWalk(args.paths)
    except ConfigError as exc:
        print(f"nnx-migrate lint: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"nnx-migrate lint: no such file or folder: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from nnx_migrate.lint.rules import all_rules

    select = _codes(args.select) or config.select
    ignore = (_codes(args.ignore) or ()) + config.ignore
    known = [rule.CODE for rule in all_rules()]
    for prefix in [*select, *ignore]:
        if not any(code.startswith(prefix.upper()) for code in known):
            print(f"nnx-migrate lint: no rule code starts with {prefix!r} (rules: {', '.join(known)})", file=sys.stderr)
            return EXIT_USAGE
    writes = args.fix and not args.diff
    try:
        with tree_locks(args.paths) if writes else contextlib.nullcontext() as locks:
            return _run(args, config, walk, locks, select, ignore)
    except TreeLocked as exc:
        print(f"nnx-migrate lint: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _run(args: argparse.Namespace, config, walk, locks, select, ignore) -> int:
    from nnx_migrate.files import remove_stale_temporaries
    from nnx_migrate.lint.output_formats import render
    from nnx_migrate.lint.runner import FileResult, LintOptions, collect_files, lint_paths
    from nnx_migrate.run_files.lock import check_inner_locks

    files = collect_files(walk, config)
    if locks is not None:
        check_inner_locks(walk.lock_files, locks)
        remove_stale_temporaries(walk.temporaries)
        for note in locks.taken_over + locks.warnings:
            print(f"nnx-migrate lint: {note}", file=sys.stderr)
    options = LintOptions(
        select=tuple(select),
        ignore=tuple(ignore),
        fix=args.fix,
        unsafe_fixes=config.unsafe_fixes if args.unsafe_fixes is None else args.unsafe_fixes,
        diff=args.diff,
    )
    lint_run = lint_paths(files, options, jobs=args.jobs)
    for problem in walk.problems:
        if problem.error:  # an unreadable folder: reported like an unreadable file (E902)
            lint_run.files.append(FileResult(problem.path, error=problem.message))
        else:
            print(f"nnx-migrate lint: {problem.path}: warning: {problem.message}", file=sys.stderr)

    if args.diff:
        sys.stdout.write("".join(f.diff for f in lint_run.files if f.diff))
        if args.format != "text":
            sys.stdout.write(render(lint_run, args.format))
    else:
        sys.stdout.write(render(lint_run, args.format))
    for result in lint_run.errors:
        if args.format == "text":
            continue  # already on stdout as E902 lines
        print(f"nnx-migrate lint: {result.path}: {result.error}", file=sys.stderr)
    _summary(lint_run, files, args)

    status = 0
    if lint_run.findings:
        status |= EXIT_FINDINGS
    if lint_run.errors:
        status |= EXIT_FILE_ERROR
    return status


def _summary(lint_run, files, args) -> None:
    findings = lint_run.findings
    fixable = sum(1 for _, f in findings if f.fix == "safe")
    unsafe = sum(1 for _, f in findings if f.fix == "unsafe")
    parts = [_count(len(files), "file") + " checked", _count(len(findings), "finding")]
    if lint_run.fixes_applied:
        parts.append(f"{lint_run.fixes_applied} fixed")
    if not args.fix and not args.diff and (fixable or unsafe):
        parts.append(f"{fixable} fixable with --fix" + (f", {unsafe} more with --unsafe-fixes" if unsafe else ""))
    if lint_run.errors:
        parts.append(_count(len(lint_run.errors), "file") + " could not be read or parsed")
    print("nnx-migrate lint: " + ", ".join(parts), file=sys.stderr)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
