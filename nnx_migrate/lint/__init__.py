"""`nnx-migrate lint`: finds NNX code broken by Flax's API changes, and fixes it.

Built on LibCST directly (not Fixit): see docs/lint.md's design notes for why. One rule per
module in `nnx_migrate/lint/rules/`; `engine.py` runs them on one file, `runner.py` on a
tree. Never imports jax or flax.
"""
