"""The LibCST transform of the training pass, one function at a time.

What changes inside a function (see `rules/linen_training.toml` for the data):

- `model = CNN(...)` + `params = model.init(key, x)['params']` -> one
  `model = CNN(..., in_features=<x's last dim>, rngs=nnx.Rngs(key))`; `init`'s result
  then stands for the model.
- `TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=...)` ->
  `TrainState.create(model, tx)` (the emitted helper, see `state_helper`).
- A function that applies or trains a state (`state.apply_fn(...)`,
  `state.apply_gradients(...)`, a gradient over `state.params`) starts with
  `model, optimizer = state.merge()`; then `state.apply_fn({'params': p, ...}, x, ...)`
  -> `p(x, ...)` (`mutable=`/`rngs=` dropped: NNX updates variables in place and the model
  draws from its own RNG streams), `jax.value_and_grad(loss_fn)(state.params)` ->
  `nnx.value_and_grad(loss_fn)(model)` with `loss_fn`'s parameter renamed `model`,
  `state = state.apply_gradients(grads=g)` -> `optimizer.update(model, g)` +
  `state = state.updated(model, optimizer)`, `state.step` -> `optimizer.step[...]`. The
  `updates` a `mutable=` call returned are removed where they were unpacked and returned,
  and `state.replace(batch_stats=...)` disappears.
- Elsewhere (module-level code included) `state.params` -> `state.model`, `state.step` ->
  `state.optimizer.step[...]`; at module level `state.apply_fn` / `apply_gradients` are marked.
- `Model(...).apply({'params': p}, x)` -> `p(x)` (`p` is the model after conversion).

What it cannot convert gets a `# TODO(nnx-migrate): ...` line and a report entry.
"""


from nnx_migrate.rewrite.nodes import names_in
from nnx_migrate.rewrite.training.steps.transformer import TrainingTransformer

__all__ = ["TrainingTransformer", "names_in"]
