"""Where each Linen variable lives on the NNX side, and copying it there.

Linen names variables by collection and scope path (`params/Dense_0/kernel`,
`batch_stats/BatchNorm_0/mean`); NNX by attribute path and Variable type
(`dense_0.kernel` as `nnx.Param`, `bn.mean` as `nnx.BatchStat`). The mapping walks both
module trees together:

1. An explicit override (`mapping={'Dense_0': 'fc1', 'Dense_1/kernel': ('out.w', fn)}`)
   always wins.
2. By name, with the convention the rewrite writes (`nnx_migrate.naming`): `Dense_0` may
   be `Dense_0`, `dense_0` or element 0 of a list `Dense`; `layers_3` is `layers[3]`. Leaf
   names are kept (`kernel`, `mean`, `w`). More than one existing candidate is an error.
3. By structure (hand-written ports only, `match='structure'`): a Linen submodule left
   over is matched to the one unclaimed NNX submodule whose weights have the same kinds
   and shapes. Two possible matches is an error naming them: the harness never guesses.
   `compare()` asks for them instead (`ambiguities='collect'`) and tries each assignment
   the shapes allow, keeping one only when the outputs agree under it and no other.

Whatever cannot be placed is reported, never dropped: Linen leaves with no home, NNX
Params and BatchStats left unfilled, and pairs whose kind, shape or dtype differ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
from flax import nnx

from nnx_migrate.equivalence.errors import AmbiguousMappingError, EquivalenceSetupError
from nnx_migrate.equivalence.nnx_tree import (
    NNXNode,
    NNXPath,
    build_nnx_tree,
    format_nnx_path,
    kind_of_collection,
    kind_of_variable,
    parse_nnx_path,
    variable_value,
)
from nnx_migrate.naming import is_linen_auto_name, nnx_path_candidates

LinenPath = tuple[str, ...]
Transform = Callable[[Any], Any]

# Collections that hold a call's by-products, not model state: never copied.
TRANSIENT_COLLECTIONS = frozenset({"intermediates"})

# Unfilled NNX variables of these kinds make the comparison meaningless (they feed the
# computation with random initial values); other unfilled variables are only noted.
REQUIRED_KINDS = frozenset({"params", "batch_stats"})


def format_linen_path(collection: str | None, path: LinenPath) -> str:
    return "/".join(((collection,) if collection else ()) + tuple(path)) or "<root>"


@dataclass(frozen=True)
class LeafPair:
    """One Linen leaf and the NNX variable that receives it."""

    collection: str
    linen_path: LinenPath  # scope path + leaf name, without the collection
    nnx_path: NNXPath
    variable: nnx.Variable
    transform: Transform | None = None

    @property
    def linen_name(self) -> str:
        return format_linen_path(self.collection, self.linen_path)

    @property
    def nnx_name(self) -> str:
        return format_nnx_path(self.nnx_path)

    def linen_value(self, tree: Mapping[str, Any], *, with_collection: bool = True) -> Any:
        """This leaf in a Linen tree ({collection: {...}} or, without, one collection)."""
        node: Any = tree[self.collection] if with_collection else tree
        for part in self.linen_path:
            node = node[part]
        return self.transform(node) if self.transform is not None else node


@dataclass
class LinenNode:
    path: LinenPath
    leaves: dict[tuple[str, str], Any] = field(default_factory=dict)  # (collection, name)
    children: dict[str, LinenNode] = field(default_factory=dict)

    def all_leaves(self):
        for (collection, name), value in self.leaves.items():
            yield collection, self.path + (name,), value
        for child in self.children.values():
            yield from child.all_leaves()


def build_linen_tree(variables: Mapping[str, Any]) -> LinenNode:
    root = LinenNode(())
    for collection, tree in variables.items():
        if collection in TRANSIENT_COLLECTIONS:
            continue
        _add_collection(root, collection, tree)
    return root


def _add_collection(node: LinenNode, collection: str, tree: Mapping[str, Any]) -> None:
    for name, value in tree.items():
        if isinstance(value, Mapping):
            child = node.children.setdefault(name, LinenNode(node.path + (name,)))
            _add_collection(child, collection, value)
        else:
            node.leaves[(collection, name)] = value


@dataclass(frozen=True)
class Ambiguity:
    """Linen submodules of one parent whose weight shapes fit several NNX submodules."""

    options: dict[LinenPath, list[NNXPath]]  # Linen submodule -> the NNX ones it fits

    def assignments(self) -> list[dict[LinenPath, NNXPath]]:
        """Every one-to-one placement the shapes allow."""
        found: list[dict[LinenPath, NNXPath]] = []
        linen_paths = list(self.options)

        def extend(index: int, chosen: dict[LinenPath, NNXPath]) -> None:
            if index == len(linen_paths):
                found.append(dict(chosen))
                return
            for target in self.options[linen_paths[index]]:
                if target not in chosen.values():
                    chosen[linen_paths[index]] = target
                    extend(index + 1, chosen)
                    del chosen[linen_paths[index]]

        extend(0, {})
        return found

    def describe(self) -> str:
        return "; ".join(
            f"{format_linen_path(None, path)} fits {', '.join(format_nnx_path(p) for p in targets)}"
            for path, targets in self.options.items()
        )


@dataclass
class WeightMap:
    """The result of mapping: pairs to copy, plus everything that did not fit."""

    nnx_root: NNXNode
    pairs: list[LeafPair] = field(default_factory=list)
    modules: dict[LinenPath, NNXPath] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)  # Linen leaves with no NNX home
    unfilled: list[str] = field(default_factory=list)  # NNX Params/BatchStats left empty
    mismatched: list[str] = field(default_factory=list)  # kind, shape or dtype differ
    notes: list[str] = field(default_factory=list)  # harmless, reported for information
    broken: set[str] = field(default_factory=set)  # Linen names of pairs that cannot be copied
    ambiguities: list[Ambiguity] = field(default_factory=list)  # only with ambiguities='collect'

    @property
    def complete(self) -> bool:
        return not (self.unplaced or self.unfilled or self.mismatched or self.ambiguities)

    def problems(self) -> list[str]:
        return (
            [f"ambiguous by shapes: {item.describe()}" for item in self.ambiguities]
            + [f"Linen leaf with no NNX counterpart: {item}" for item in self.unplaced]
            + [f"NNX variable not filled from Linen: {item}" for item in self.unfilled]
            + [f"mismatch: {item}" for item in self.mismatched]
        )

    def load(self, linen_variables: Mapping[str, Any]) -> None:
        """Copies every Linen leaf into its NNX variable (pairs with a mismatch are skipped)."""
        for pair in self.pairs:
            if pair.linen_name in self.broken:
                continue
            pair.variable.set_value(jnp.asarray(pair.linen_value(linen_variables)))

    def param_pairs(self) -> list[LeafPair]:
        return [pair for pair in self.pairs if pair.collection == "params"]

    def state_pairs(self) -> list[LeafPair]:
        return [pair for pair in self.pairs if pair.collection != "params"]

    def nnx_module_path(self, linen_path: LinenPath) -> NNXPath | None:
        """The NNX module for a Linen scope path, also for modules without weights
        (Dropout, activations wrapped in modules): found by name under the mapped parent."""
        if linen_path in self.modules:
            return self.modules[linen_path]
        if not linen_path:
            return ()
        parent = self.nnx_module_path(linen_path[:-1])
        if parent is None:
            return None
        parent_node = self.nnx_root.resolve(parent)
        if not isinstance(parent_node, NNXNode):
            return None
        found = {
            node.path
            for candidate in nnx_path_candidates(linen_path[-1])
            if isinstance(node := parent_node.resolve(candidate), NNXNode)
        }
        if not found:
            # A hand-written port names it its own way: for a module without weights
            # (Dropout_0), the one unclaimed child of the same class name is it.
            linen_class = linen_path[-1].rsplit("_", 1)[0] if is_linen_auto_name(linen_path[-1]) else None
            claimed = set(self.modules.values())
            found = {
                child.path
                for child in parent_node.children.values()
                if type(child.module).__name__ == linen_class and child.path not in claimed
            }
        return found.pop() if len(found) == 1 else None


def map_weights(
    linen_variables: Mapping[str, Any],
    nnx_module: nnx.Module,
    *,
    match: str = "structure",
    overrides: Mapping[str, Any] | None = None,
    ambiguities: str = "raise",
) -> WeightMap:
    """Maps every Linen leaf onto `nnx_module`; see the module docstring for the rules.

    `match='names'` uses only overrides and the naming convention (exact, for rewrite
    output); `match='structure'` also matches leftover submodules by weight shapes.
    Raises AmbiguousMappingError when something fits in more than one place; with
    `ambiguities='collect'`, submodules that fit several places by shape are left
    unmapped and listed in `WeightMap.ambiguities` instead.
    """
    if match not in ("names", "structure"):
        raise ValueError(f"match must be 'names' or 'structure', not {match!r}")
    if ambiguities not in ("raise", "collect"):
        raise ValueError(f"ambiguities must be 'raise' or 'collect', not {ambiguities!r}")
    linen_root = build_linen_tree(linen_variables)
    nnx_root = build_nnx_tree(nnx_module)
    mapper = _Mapper(linen_root, nnx_root, match == "structure", overrides or {})
    mapper.collect_ambiguities = ambiguities == "collect"
    mapper.map_node(linen_root, nnx_root)
    weight_map = mapper.result
    taken = {id(pair.variable) for pair in weight_map.pairs}
    for path, variable in nnx_root.all_variables():
        if id(variable) in taken:
            continue
        kind = kind_of_variable(variable)
        description = f"{format_nnx_path(path)} ({type(variable).__name__}, shape {_shape(variable_value(variable))})"
        if kind in REQUIRED_KINDS:
            weight_map.unfilled.append(description)
        else:
            weight_map.notes.append(f"NNX variable without a Linen counterpart, left as built: {description}")
    return weight_map


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


class _Mapper:
    def __init__(self, linen_root: LinenNode, nnx_root: NNXNode, structural: bool, overrides):
        self.linen_root = linen_root
        self.nnx_root = nnx_root
        self.structural = structural
        self.result = WeightMap(nnx_root)
        self.taken_variables: set[int] = set()
        self.taken_modules: set[NNXPath] = set()
        self.module_overrides: dict[LinenPath, NNXPath] = {}
        self.leaf_overrides: dict[tuple[str | None, LinenPath], tuple[NNXPath, Transform | None]] = {}
        self.collect_ambiguities = False
        self._parse_overrides(overrides)

    # -- overrides ---------------------------------------------------------------
    def _parse_overrides(self, overrides: Mapping[str, Any]) -> None:
        collections = {c for c, _, _ in self.linen_root.all_leaves()}
        for key, target in overrides.items():
            transform = None
            if isinstance(target, tuple) and len(target) == 2 and callable(target[1]):
                target, transform = target
            nnx_path = parse_nnx_path(target)
            parts = tuple(p for p in str(key).split("/") if p)
            collection = None
            if parts and parts[0] in collections and len(parts) > 1:
                collection, parts = parts[0], parts[1:]
            if collection is None and transform is None and self._linen_module(parts) is not None:
                self.module_overrides[parts] = nnx_path
            elif self._linen_leaf_exists(collection, parts):
                self.leaf_overrides[(collection, parts)] = (nnx_path, transform)
            else:
                raise EquivalenceSetupError(
                    f"mapping override {key!r}: no Linen submodule or variable has this path"
                )

    def _linen_module(self, parts: LinenPath) -> LinenNode | None:
        node = self.linen_root
        for part in parts:
            if part not in node.children:
                return None
            node = node.children[part]
        return node if parts else None

    def _linen_leaf_exists(self, collection: str | None, parts: LinenPath) -> bool:
        return any(
            path == parts and (collection is None or c == collection)
            for c, path, _ in self.linen_root.all_leaves()
        )

    def _resolve_override(self, key: str, nnx_path: NNXPath):
        found = self.nnx_root.resolve(nnx_path)
        if found is None:
            raise EquivalenceSetupError(
                f"mapping override for {key}: the NNX module has nothing at {format_nnx_path(nnx_path)}"
            )
        return found

    # -- the walk ----------------------------------------------------------------
    def map_node(self, lnode: LinenNode, nnode: NNXNode) -> None:
        self.result.modules[lnode.path] = nnode.path
        self.taken_modules.add(nnode.path)
        self._map_leaves(lnode, nnode)
        leftovers: list[LinenNode] = []
        for name, lchild in lnode.children.items():
            if lchild.path in self.module_overrides:
                target = self._resolve_override(format_linen_path(None, lchild.path), self.module_overrides[lchild.path])
                if not isinstance(target, NNXNode):
                    raise EquivalenceSetupError(
                        f"mapping override for {format_linen_path(None, lchild.path)}: "
                        f"{format_nnx_path(self.module_overrides[lchild.path])} is a variable, not a module"
                    )
                self.map_node(lchild, target)
                continue
            found = {}
            for candidate in nnx_path_candidates(name):
                target = nnode.resolve(candidate)
                if isinstance(target, NNXNode) and target.path not in self.taken_modules:
                    found[target.path] = target
            if len(found) > 1:
                raise AmbiguousMappingError(
                    f"Linen submodule {format_linen_path(None, lchild.path)} matches several NNX "
                    f"submodules by name: {', '.join(format_nnx_path(p) for p in found)}; pick one "
                    f"with mapping={{'{format_linen_path(None, lchild.path)}': '<nnx path>'}}"
                )
            if found:
                self.map_node(lchild, next(iter(found.values())))
            else:
                leftovers.append(lchild)
        if leftovers and self.structural:
            leftovers = self._map_by_structure(leftovers, nnode)
        for lchild in leftovers:
            tried = ", ".join(format_nnx_path(nnode.path + c) for c in nnx_path_candidates(lchild.path[-1]))
            how = " and no unclaimed submodule has the same weight shapes" if self.structural else ""
            for collection, path, value in lchild.all_leaves():
                if self._map_overridden_leaf(collection, path, value):
                    continue
                self.result.unplaced.append(
                    f"{format_linen_path(collection, path)} {_shape(value)}: no NNX submodule "
                    f"at {tried}{how}"
                )

    def _map_leaves(self, lnode: LinenNode, nnode: NNXNode) -> None:
        leftovers = []
        for (collection, name), value in lnode.leaves.items():
            linen_path = lnode.path + (name,)
            if self._map_overridden_leaf(collection, linen_path, value):
                continue
            # Leaf names are kept; `w_3` may also be element 3 of a list of variables `w`.
            found = {}
            for candidate in nnx_path_candidates(name):
                target = nnode.resolve(candidate)
                if isinstance(target, nnx.Variable) and id(target) not in self.taken_variables:
                    found.setdefault(id(target), (nnode.path + candidate, target))
            if len(found) > 1:
                raise AmbiguousMappingError(
                    f"Linen variable {format_linen_path(collection, linen_path)} matches several NNX "
                    f"variables by name: {', '.join(format_nnx_path(p) for p, _ in found.values())}; pick "
                    f"one with mapping={{'{format_linen_path(None, linen_path)}': '<nnx path>'}}"
                )
            if found:
                nnx_path, variable = next(iter(found.values()))
                self._pair(collection, linen_path, nnx_path, variable, value)
            else:
                leftovers.append((collection, name, value))
        for collection, name, value in leftovers:
            linen_path = lnode.path + (name,)
            if self.structural:
                same = [
                    other
                    for other, variable in nnode.variables.items()
                    if id(variable) not in self.taken_variables
                    and kind_of_variable(variable) == kind_of_collection(collection)
                    and _shape(variable_value(variable)) == _shape(value)
                ]
                if len(same) > 1:
                    raise AmbiguousMappingError(
                        f"Linen variable {format_linen_path(collection, linen_path)} {_shape(value)} fits "
                        f"several NNX variables: {', '.join(format_nnx_path(nnode.path + (s,)) for s in same)}; "
                        f"pick one with mapping={{'{format_linen_path(None, linen_path)}': '<nnx path>'}}"
                    )
                if same:
                    self._pair(collection, linen_path, nnode.path + (same[0],), nnode.variables[same[0]], value)
                    continue
            self.result.unplaced.append(
                f"{format_linen_path(collection, linen_path)} {_shape(value)}: no NNX variable "
                f"{format_nnx_path(nnode.path + (name,))}"
            )

    def _map_overridden_leaf(self, collection: str, linen_path: LinenPath, value: Any) -> bool:
        override = self.leaf_overrides.get((collection, linen_path)) or self.leaf_overrides.get((None, linen_path))
        if override is None:
            return False
        nnx_path, transform = override
        target = self._resolve_override(format_linen_path(collection, linen_path), nnx_path)
        if not isinstance(target, nnx.Variable):
            raise EquivalenceSetupError(
                f"mapping override for {format_linen_path(collection, linen_path)}: "
                f"{format_nnx_path(nnx_path)} is a module, not a variable"
            )
        self._pair(collection, linen_path, nnx_path, target, value, transform)
        return True

    def _pair(self, collection, linen_path, nnx_path, variable, value, transform=None) -> None:
        pair = LeafPair(collection, linen_path, nnx_path, variable, transform)
        if id(variable) in self.taken_variables:
            other = next(p.linen_name for p in self.result.pairs if p.variable is variable)
            self.result.broken.add(pair.linen_name)
            self.result.mismatched.append(
                f"{pair.linen_name}: NNX {pair.nnx_name} already receives {other}")
            return
        self.taken_variables.add(id(variable))
        self.result.pairs.append(pair)
        expected = kind_of_collection(collection)
        actual = kind_of_variable(variable)
        if expected != actual:
            self.result.broken.add(pair.linen_name)
            self.result.mismatched.append(
                f"{pair.linen_name}: NNX {pair.nnx_name} is a {type(variable).__name__}, "
                f"expected the type for the Linen collection '{collection}'"
            )
            return
        if transform is not None:
            value = transform(value)
        nnx_value = variable_value(variable)
        if _shape(value) != _shape(nnx_value):
            self.result.broken.add(pair.linen_name)
            self.result.mismatched.append(
                f"{pair.linen_name}: shape {_shape(value)} in Linen, {_shape(nnx_value)} at NNX {pair.nnx_name}"
            )
        elif jnp.result_type(value) != jnp.result_type(nnx_value):
            self.result.broken.add(pair.linen_name)
            self.result.mismatched.append(
                f"{pair.linen_name}: dtype {jnp.result_type(value)} in Linen, "
                f"{jnp.result_type(nnx_value)} at NNX {pair.nnx_name}"
            )

    def _map_by_structure(self, leftovers: list[LinenNode], nnode: NNXNode) -> list[LinenNode]:
        candidates = [node for node in _claimable_children(nnode) if node.path not in self.taken_modules]
        signatures = {node.path: _nnx_signature(node) for node in candidates}
        matches = {
            lchild.path: [node for node in candidates if signatures[node.path] == _linen_signature(lchild)]
            for lchild in leftovers
        }
        unmatched = []
        ambiguous: dict[LinenPath, list[NNXPath]] = {}
        for lchild in leftovers:
            found = matches[lchild.path]
            rivals = [p for p in matches if p != lchild.path and any(n in matches[p] for n in found)]
            if (len(found) > 1 or (found and rivals)) and self.collect_ambiguities:
                ambiguous[lchild.path] = [node.path for node in found]
                continue
            if len(found) > 1 or (found and rivals):
                names = ", ".join(format_nnx_path(node.path) for node in found)
                also = f" (also a fit for {', '.join(format_linen_path(None, r) for r in rivals)})" if rivals else ""
                raise AmbiguousMappingError(
                    f"Linen submodule {format_linen_path(None, lchild.path)} has no NNX submodule of its "
                    f"name and its weight shapes fit several: {names}{also}; say which with "
                    f"mapping={{'{format_linen_path(None, lchild.path)}': '<nnx path>', ...}}"
                )
            if found:
                self.map_node(lchild, found[0])
            else:
                unmatched.append(lchild)
        if ambiguous:
            self.result.ambiguities.append(Ambiguity(ambiguous))
        return unmatched


def _claimable_children(nnode: NNXNode):
    """Direct child modules, looking through list/dict containers to their elements."""
    for child in nnode.children.values():
        if isinstance(child.module, (nnx.List, nnx.Dict)):
            yield from _claimable_children(child)
        else:
            yield child


def _nnx_signature(node: NNXNode) -> Counter:
    return Counter(
        (kind_of_variable(variable), _shape(variable_value(variable)))
        for _, variable in node.all_variables()
    )


def _linen_signature(node: LinenNode) -> Counter:
    return Counter((kind_of_collection(c), _shape(value)) for c, _, value in node.all_leaves())
