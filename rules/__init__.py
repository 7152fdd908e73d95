"""The Linen->NNX API map and NNX API facts, as data (TOML). Ships as nnx_migrate._rules."""
