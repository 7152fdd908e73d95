"""Recording every submodule's output on both sides, to find where two models part ways.

Linen records them itself (`capture_intermediates=True` sows each `__call__` output into
`intermediates`). NNX has no such switch, so while the NNX model runs, the `__call__` of
each submodule class is wrapped to note (path, output) in call order. The wrapping lasts
only for that call and is undone afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from flax import nnx

from nnx_migrate.equivalence.nnx_tree import NNXPath

LinenPath = tuple[str, ...]


@contextlib.contextmanager
def record_nnx_calls(root: nnx.Module) -> Iterator[list[tuple[NNXPath, Any]]]:
    """Yields a list that fills with (submodule path, output), in the order calls finish.

    A module called twice appears twice. The root module itself is not recorded (its
    output is the model's output, compared on its own).
    """
    paths = {
        id(node): tuple(path)
        for path, node in nnx.graph.iter_graph(root)
        if isinstance(node, nnx.Module) and path
    }
    objects = [node for path, node in nnx.graph.iter_graph(root) if isinstance(node, nnx.Module) and path]
    records: list[tuple[NNXPath, Any]] = []
    running: set[int] = set()
    owners = {}
    for node in objects:
        owner = _call_owner(type(node))
        if owner is not None:
            owners[owner] = owner.__dict__["__call__"]

    def wrap(original):
        def recording_call(self, *args, **kwargs):
            key = id(self)
            if key in running or key not in paths:  # super().__call__ chains, or a stranger
                return original(self, *args, **kwargs)
            running.add(key)
            try:
                output = original(self, *args, **kwargs)
            finally:
                running.discard(key)
            records.append((paths[key], output))
            return output

        return recording_call

    for owner, original in owners.items():
        owner.__call__ = wrap(original)
    try:
        yield records
    finally:
        for owner, original in owners.items():
            owner.__call__ = original


def _call_owner(cls: type) -> type | None:
    for klass in cls.__mro__:
        if "__call__" in klass.__dict__ and klass not in (nnx.Module, object):
            return klass
    return None


def linen_call_records(intermediates: Mapping[str, Any]) -> dict[LinenPath, tuple[Any, ...]]:
    """{scope path: (output of each call, ...)} from Linen's captured `intermediates`."""
    found: dict[LinenPath, tuple[Any, ...]] = {}

    def walk(node: Mapping[str, Any], path: LinenPath) -> None:
        for name, value in node.items():
            if name == "__call__":
                found[path] = tuple(value)
            elif isinstance(value, Mapping):
                walk(value, path + (name,))

    walk(intermediates, ())
    return found
