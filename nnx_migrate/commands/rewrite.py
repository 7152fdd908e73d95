"""`nnx-migrate rewrite`: convert Linen module classes to NNX across a repository."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

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
  2  some files failed (unreadable, not decodable in their declared encoding, not Python, or an internal error)
  4  usage error (unknown option, missing path)
  8  TODO(nnx-migrate) sites were reported: the conversion needs a person
"""

EXIT_OK = 0
EXIT_WOULD_CHANGE = 1
EXIT_FAILED = 2
EXIT_USAGE = 4
EXIT_TODO = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to convert")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--diff", dest="mode", action="store_const", const="diff", help="print a unified diff, write nothing (default)")
    mode.add_argument("--write", dest="mode", action="store_const", const="write", help="edit files in place (atomically)")
    mode.add_argument("--check", dest="mode", action="store_const", const="check", help="write nothing; exit 1 if some file would change")
    parser.set_defaults(mode="diff")
    parser.add_argument("--output-dir", metavar="DIR", help="write converted copies of changed files under DIR, mirroring the tree; sources are not touched")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="parallel processes (default 1; 0 = one per CPU)")
    parser.add_argument("--report", metavar="FILE", help="write the report as FILE.json and FILE.md (every TODO site: file:line, construct, why)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    parser.add_argument("--emit-checks", metavar="FILE", help="with --write or --output-dir: write a pytest file with one equivalence check per converted class (docs/check.md)")
    parser.add_argument("--examples", metavar="FILE", help="with --emit-checks: TOML example inputs for classes the code does not init with written shapes")
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
    from nnx_migrate.files import atomic_write, iter_python_files
    from nnx_migrate.progress import progress
    from nnx_migrate.rewrite.report import Summary, to_json, to_markdown
    from nnx_migrate.rewrite.runner import default_jobs, rewrite_files

    if args.jobs < 0:
        print("nnx-migrate rewrite: error: --jobs must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.output_dir and args.mode == "write":
        print("nnx-migrate rewrite: error: --output-dir and --write exclude each other", file=sys.stderr)
        return EXIT_USAGE
    if args.emit_checks and (args.mode == "check" or not (args.output_dir or args.mode == "write")):
        print("nnx-migrate rewrite: error: --emit-checks needs --write or --output-dir (the checks import the converted files)", file=sys.stderr)
        return EXIT_USAGE
    if args.examples and not args.emit_checks:
        print("nnx-migrate rewrite: error: --examples goes with --emit-checks", file=sys.stderr)
        return EXIT_USAGE
    try:
        files = list(iter_python_files(args.paths))
    except FileNotFoundError as exc:
        print(f"nnx-migrate rewrite: error: no such file or folder: {exc}", file=sys.stderr)
        return EXIT_USAGE
    jobs = args.jobs or default_jobs()
    with progress(len(files), "rewrite") as advance:
        results = rewrite_files(files, jobs=jobs, advance=advance, train_style=args.train_style)

    summary = Summary()
    roots = [Path(p) for p in args.paths]
    out = sys.stdout
    for result in results:
        summary.add(result)
        if result.status == "failed":
            print(f"{result.path}: error: {result.error}", file=sys.stderr)
            continue
        if result.status != "changed":
            continue
        if args.mode == "diff" and not args.output_dir:
            out.writelines(
                difflib.unified_diff(
                    result.old_text.splitlines(keepends=True),
                    result.new_text.splitlines(keepends=True),
                    fromfile=f"a/{result.path.lstrip('/')}",
                    tofile=f"b/{result.path.lstrip('/')}",
                )
            )
        elif args.mode == "write":
            atomic_write(Path(result.path), result.new_text, result.encoding)
        if args.output_dir and args.mode != "check":
            target = Path(args.output_dir) / _relative_target(Path(result.path), roots)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, result.new_text, result.encoding)
    if args.emit_checks:
        from nnx_migrate.checks.emit import emit_checks

        emit_checks(Path(args.emit_checks), Path(args.examples) if args.examples else None, results, roots,
                    Path(args.output_dir) if args.output_dir else None, _relative_target)
    if args.report:
        base = Path(args.report)
        stem = base.with_suffix("") if base.suffix in (".json", ".md") else base
        atomic_write(stem.with_name(stem.name + ".json"), to_json(summary, results) + "\n")
        atomic_write(stem.with_name(stem.name + ".md"), to_markdown(summary, results))
    if not args.quiet:
        for result in results:
            for todo in result.todos:
                print(f"{todo.render()}", file=sys.stderr)
        print(summary.render(), file=sys.stderr)
    code = EXIT_OK
    if args.mode == "check" and summary.changed:
        code |= EXIT_WOULD_CHANGE
    if summary.failed:
        code |= EXIT_FAILED
    if summary.todo_sites:
        code |= EXIT_TODO
    return code
