"""A form feed (or another character `str.splitlines` breaks on but Python does not) must
not shift the statements the rewrite reads: Linen uses outside classes are still renamed."""

from nnx_migrate.rewrite.transform import rewrite_source

SOURCE = (
    "import flax.linen as nn\n"
    "\x0c\n"
    "class MLP(nn.Module):\n"
    "  @nn.compact\n"
    "  def __call__(self, x):\n"
    "    return nn.Dense(2)(x)\n"
    "\n"
    "activation = nn.relu\n"
)


def test_form_feed_line_does_not_hide_linen_uses_outside_classes():
    new = rewrite_source(SOURCE, "ff.py").new_text
    assert "activation = nnx.relu\n" in new
    assert "\x0c\n" in new  # the form feed itself is kept
    assert "linen" not in new
