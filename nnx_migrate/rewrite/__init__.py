"""`nnx-migrate rewrite`: Linen module classes become NNX module classes.

Layout, one concern per module:
- `names`     which dotted name an expression refers to (import aliases)
- `rules`     the layer/function map, read from the top-level `rules/*.toml`
- `sizes`     input-size inference (last dimension of arrays, as `__init__` source)
- `classes`   one Linen class -> one NNX class (discovery, analysis, generation)
- `renames`   Linen functions and types -> NNX names; leftover Linen references
- `imports`   `from flax import nnx` added, unused Linen imports removed
- `transform` one file (the pure API: `rewrite_source`)
- `runner`    many files, in parallel; summary
- `report`    results, TODO sites, JSON and Markdown
"""

from nnx_migrate.rewrite.transform import rewrite_source

__all__ = ["rewrite_source"]
