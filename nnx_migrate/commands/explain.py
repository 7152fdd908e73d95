"""`nnx-migrate explain CODE`: print a lint rule's documentation."""

from __future__ import annotations

import argparse
import sys

NAME = "explain"
HELP = "show what a lint rule finds, why, an example and its fix safety"
DESCRIPTION = "Show a lint rule's documentation. Without a code, list every rule."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", nargs="?", help="rule code (NNX001) or name (optimizer-without-wrt)")


def run(args: argparse.Namespace) -> int:
    from nnx_migrate.lint.docs import explain, rules_table
    from nnx_migrate.lint.rules import rule_by_code

    if args.code is None:
        print(rules_table())
        return 0
    rule = rule_by_code(args.code)
    if rule is None:
        print(f"nnx-migrate explain: unknown rule {args.code!r}; 'nnx-migrate explain' lists them", file=sys.stderr)
        return 4
    print(explain(rule))
    return 0
