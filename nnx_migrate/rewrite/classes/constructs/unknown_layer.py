"""A Linen layer no rule of `rules/*.toml` converts: `nn.SpectralNorm(...)`, a `flax.linen` class the API map does not hold.

What: the construction moves to `__init__` as it is (Linen code), with a TODO line that
says why (the API map's own reason where `rules/` lists the layer as not converted); the
call uses the attribute.

Why: never silently wrong: a layer NNX builds differently, or that has no NNX
counterpart, needs a person.

Before:
    x = nn.SpectralNorm(layer)(x)

After:
    # __init__
    # TODO(nnx-migrate): no NNX rule for Linen layer 'SpectralNorm' in rules/linen_layers.toml
    self.spectral_norm_0 = nn.SpectralNorm(layer)
    # __call__
    x = self.spectral_norm_0(x)

Reported: always, with the reason the API map gives, or "no NNX rule for Linen layer".
"""

from __future__ import annotations

from nnx_migrate.rewrite.classes.constructs.base import SubmoduleConstruct
from nnx_migrate.rewrite.classes.model import SubKind
from nnx_migrate.rewrite.names import normalize_linen
from nnx_migrate.rewrite.sizes import code


class UnknownLayer(SubmoduleConstruct):
    title = "Linen layers the API map does not convert"
    linen = frozenset()  # any `flax.linen` class no other construct takes
    kind = SubKind.UNKNOWN_LINEN
    order = 90

    def matches(self, conv, func, qual) -> bool:
        return qual is not None and qual.startswith("flax.linen.") and qual.rsplit(".", 1)[1][:1].isupper() and qual not in ("flax.linen.Module",)

    def analyse(self, conv, sub, ctor, walker) -> str:
        imports, rules = conv.ctx.imports, conv.ctx.rules
        linen_class = (imports.qualify(ctor.func) or "?").rsplit(".", 1)[1]
        why = rules.unconverted.get(normalize_linen(imports.qualify(ctor.func), rules.unconverted))
        sub.problems.append(f"Linen layer '{linen_class}' is not converted: {why}" if why else f"no NNX rule for Linen layer '{linen_class}' in rules/linen_layers.toml")
        return linen_class

    def init_source(self, conv, sub) -> str:
        return code(sub.ctor)
