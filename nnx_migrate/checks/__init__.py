"""Equivalence checks written by `nnx-migrate rewrite --emit-checks`.

`sites` finds example inputs in the run's own code (pure `ast`), `emit` writes the pytest
file, `examples` reads the user's examples file; only `running` imports jax, when a check
runs (the emitted tests and `nnx-migrate check --from`).
"""
