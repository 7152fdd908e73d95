"""`nnx-migrate convert-checkpoint`: a Linen checkpoint -> an orbax checkpoint of the NNX state."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "convert-checkpoint"
HELP = "convert a Linen checkpoint into an orbax checkpoint of the converted NNX model"
DESCRIPTION = """\
Reads the Linen checkpoint SRC (an orbax directory written by StandardCheckpointer,
PyTreeCheckpointer or a CheckpointManager, whose latest step is taken unless --step;
a flax.training.checkpoints directory or file; flax.serialization msgpack bytes), builds
the NNX class --model (as `nnx-migrate rewrite` wrote it) with --kwargs, the input sizes of
--input and any other size it needs read off the checkpoint's shapes, places every leaf
by the rewrite's naming convention (params, batch_stats and other collections, scanned
stacks, nnx.List/nnx.Dict entries, the optax state and the step), and writes DST as an
orbax checkpoint {'model': nnx.state(model), 'optimizer': nnx.state(optimizer)}.

Strict: a checkpoint leaf with no place, a Param or BatchStat left unfilled, a shape
or dtype that differs: nothing is written and every problem is listed.
"""
EPILOG = """\
exit codes:
  0  converted
  2  could not convert: unreadable checkpoint, model that cannot be built, or a
     checkpoint that does not fit the model (every problem listed)
  4  bad command line

restore the result (tx: the Linen program's optax transformation):
  model = Model(..., rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  nnx_migrate.checkpoint.restore_nnx_checkpoint(DST, model, optimizer)

example:
  nnx-migrate convert-checkpoint ckpts/linen ckpts/nnx --model models_nnx.py::CNN --input float32[1,28,28,1]
"""

EXIT_CONVERTED = 0
EXIT_CANNOT_CONVERT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="the Linen checkpoint (directory or file)")
    parser.add_argument("destination", metavar="DST", help="the orbax checkpoint directory to write")
    parser.add_argument("--model", required=True, metavar="FILE::Class", help="the converted NNX class")
    parser.add_argument("--kwargs", default="{}", metavar="JSON",
                        help="constructor keywords of the NNX class (the Linen fields)")
    parser.add_argument("--input", action="append", default=[], metavar="SPEC", dest="inputs",
                        help="an example positional input of __call__, for in_features sizes, e.g. "
                             "float32[1,28,28,1] (repeat for more)")
    parser.add_argument("--step", type=int, default=None, help="the step to read from a folder of steps")
    parser.add_argument("--ignore", action="append", default=[], metavar="NAME",
                        help="drop this top-level checkpoint entry (a TrainState field such as ema_params)")
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")


def run(args: argparse.Namespace) -> int:
    from nnx_migrate.checkpoint import CheckpointError
    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    try:
        report = _convert(args)
    except (CheckpointError, EquivalenceSetupError) as exc:
        print(f"nnx-migrate convert-checkpoint: could not convert: {exc}", file=sys.stderr)
        return EXIT_CANNOT_CONVERT
    print(report)
    return EXIT_CONVERTED


def _convert(args: argparse.Namespace):
    from nnx_migrate.equivalence.errors import EquivalenceSetupError
    from nnx_migrate.equivalence.example_inputs import parse_input_spec

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise EquivalenceSetupError(f"--kwargs: not valid JSON: {exc}") from exc
    if not isinstance(kwargs, dict):
        raise EquivalenceSetupError(f"--kwargs: expected a JSON object, got {type(kwargs).__name__}")
    shapes = []
    for spec in args.inputs:
        shapes.append(_Shaped(parse_input_spec(spec)[1]))  # only the shapes size the model

    from flax import nnx

    from nnx_migrate.checkpoint import convert_checkpoint
    from nnx_migrate.equivalence.loading import load_target

    nnx_class = load_target(args.model)
    if not (isinstance(nnx_class, type) and issubclass(nnx_class, nnx.Module)):
        raise EquivalenceSetupError(f"{args.model}: not a flax.nnx Module class")
    return convert_checkpoint(args.source, args.destination, nnx_class, kwargs=kwargs, inputs=shapes,
                              step=args.step, ignore=tuple(args.ignore), force=args.force)


class _Shaped:
    """An input spec's shape, standing in for the array (sizes need nothing else)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
