"""The `nnx-migrate` command line: a thin dispatcher over the subcommands.

Each module in `nnx_migrate/commands/` is a subcommand, registered by existing: it
defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. Subcommand
modules import their heavy dependencies inside `run`, so `nnx-migrate lint` never pays
for jax or flax.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from nnx_migrate import __version__, commands

# Exit code for a command line that cannot be understood (unknown flag, bad value).
# argparse's own default is 2, which the lint contract reserves for unreadable files.
EXIT_USAGE = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _subcommand_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nnx-migrate",
        description="Move Flax code from Linen to NNX, and keep NNX code current.",
        epilog="Run 'nnx-migrate COMMAND --help' for each command's options and exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"nnx-migrate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _subcommand_modules():
        sp = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except BrokenPipeError:
        # `nnx-migrate lint . | head`: the reader left; stop quietly, as other CLIs do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("nnx-migrate: interrupted", file=sys.stderr)
        return 130
