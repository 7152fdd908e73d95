"""Files that use neither flax nor a Linen model of the run are never touched, even when
they contain APIs the training pass reports in Linen programs (`jax.pmap`, checkpoints)."""

from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.transform import rewrite_source

PLAIN_JAX = '''\
import jax
import jax.numpy as jnp


def step(params, batch):
    return jax.tree.map(lambda p: p - 0.1 * p, params)


parallel_step = jax.pmap(step, axis_name="batch")
'''


def test_plain_jax_file_with_pmap_is_left_byte_identical():
    result = rewrite_source(PLAIN_JAX, "plain.py")
    assert result.new_text == PLAIN_JAX
    assert result.todos == []


def test_the_same_pmap_in_a_linen_program_is_reported():
    source = PLAIN_JAX.replace("import jax\n", "import jax\nfrom flax.training import train_state\n", 1)
    # (reported in the nnx-jit style: over the flat-state pytree state pmap is converted)
    result = rewrite_source(source, "train.py", train_style="nnx-jit")
    assert any("pmap" in todo.why for todo in result.todos)


def test_a_long_chain_of_sibling_modules_is_not_followed_file_after_file(tmp_path):
    """jax's own sources: each module imports and calls the next; following every file's
    siblings and imports in turn ran past Python's recursion limit (reported as a failed
    conversion of plain JAX files). Only a bounded depth is followed."""
    count = 120
    for n in range(count):
        nxt = f"import m{n + 1}\n" if n + 1 < count else ""
        call = f"m{n + 1}.step(model)" if n + 1 < count else "model"
        (tmp_path / f"m{n}.py").write_text(
            f"import jax\n{nxt}\n\ndef step(model):\n    return jax.pmap({call})\n\n\ndef build(key):\n    return step(key)\n")
    text = (tmp_path / "m0.py").read_text()
    result = rewrite_source(text, str(tmp_path / "m0.py"), context=RunContext.on_disk())
    assert result.todos == [], [t.render() for t in result.todos]
    assert result.new_text == text
