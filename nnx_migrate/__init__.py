"""nnx-migrate: move Flax code from Linen to NNX.

The rewrite and lint paths never import jax or flax (fast start, no accelerator init);
only the equivalence harness does.
"""

__version__ = "0.1.0"
