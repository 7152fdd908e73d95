"""The NNX side as a tree of modules and variables, addressed by paths like ('layers', 0).

Also the correspondence between Linen collections and NNX Variable types (the rewrite's
contract): `params` <-> `nnx.Param`, `batch_stats` <-> `nnx.BatchStat`, `cache` <->
`nnx.Cache`, `intermediates` <-> `nnx.Intermediate`, any other collection <-> some other
`nnx.Variable` subclass (its name is the rewrite's choice, so only "other" is checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flax import nnx

NNXPath = tuple[Any, ...]

_KNOWN_COLLECTIONS = {
    "params": nnx.Param,
    "batch_stats": nnx.BatchStat,
    "cache": nnx.Cache,
    "intermediates": nnx.Intermediate,
}


def format_nnx_path(path: NNXPath) -> str:
    """('layers', 0, 'kernel') -> 'layers[0].kernel'; the root module is '<root>'."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def parse_nnx_path(text: str | NNXPath) -> NNXPath:
    """'layers.0.kernel' or 'layers[0].kernel' -> ('layers', 0, 'kernel')."""
    if isinstance(text, tuple):
        return text
    parts: list[Any] = []
    for piece in text.replace("[", ".").replace("]", "").split("."):
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)


def is_rng_state(variable: nnx.Variable) -> bool:
    return isinstance(variable, nnx.RngState)


def kind_of_variable(variable: nnx.Variable) -> str:
    """The Linen collection a Variable corresponds to ('other' for custom types)."""
    for collection, variable_type in _KNOWN_COLLECTIONS.items():
        if isinstance(variable, variable_type):
            return collection
    return "other"


def kind_of_collection(collection: str) -> str:
    return collection if collection in _KNOWN_COLLECTIONS else "other"


def variable_value(variable: nnx.Variable) -> Any:
    return variable.get_value()


@dataclass
class NNXNode:
    """A module on the NNX side: its variables and its child modules, by attribute/index."""

    path: NNXPath
    module: nnx.Module
    variables: dict[Any, nnx.Variable] = field(default_factory=dict)
    children: dict[Any, NNXNode] = field(default_factory=dict)

    def walk(self) -> Iterator[NNXNode]:
        yield self
        for child in self.children.values():
            yield from child.walk()

    def resolve(self, relative: NNXPath) -> NNXNode | nnx.Variable | None:
        node: Any = self
        for part in relative:
            if not isinstance(node, NNXNode):
                return None
            if part in node.children:
                node = node.children[part]
            elif part in node.variables:
                node = node.variables[part]
            else:
                return None
        return node

    def all_variables(self) -> Iterator[tuple[NNXPath, nnx.Variable]]:
        for name, variable in self.variables.items():
            yield self.path + (name,), variable
        for child in self.children.values():
            yield from child.all_variables()


def build_nnx_tree(module: nnx.Module) -> NNXNode:
    """The module tree, keeping modules (including `nnx.List`/`nnx.Dict`) and their
    variables; RNG state is left out (it is not a weight and Linen has no counterpart)."""
    nodes: dict[NNXPath, NNXNode] = {}
    pending_variables: list[tuple[NNXPath, nnx.Variable]] = []
    dicts: list[NNXPath] = []
    for path, value in nnx.graph.iter_graph(module):
        path = tuple(path)
        if isinstance(value, nnx.Module):
            nodes[path] = NNXNode(path, value)
        elif isinstance(value, nnx.Variable) and not is_rng_state(value):
            pending_variables.append((path, value))
        elif type(value) is dict:
            dicts.append(path)
    # A Linen module kept as Linen inside nnx.bridge.ToNNX (one of another package) holds
    # its variables in plain dicts under Linen's names: those are its submodules here.
    for path in sorted(dicts, key=len):
        owner = next((nodes[path[:i]] for i in range(len(path) - 1, -1, -1) if path[:i] in nodes), None)
        if owner is not None and isinstance(owner.module, nnx.bridge.ToNNX):
            nodes[path] = NNXNode(path, owner.module)
    # iter_graph yields children before parents, so link once every node exists.
    for path in sorted(nodes, key=len):
        if path:
            parent = nodes.get(path[:-1])
            if parent is not None:
                parent.children[path[-1]] = nodes[path]
    for path, variable in pending_variables:
        parent = nodes.get(path[:-1])
        if parent is not None:
            parent.variables[path[-1]] = variable
    _link_shared(nodes)
    return nodes[()]


def _link_shared(nodes: dict[NNXPath, NNXNode]) -> None:
    """A module held by two attributes (`self.lstm_cell_0` and `self.encoder.cell`, as the
    rewrite writes for Linen's nn.RNN) is visited once by iter_graph, under one path; the
    other attribute refers to the same node, so either name finds it."""
    by_id = {id(node.module): node for node in nodes.values()}
    for node in list(nodes.values()):
        for name, value in vars(node.module).items():
            target = by_id.get(id(value)) if isinstance(value, nnx.Module) else None
            if target is None or name in node.children or target.path == node.path[: len(target.path)]:
                continue  # unknown, already linked, or an ancestor (no cycles)
            node.children[name] = target
