"""`nnx-migrate check`: run a Linen module and its NNX port side by side and compare."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "check"
HELP = "check that an NNX port computes the same numbers as its Linen original"
DESCRIPTION = """\
Imports LINEN_FILE and NNX_FILE and runs their code (as `python` would: whatever the
files do at import time happens), so give it files you trust. Builds the Linen module from --kwargs, builds or fills the NNX port with the same
weights, runs both on the same random --input arrays and compares every output leaf,
the gradients of every parameter, a train-mode call (BatchNorm statistics, identical
Dropout masks) and optionally --train-steps optimizer steps.

The NNX class is built like `nnx-migrate rewrite` output: NNXClass(<Linen fields>,
in_features=..., rngs=nnx.Rngs(seed)), sizes the rewrite left as arguments
(dense_0_in_features) read off the Linen weights' shapes, weights placed by the
rewrite's naming convention. The weights are moved off their init values (seeded), so
swapped or unused layers show. A hand-written port with its own constructor: give
--nnx-kwargs (then weights are also matched by structure and shapes; submodules that
shapes cannot tell apart are placed by the outputs, and --mapping decides otherwise).
Every floating dtype (bfloat16, float16, float8 included) is compared with its own
default tolerances unless --rtol/--atol are given.
"""
EPILOG = """\
exit codes:
  0  equivalent within the tolerances
  1  not equivalent (the report says where)
  2  could not run: file or class not found, bad --input/--kwargs, a model that fails
     to build or run, weights that fit in more than one place
  4  bad command line (unknown option, no --input, a --mapping that is not a JSON object
     of path strings, a negative --rtol/--atol, both or neither of the class pair and --from)
  with --from FILE: 1 if some class is not equivalent, else 2 if some could not be
  compared (no example, fails to build), else 0

example:
  nnx-migrate check models/linen_mlp.py::MLP models/nnx_mlp.py::MLP \\
      --kwargs '{"features": 32}' --input float32[4,10]
  nnx-migrate check --from nnx_checks_test.py   # written by `rewrite --emit-checks`
"""

EXIT_EQUIVALENT = 0
EXIT_DIFFERENT = 1
EXIT_CANNOT_RUN = 2
EXIT_USAGE = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("linen", nargs="?", metavar="LINEN_FILE::Class", help="the Linen original")
    parser.add_argument("nnx", nargs="?", metavar="NNX_FILE::Class", help="the NNX port")
    parser.add_argument("--from", dest="from_file", metavar="FILE",
                        help="run every check of a file written by `rewrite --emit-checks` (no pytest) and print a table")
    parser.add_argument("--kwargs", default="{}", metavar="JSON",
                        help="constructor keywords of the Linen class (and its fields for the NNX class)")
    parser.add_argument("--input", action="append", default=[], metavar="SPEC", dest="inputs",
                        help="one positional input, e.g. float32[4,10] or int32[3,7]:0..100 "
                             "(required with a class pair; repeat for more)")
    parser.add_argument("--call", default="{}", metavar="JSON", help="keyword arguments for both calls")
    parser.add_argument("--method", default=None, help="compare this method instead of __call__")
    parser.add_argument("--init-input", action="append", default=[], metavar="SPEC", dest="init_inputs",
                        help="with --method: an input of __call__ for Linen's init, so that every "
                             "parameter exists (repeat for more)")
    parser.add_argument("--train-steps", type=int, default=0, metavar="N",
                        help="also run N Adam steps on both sides and compare losses and final weights")
    parser.add_argument("--nnx-kwargs", default=None, metavar="JSON",
                        help="build the NNX class with these keywords (+ rngs) as a hand-written port")
    parser.add_argument("--mapping", default=None, metavar="JSON", type=_mapping_arg,
                        help='explicit placements, Linen path -> NNX path: {"Dense_0": "fc1"}')
    parser.add_argument("--rtol", type=_tolerance, default=None,
                        help="relative tolerance for every leaf, >= 0 (default: per dtype, 1e-6 for float32)")
    parser.add_argument("--atol", type=_tolerance, default=None,
                        help="absolute tolerance for every leaf, >= 0 (default: per dtype, 1e-6 for float32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for inputs, Linen init and NNX construction")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _mapping_arg(text: str) -> str:
    """A JSON object of Linen path -> NNX path, both strings; checked here so that a bad
    value is a bad command line (exit 4), not a failure deep in the comparison."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    for key, path in value.items():
        if not isinstance(path, str) or not path.strip() or not key.strip():
            raise argparse.ArgumentTypeError(
                f"{key!r}: {path!r}: expected non-empty strings, Linen path -> NNX path, e.g. {{\"Dense_0\": \"fc1\"}}"
            )
    return text


def _json_arg(name: str, text: str | None):
    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EquivalenceSetupError(f"{name}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EquivalenceSetupError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def run(args: argparse.Namespace) -> int:
    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    if args.from_file or not (args.linen and args.nnx):
        if not args.from_file or args.linen or args.nnx:
            print("nnx-migrate check: error: give LINEN_FILE::Class NNX_FILE::Class, or --from FILE", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)  # as argparse's usage errors do (cli._Parser)
        from nnx_migrate.checks.table import run_from

        return run_from(args.from_file, as_json=args.json)
    if not args.inputs:
        print("nnx-migrate check: error: the following arguments are required: --input", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    try:
        result = _check(args)
    except EquivalenceSetupError as exc:
        reason = str(exc)
        if args.json:
            print(json.dumps({"ok": False, "status": "could not run", "reason": reason}, indent=2))
        print(f"nnx-migrate check: could not run: {reason}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.json:
        print(json.dumps({**result.to_dict(), "status": "equivalent" if result.ok else "not equivalent"}, indent=2))
    else:
        print(result)
    return EXIT_EQUIVALENT if result.ok else EXIT_DIFFERENT


def _check(args: argparse.Namespace):
    from nnx_migrate.equivalence.errors import EquivalenceSetupError
    from nnx_migrate.equivalence.example_inputs import make_input, parse_input_spec

    linen_kwargs = _json_arg("--kwargs", args.kwargs)
    call_kwargs = _json_arg("--call", args.call)
    nnx_kwargs = _json_arg("--nnx-kwargs", args.nnx_kwargs)
    mapping = _json_arg("--mapping", args.mapping)
    for spec in args.inputs + args.init_inputs:
        parse_input_spec(spec)  # report a bad spec before paying for the imports below
    if args.train_steps < 0:
        raise EquivalenceSetupError("--train-steps must be 0 or more")

    import flax.linen as nn
    from flax import nnx

    from nnx_migrate.equivalence import compare
    from nnx_migrate.equivalence.loading import load_target

    linen_class = load_target(args.linen)
    nnx_class = load_target(args.nnx)
    if not (isinstance(linen_class, type) and issubclass(linen_class, nn.Module)):
        raise EquivalenceSetupError(f"{args.linen}: not a flax.linen Module class")
    if not (isinstance(nnx_class, type) and issubclass(nnx_class, nnx.Module)):
        raise EquivalenceSetupError(f"{args.nnx}: not a flax.nnx Module class")
    try:
        linen_module = linen_class(**linen_kwargs)
    except Exception as exc:
        raise EquivalenceSetupError(f"{args.linen}({linen_kwargs}) failed: {type(exc).__name__}: {exc}") from exc
    nnx_target = nnx_class
    if nnx_kwargs is not None:
        try:
            nnx_target = nnx_class(**nnx_kwargs, rngs=nnx.Rngs(args.seed))
        except Exception as exc:
            raise EquivalenceSetupError(f"{args.nnx}({nnx_kwargs}, rngs=...) failed: {type(exc).__name__}: {exc}") from exc
    inputs = [make_input(spec, args.seed + 100 + i) for i, spec in enumerate(args.inputs)]
    init_inputs = [make_input(spec, args.seed + 200 + i) for i, spec in enumerate(args.init_inputs)]
    return compare(
        linen_module,
        nnx_target,
        *inputs,
        call_kwargs=call_kwargs,
        method=args.method,
        init_inputs=init_inputs or None,
        train_steps=args.train_steps,
        mapping=mapping,
        rtol=args.rtol,
        atol=args.atol,
        seed=args.seed,
    )
