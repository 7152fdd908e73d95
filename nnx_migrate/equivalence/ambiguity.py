"""Settling a structural mapping that the shapes leave open, by the outputs.

A hand port that calls Linen's `LayerNorm_0`/`LayerNorm_1` `norm1`/`norm2` has two
submodules of the same shapes and no names to tell them apart. The harness tries each
one-to-one placement the shapes allow (a handful: nested ambiguities are settled one
level at a time, at most `MAX_PLACEMENTS` in all), copies the (perturbed, so not
interchangeable) weights under each, and runs the inference call once per placement.
It accepts a placement only when the outputs agree under it and under no other; when
none agrees, or several do, it stops with an AmbiguousMappingError naming them, and
`mapping=` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nnx_migrate.equivalence.errors import AmbiguousMappingError
from nnx_migrate.equivalence.nnx_tree import format_nnx_path
from nnx_migrate.equivalence.weight_mapping import WeightMap, format_linen_path, map_weights

MAX_PLACEMENTS = 64

Overrides = dict[str, Any]


def complete_placements(variables, nnx_module, match: str, mapping: Mapping[str, Any] | None
                        ) -> list[tuple[Overrides, WeightMap]]:
    """Every placement that leaves no ambiguity: (the overrides that make it, its map)."""
    pending: list[Overrides] = [dict(mapping or {})]
    complete: list[tuple[Overrides, WeightMap]] = []
    while pending:
        overrides = pending.pop(0)
        weight_map = map_weights(variables, nnx_module, match=match, overrides=overrides, ambiguities="collect")
        if not weight_map.ambiguities:
            complete.append((overrides, weight_map))
            continue
        for assignment in weight_map.ambiguities[0].assignments():
            pending.append({**overrides, **{format_linen_path(None, linen): nnx
                                            for linen, nnx in assignment.items()}})
        if len(pending) + len(complete) > MAX_PLACEMENTS:
            raise AmbiguousMappingError(
                f"more than {MAX_PLACEMENTS} placements of the Linen submodules fit by shapes "
                f"({weight_map.ambiguities[0].describe()}); say which with mapping={{...}}")
    return complete


def resolve_by_outputs(
    variables,
    nnx_module,
    match: str,
    mapping: Mapping[str, Any] | None,
    first: WeightMap,
    outputs_agree: Callable[[WeightMap], bool],
) -> tuple[WeightMap, str]:
    """The one placement whose outputs agree, and a note saying which it is."""
    placements = complete_placements(variables, nnx_module, match, mapping)
    usable = [(overrides, weight_map) for overrides, weight_map in placements if weight_map.complete]
    agreeing = []
    for overrides, weight_map in usable:
        weight_map.load(variables)
        if outputs_agree(weight_map):
            agreeing.append((overrides, weight_map))
    question = "; ".join(ambiguity.describe() for ambiguity in first.ambiguities)
    if len(agreeing) != 1:
        shown = [_describe(overrides, mapping) for overrides, _ in (agreeing or usable)]
        verdict = (f"the outputs agree under {len(agreeing)} of them: {' | '.join(shown)}" if agreeing
                   else f"the outputs agree under none of the {len(usable)} placements tried")
        raise AmbiguousMappingError(
            f"weight shapes alone do not place every Linen submodule ({question}); {verdict}; "
            f"say which with mapping={{'<Linen path>': '<nnx path>', ...}}")
    overrides, weight_map = agreeing[0]
    note = (f"placed by the outputs: {_describe(overrides, mapping)} (shapes allowed {len(usable)} placements "
            f"of {question}; only this one gives Linen's outputs)")
    return weight_map, note


def _describe(overrides: Overrides, given: Mapping[str, Any] | None) -> str:
    chosen = {key: value for key, value in overrides.items() if key not in (given or {})}
    return ", ".join(f"{key} -> {format_nnx_path(value)}" for key, value in sorted(chosen.items()))
