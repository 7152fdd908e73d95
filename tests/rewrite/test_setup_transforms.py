"""A Linen transform of a class built in setup() and called in a method: where the tool
cannot run it through its NNX transform, the call line itself carries the TODO (a direct
call of the stack would run it as one layer), and a transform bound to a local in a form
the tool does not follow is reported at the binding instead of left as Linen."""

from __future__ import annotations

import textwrap

from nnx_migrate.rewrite import rewrite_source

TODO = "# TODO(nnx-migrate): "


def _marked_lines(source: str) -> dict[str, list[str]]:
    """The converted text: each code line -> the TODO comments right above it."""
    result = rewrite_source(textwrap.dedent(source), "case.py")
    assert result.error is None
    marks: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in result.new_text.splitlines():
        if line.strip().startswith(TODO):
            pending.append(line.strip()[len(TODO):])
        else:
            marks[line.strip()] = pending
            pending = []
    return marks


def test_an_unconverted_setup_scan_is_marked_at_its_call():
    marks = _marked_lines(
        """
        import flax.linen as nn

        class Block(nn.Module):
          @nn.compact
          def __call__(self, x, _):
            return nn.Dense(4)(x), None

        class Stack(nn.Module):
          def setup(self):
            self.stack = nn.scan(Block, variable_axes={'params': 1}, split_rngs={'params': True}, length=2)()

          def __call__(self, x):
            x, _ = self.stack(x, None)
            return x
        """
    )
    assert any("variable_axes" in why for why in next(v for k, v in marks.items() if k.startswith("self.stack =")))
    assert any("nnx.scan by hand" in why for why in marks["x, _ = self.stack(x, None)"])


def test_a_converted_setup_scan_call_runs_through_nnx_scan():
    marks = _marked_lines(
        """
        import flax.linen as nn

        class Block(nn.Module):
          @nn.compact
          def __call__(self, x, _):
            return nn.Dense(4)(x), None

        class Stack(nn.Module):
          def setup(self):
            self.flat = nn.Dense(4)
            self.stack = nn.scan(Block, variable_axes={'params': 0}, split_rngs={'params': True}, length=2)()

          def __call__(self, x):
            x = x.reshape((x.shape[0], -1))
            x, _ = self.stack(x, None)
            return x
        """
    )
    call = next(k for k in marks if k.startswith("x, _ = "))
    assert call.startswith("x, _ = nnx.scan(") and "self.stack" in call


def test_a_setup_local_transform_with_options_is_reported_at_its_binding():
    marks = _marked_lines(
        """
        import flax.linen as nn

        class Block(nn.Module):
          @nn.compact
          def __call__(self, x):
            return nn.Dense(4)(x)

        class M(nn.Module):
          def setup(self):
            RB = nn.remat(Block, prevent_cse=False)
            self.block = RB()

          def __call__(self, x):
            return self.block(x)
        """
    )
    assert any("bound to a local" in why for why in marks["RB = nn.remat(Block, prevent_cse=False)"])
