"""`nnx-migrate rewrite`: Linen module classes become NNX module classes.

Layout, one concern per module:
- `names`     which dotted name an expression refers to (import aliases)
- `rules`     the layer/function map, read from the top-level `rules/*.toml`
- `sizes`     input-size inference (last dimension of arrays, as `__init__` source)
- `nodes`     small questions about LibCST nodes (self.x, statements, names read)
- `classes`   one Linen class -> one NNX class (discovery, analysis, generation)
- `rewriters` the setup body and the methods rewritten (TODO markers included)
- `recurrent` scan over time, nn.RNN's checks, recurrent cells' initialize_carry
- `helpers`   Linen functions kept as a helper written into the file (nn.merge_param)
- `renames`   Linen functions and types -> NNX names; leftover Linen references
- `edits`     imports and helpers the passes ask for, added and removed in one step
- `lines`     line numbers for the report, in one rendering of the file
- `index`     the converted classes of the other files of a run
- `run_context` a run's caches and its only reader of other files (`RunContext`)
- `class_pass` one file's module classes (the result the training pass asks for)
- `transform` one file through every pass (the pure API: `rewrite_source`)
- `runner`    many files, in parallel; summary
- `report`    results, TODO sites, JSON and Markdown
"""

from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.transform import rewrite_source

__all__ = ["RunContext", "rewrite_source"]
