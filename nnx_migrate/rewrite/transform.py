"""One file through the rewrite: the class pass (class_pass.py), then the training pass
(training/), then the report of Linen model API left behind (training/leftovers.py) and
of the TODO comments the input already holds (markers.py).

`rewrite_source(text, path)` is the pure API every caller (CLI, tests, benchmarks) uses: it
reads no file. A `RunContext` passed in (the runner builds one per run) keeps the run's
caches and is the only way to other files of the program (`RunContext.on_disk()`).
Files that do not mention `linen` are returned untouched without being parsed.
"""

from __future__ import annotations

from nnx_migrate.rewrite.class_pass import rewrite_classes
from nnx_migrate.rewrite.markers import with_marked_sites
from nnx_migrate.rewrite.report import FileResult
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.training.data_parallel import DEFAULT_PMAP, PMAP_MODES
from nnx_migrate.rewrite.training.leftovers import report_leftovers
from nnx_migrate.rewrite.training.run import DEFAULT_TRAIN_STYLE, apply_training_pass


def rewrite_source(text: str, path: str = "<string>", external=None, train_style: str = DEFAULT_TRAIN_STYLE, context: RunContext | None = None,
                   pmap: str = DEFAULT_PMAP) -> FileResult:
    """Converts one file's source: module classes, then the training code (training/).
    The training pass works on the class pass's tree (not on its text parsed again).
    `external`: the run's `index.ModuleIndex` of the other files' classes; `pmap`: "keep"
    or "jit" (`rewrite --pmap`, training/data_parallel.py)."""
    if pmap not in PMAP_MODES:
        raise ValueError(f"pmap must be one of {PMAP_MODES}, not {pmap!r}")
    if context is None:
        with RunContext() as context:
            return rewrite_source(text, path, external, train_style, context, pmap)
    result, tree = rewrite_classes(text, path, context, external)
    result = apply_training_pass(result, text, context, train_style, external, tree, pmap)
    result = report_leftovers(result, text, context, external)
    return with_marked_sites(result, text, context)
