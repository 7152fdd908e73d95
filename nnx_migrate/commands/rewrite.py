"""`nnx-migrate rewrite`: convert Linen module classes to NNX across a repository."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import sys
from pathlib import Path

from nnx_migrate.files import atomic_write

NAME = "rewrite"
HELP = "convert Linen modules and the code that trains them (init/apply, TrainState, steps) to NNX"
DESCRIPTION = """\
Converts every Linen module class (nn.Module subclasses, whatever the import alias,
subclasses of converted classes, and module classes imported from other files of the
run) into an NNX class that computes the same numbers with the same weights. Dataclass
fields become __init__ parameters; setup() and @nn.compact bodies become the
constructor; every layer gets its input size from fields or call arguments
(`in_features`, `<arg>_in_features` parameters). Then the code around the models is
converted: `init`/`apply`, TrainState and its `apply_gradients`, jitted train and eval
steps (see --train-style). What cannot be converted safely is marked
`# TODO(nnx-migrate): ...` and listed in the report; nothing is guessed.

By default the diff is printed and nothing is written."""

EPILOG = """\
exit codes (bit flags, combined with OR):
  0  success; with --check: no file would change
  1  --check only: some files would change
  2  some files failed (an unreadable file or folder, not decodable in its declared
     encoding, not Python, not writable, or an internal error); the run goes on and
     the summary and report are still written
  4  usage error, nothing written: an unknown option, a missing path, a --report or
     --output-dir that cannot be used, or another run writing the same tree
  8  TODO(nnx-migrate) sites were reported: the conversion needs a person
"""

EXIT_OK = 0
EXIT_WOULD_CHANGE = 1
EXIT_FAILED = 2
EXIT_USAGE = 4
EXIT_TODO = 8
EXIT_LOCKED = EXIT_USAGE  # another run writes the tree: this one cannot start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to convert")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--diff", dest="mode", action="store_const", const="diff", help="print a unified diff, write nothing (default)")
    mode.add_argument("--write", dest="mode", action="store_const", const="write", help="edit files in place (atomically)")
    mode.add_argument("--check", dest="mode", action="store_const", const="check", help="write nothing; exit 1 if some file would change")
    parser.set_defaults(mode="diff")
    parser.add_argument("--output-dir", metavar="DIR", help="write a complete converted copy of the inputs under DIR (DIR/<folder name>/..., unchanged files copied too), so the copy runs on its own; sources are not touched. DIR may not be inside an input folder")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="parallel processes (default 1; 0 = one per CPU)")
    parser.add_argument("--report", metavar="FILE", help="write the report as FILE.json and FILE.md (every TODO site: file:line, construct, why)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    parser.add_argument("--emit-checks", metavar="FILE", help="with --write or --output-dir: write a pytest file with one equivalence check per converted class (docs/check.md)")
    parser.add_argument("--examples", metavar="FILE", help="with --emit-checks: TOML example inputs for classes the code does not init with written shapes")
    parser.add_argument("--pmap", choices=("keep", "jit"), default="keep", help="jax.pmap data-parallel programs: 'keep' (default) converts them in place and keeps jax.pmap, the closest form to the original; 'jit' turns them into jax.jit programs over a ('data',) device mesh (NamedSharding: batches split, state replicated, pmean over the batch becomes jit's mean over the whole batch); a program that cannot be turned safely keeps jax.pmap with a TODO saying why (docs/training.md)")
    parser.add_argument("--train-style", choices=("flat-state", "nnx-jit"), default="flat-state", help="form of converted train steps: 'flat-state' (default) keeps plain jax.jit steps over a flat pytree state, as fast as Linen; 'nnx-jit' emits the textbook @nnx.jit steps (several times slower for small models)")


def _relative_target(path: Path, roots: list[Path]) -> Path:
    resolved = path.resolve()
    for root in roots:
        r = root.resolve()
        if r.is_dir():
            try:
                return Path(r.name) / resolved.relative_to(r)
            except ValueError:
                continue
        elif r == resolved:
            return Path(r.name)
    return Path(path.name)


def run(args: argparse.Namespace) -> int:
    from nnx_migrate.files import TreeWalk
    from nnx_migrate.run_files.lock import TreeLocked, tree_locks
    from nnx_migrate.run_files.targets import TargetError, check_output_dir, report_files

    def usage(message: str) -> int:
        print(f"nnx-migrate rewrite: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    if args.jobs < 0:
        return usage("--jobs must be >= 0")
    if args.output_dir and args.mode == "write":
        return usage("--output-dir and --write exclude each other")
    if args.emit_checks and (args.mode == "check" or not (args.output_dir or args.mode == "write")):
        return usage("--emit-checks needs --write or --output-dir (the checks import the converted files)")
    if args.examples and not args.emit_checks:
        return usage("--examples goes with --emit-checks")
    try:
        walk = TreeWalk(args.paths)
    except FileNotFoundError as exc:
        return usage(f"no such file or folder: {exc}")
    # Every path the run will write is checked before the first write.
    try:
        reports = report_files(args.report) if args.report else None
        if args.output_dir:
            check_output_dir(args.output_dir, walk.paths)
    except TargetError as exc:
        return usage(str(exc))
    try:
        with tree_locks(args.paths) if args.mode == "write" else contextlib.nullcontext() as locks:
            return _run(args, walk, reports, locks)
    except TreeLocked as exc:
        print(f"nnx-migrate rewrite: error: {exc}", file=sys.stderr)
        return EXIT_LOCKED


def _run(args: argparse.Namespace, walk, reports, locks) -> int:
    from nnx_migrate.files import remove_stale_temporaries
    from nnx_migrate.progress import progress
    from nnx_migrate.rewrite.report import FileResult, Summary, to_json, to_markdown
    from nnx_migrate.rewrite.runner import default_jobs, rewrite_files
    from nnx_migrate.run_files.lock import check_inner_locks

    files = list(walk)
    if locks is not None:
        check_inner_locks(walk.lock_files, locks)
        remove_stale_temporaries(walk.temporaries)
        if not args.quiet:
            for note in locks.taken_over + locks.warnings:
                print(f"nnx-migrate rewrite: {note}", file=sys.stderr)
    jobs = args.jobs or default_jobs()
    with progress(len(files), "rewrite") as advance:
        results = rewrite_files(files, jobs=jobs, advance=advance, train_style=args.train_style, pmap=args.pmap)
    for problem in walk.problems:
        if problem.error:
            results.append(FileResult(path=problem.path, status="failed", error=problem.message))
        elif not args.quiet:
            print(f"{problem.path}: warning: {problem.message}", file=sys.stderr)
    if args.output_dir and args.mode != "check":
        results += _write_output_tree(args, walk.paths, results)
    elif args.mode in ("diff", "write"):
        _write_or_diff(args, results)

    if args.emit_checks:
        from nnx_migrate.checks.emit import emit_checks

        emit_checks(Path(args.emit_checks), Path(args.examples) if args.examples else None, results, walk.paths,
                    Path(args.output_dir) if args.output_dir else None, _relative_target)

    summary = Summary()
    for result in results:
        summary.add(result)
        if result.status == "failed":
            print(f"{result.path}: error: {result.error}", file=sys.stderr)
    report_failed = False
    if reports is not None:
        json_path, md_path = reports
        try:
            atomic_write(json_path, to_json(summary, results) + "\n")
            atomic_write(md_path, to_markdown(summary, results))
        except OSError as exc:
            print(f"nnx-migrate rewrite: error: cannot write the report: {exc}", file=sys.stderr)
            report_failed = True
    if not args.quiet:
        for result in results:
            for todo in result.todos:
                print(f"{todo.render()}", file=sys.stderr)
        print(summary.render(), file=sys.stderr)
    code = EXIT_OK
    if args.mode == "check" and summary.changed:
        code |= EXIT_WOULD_CHANGE
    if summary.failed or report_failed:
        code |= EXIT_FAILED
    if summary.todo_sites:
        code |= EXIT_TODO
    return code


def _not_written(result, exc: OSError) -> None:
    """A converted file that could not be written: it failed, and nothing of its
    conversion (classes, TODO sites) landed."""
    result.status = "failed"
    result.error = f"cannot write: {exc.strerror or exc}"
    result.classes = []
    result.todos = []


def _write_or_diff(args: argparse.Namespace, results) -> None:
    out = sys.stdout
    for result in results:
        if result.status != "changed":
            continue
        if args.mode == "diff":
            out.writelines(
                difflib.unified_diff(
                    result.old_text.splitlines(keepends=True),
                    result.new_text.splitlines(keepends=True),
                    fromfile=f"a/{result.path.lstrip('/')}",
                    tofile=f"b/{result.path.lstrip('/')}",
                )
            )
            continue
        try:
            atomic_write(Path(result.path), result.new_text, result.encoding)
        except OSError as exc:  # one unwritable file or folder: the run goes on
            _not_written(result, exc)


def _write_output_tree(args: argparse.Namespace, roots: list[Path], results) -> list:
    """Copies the inputs whole under --output-dir, then the converted files over them;
    returns a failed result for each path that could not be copied."""
    from nnx_migrate.rewrite.report import FileResult
    from nnx_migrate.run_files.targets import copy_inputs

    output_dir = Path(args.output_dir)
    failed = {r.path for r in results if r.status == "failed"}
    extra = [
        FileResult(path=path, status="failed", error=why)
        for path, why in copy_inputs(roots, output_dir)
        if path not in failed
    ]
    for result in results:
        if result.status != "changed":
            continue
        target = output_dir / _relative_target(Path(result.path), roots)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, result.new_text, result.encoding)
        except OSError as exc:
            _not_written(result, exc)
    return extra
