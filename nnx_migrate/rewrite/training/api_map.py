"""The training API map (`rules/linen_training.toml`) as frozen data. No jax or flax."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from nnx_migrate.rewrite.rules import _load


@dataclass(frozen=True)
class TrainingRules:
    train_state_classes: frozenset[str]
    create_keywords: dict[str, str]
    state_attributes: dict[str, str]
    state_attributes_eager: dict[str, str]
    replace_fields: dict[str, str]
    apply_keywords: dict[str, str]
    grad_transforms: dict[str, str]
    jit: dict[str, dict[str, str]]
    unsupported: dict[str, str]
    pytree_state_styles: frozenset[str]
    pytree_state_supported: frozenset[str]

    def unsupported_for(self, style: str) -> dict[str, str]:
        """What is left as TODO for this --train-style."""
        if style not in self.pytree_state_styles:
            return self.unsupported
        return {k: v for k, v in self.unsupported.items() if k not in self.pytree_state_supported}

    @property
    def state_attribute_names(self) -> frozenset[str]:
        return frozenset(self.state_attributes) | {"apply_fn", "apply_gradients", "replace", "batch_stats"}


@functools.cache
def load_training_rules() -> TrainingRules:
    data = _load("linen_training.toml")
    return TrainingRules(
        train_state_classes=frozenset(data["train_state_classes"]),
        create_keywords=dict(data["create_keywords"]),
        state_attributes=dict(data["state_attributes"]),
        state_attributes_eager=dict(data["state_attributes_eager"]),
        replace_fields=dict(data["replace_fields"]),
        apply_keywords=dict(data["apply_keywords"]),
        grad_transforms=dict(data["grad_transforms"]),
        jit={k: dict(v) for k, v in data["jit"].items()},
        unsupported=dict(data["unsupported"]),
        pytree_state_styles=frozenset(data["pytree_state"]["styles"]),
        pytree_state_supported=frozenset(data["pytree_state"]["supported"]),
    )
