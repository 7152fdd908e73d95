"""Subcommands of `nnx-migrate`; each module here is one, found by `nnx_migrate.cli`."""
