"""What the file's constructions pass to fields without a default (field_values): a field
converts as if every construction's common value were its default, and only then."""

from __future__ import annotations

import textwrap

import libcst as cst

from nnx_migrate.rewrite.field_values import FieldValues
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.rules import load_rules

HEAD = """
from functools import partial
from typing import Any
import flax.linen as nn

class Block(nn.Module):
  conv: Any
  act: Any
  width: int = 2

  @nn.compact
  def __call__(self, x):
    return self.act(self.conv(self.width, (3, 3))(x))
"""


def values(tail: str) -> FieldValues:
    module = cst.parse_module(textwrap.dedent(HEAD) + textwrap.dedent(tail))
    names = {s.name.value for s in module.body if isinstance(s, cst.ClassDef)}
    return FieldValues(module, ImportMap(module), load_rules(), names)


def test_the_same_layer_through_locals_fields_and_module_level_partials():
    fv = values(
        """
        class Net(nn.Module):
          conv: Any = nn.Conv

          @nn.compact
          def __call__(self, x, train: bool = True):
            conv = partial(self.conv, use_bias=False)
            x = Block(conv=conv, act=nn.relu)(x)
            return Block(partial(nn.Conv, use_bias=False), nn.tanh)(x)

        Tiny = partial(Block, conv=nn.Conv)
        """
    )
    conv = fv.infer("Block", "conv")
    assert (conv.kind, conv.key) == ("layer", "flax.linen.Conv")
    assert conv.presets == {}  # use_bias not given by every construction: not relied on
    act = fv.infer("Block", "act")
    assert act.kind == "function" and act.key_in(load_rules().keep_last_dim)


def test_different_layers_or_an_unknown_value_leave_the_field_unknown():
    fv = values(
        """
        class Net(nn.Module):
          @nn.compact
          def __call__(self, x):
            return Block(conv=nn.Dense, act=nn.relu)(Block(conv=nn.Conv, act=nn.relu)(x))
        """
    )
    assert fv.infer("Block", "conv") is None
    assert "different values (nn.Conv, nn.Dense)" in fv.why_unknown("Block", "conv")
    fv = values(
        """
        def make(conv):
          return Block(conv=conv, act=nn.relu)
        """
    )
    assert fv.infer("Block", "conv") is None
    assert "cannot follow" in fv.why_unknown("Block", "conv")
    fv = values(
        """
        def make(**kw):
          return Block(**kw)
        """
    )
    assert fv.infer("Block", "conv") is None
    assert values("").infer("Block", "conv") is None
    assert "no construction" in values("").why_unknown("Block", "conv")


def test_positional_presets_and_call_time_values():
    fv = values(
        """
        class Net(nn.Module):
          @nn.compact
          def __call__(self, x):
            return Block(conv=partial(nn.Conv, 4), act=nn.relu)(x)
        """
    )
    assert fv.infer("Block", "conv") is None  # a positional preset shifts NNX's arguments
    fv = values(
        """
        class Norm(nn.Module):
          norm: Any

          @nn.compact
          def __call__(self, x):
            return self.norm()(x)

        class Net(nn.Module):
          @nn.compact
          def __call__(self, x, train: bool = True):
            x = Norm(partial(nn.BatchNorm, use_running_average=not train, momentum=0.5))(x)
            return Norm(partial(nn.BatchNorm, use_running_average=True, momentum=0.5))(x)
        """
    )
    norm = fv.infer("Norm", "norm")
    assert norm.key == "flax.linen.BatchNorm"
    assert norm.call_time == {"use_running_average"}
    assert norm.presets == {"momentum": "0.5"}  # (the literal use_running_average differs: not kept)


def test_a_class_field_bound_by_module_level_partials():
    fv = values(
        """
        class Other(Block):
          pass

        class Net(nn.Module):
          block_cls: Any

          @nn.compact
          def __call__(self, x):
            return self.block_cls(conv=nn.Conv, act=nn.relu)(x)

        A = partial(Net, block_cls=Block)
        B = partial(Net, block_cls=Other)
        """
    )
    inferred = fv.infer("Net", "block_cls")
    assert inferred.kind == "class" and inferred.classes == ("Block", "Other")
    # what Net passes reaches both classes
    assert fv.infer("Block", "conv").key == "flax.linen.Conv"
    assert fv.infer("Other", "conv").key == "flax.linen.Conv"


def test_fields_passed_on_through_many_classes_are_resolved_once_each():
    """Each (class, field) answer is kept, inside cycles too: a chain of classes that pass
    their own fields on, and pass each other back, made every query walk the file's
    constructions again (exponential: minutes on diffusers' blocks)."""
    classes = ["import flax.linen as nn\nfrom typing import Any\n"]
    n = 12
    for i in range(n):
        nxt = f"C{i + 1}(a=self.a, b=self.b, c=self.c)(x)" if i + 1 < n else "self.a(2)(x)"
        back = f"C{i - 1}(a=self.b, b=self.c, c=self.a)(x)" if i else "x"
        classes.append(f"class C{i}(nn.Module):\n  a: Any\n  b: Any\n  c: Any\n\n  @nn.compact\n  def __call__(self, x):\n    return {nxt} + {back}\n")
    module = cst.parse_module("\n\n".join(classes))
    fv = FieldValues(module, ImportMap(module), load_rules(), {f"C{i}" for i in range(n)})
    calls = 0
    resolve = fv.resolve

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return resolve(*args, **kwargs)

    fv.resolve = counting
    for i in range(n):
        for name in "abc":
            fv.infer(f"C{i}", name)
    assert calls < 20_000, calls
