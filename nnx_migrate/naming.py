"""How Linen's submodule names become NNX attribute names: one convention, two users.

`nnx-migrate rewrite` names the attributes of the NNX classes it writes with
`nnx_attribute_name`, and the equivalence harness maps a Linen variable path onto that
NNX class with `nnx_path_candidates`, so weights transfer exactly and automatically.
Pure Python: no jax or flax import (the rewrite path must not pay for them).

The convention:
- a name the user chose (`name='encoder'`, a `setup` attribute `self.encoder = ...`) is
  kept as it is: `encoder` -> `encoder`;
- a name that is no identifier (`name='0'`, `name='conv-1'`) cannot be an attribute:
  every other character becomes `_`, and a leading digit gets a `_` before it (`_0`,
  `conv_1`);
- a name Linen made up for an unnamed compact submodule, `ClassName_N`
  (`Dense_0`, `MultiHeadDotProductAttention_1`), becomes snake_case:
  `dense_0`, `multi_head_dot_product_attention_1`;
- an element of a list assigned in `setup` (`self.layers = [...]`), which Linen calls
  `layers_3`, is element 3 of the `nnx.List` attribute `layers`: NNX path `('layers', 3)`;
  so is a layer named in a loop `f'layers_{i}'` or `f'layers{i}'` (Linen's `layers3`);
- unnamed compact submodules of one class built in a loop (Linen's `Dense_0`, `Dense_1`,
  ... in creation order) are the elements of one `nnx.List` named after the class in
  snake_case, `dense` (or `dense_layers` where the class already has a `dense`): Linen's
  `Dense_3` is `('dense', 3)`;
- an entry of a dict assigned in `setup` (`self.heads = {'cls': ...}`), which Linen calls
  `heads_cls`, is key 'cls' of the `nnx.Dict` attribute `heads`: `('heads', 'cls')`;
- a Linen name that is a Python keyword cannot be an attribute: NNX (PEP 8) appends an
  underscore, as flax's own `nnx.LSTMCell` does for Linen's forget gate `if` -> `if_`.
"""

from __future__ import annotations

import keyword
import re

# Linen's automatic names: the submodule's class name, an underscore and a counter.
_AUTO_NAME = re.compile(r"^(?P<cls>[A-Z][A-Za-z0-9]*)_(?P<index>\d+)$")
# `layers_3` (setup lists, f'blocks_{i}'), else `conv3` (f'conv{i}' in a loop)
_LIST_ELEMENT = re.compile(r"^(?P<base>.+)_(?P<index>\d+)$|^(?P<bare>.*[^\d_])(?P<bare_index>\d+)$")
_NOT_IDENTIFIER = re.compile(r"\W")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """`MultiHeadDotProductAttention` -> `multi_head_dot_product_attention`, `LSTMCell` -> `lstm_cell`."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def is_linen_auto_name(name: str) -> bool:
    return _AUTO_NAME.match(name) is not None


def nnx_attribute_name(linen_name: str) -> str:
    """The NNX attribute the rewrite uses for a Linen submodule called `linen_name`."""
    match = _AUTO_NAME.match(linen_name)
    if match is None:
        if not linen_name.isidentifier():
            name = _NOT_IDENTIFIER.sub("_", linen_name)
            return name if name.isidentifier() else f"_{name}"
        return f"{linen_name}_" if keyword.iskeyword(linen_name) else linen_name
    return f"{snake_case(match['cls'])}_{match['index']}"


def auto_list_names(linen_class: str) -> tuple[str, str]:
    """The attribute of the nnx.List holding a class's unnamed submodules built in a loop
    (`Dense` -> `dense`), and the one taken when the class already has that name."""
    base = snake_case(linen_class)
    return base, f"{base}_layers"


def nnx_path_candidates(linen_name: str) -> list[tuple[str | int, ...]]:
    """Every NNX path (relative to the parent module) that may hold Linen's `linen_name`.

    In order of preference: the name itself, its converted form (snake_case, or a keyword
    with an underscore appended), and (for `base_N`) the
    N-th element of a list attribute `base`. The harness takes the candidates that exist on
    the NNX module and stops with an error naming them if more than one does.
    """
    candidates: list[tuple[str | int, ...]] = [(linen_name,)]
    converted = nnx_attribute_name(linen_name)
    if converted != linen_name:
        candidates.append((converted,))
    element = _LIST_ELEMENT.match(linen_name)
    if element is not None and element["base"] is not None:
        candidates.append((element["base"], int(element["index"])))
    elif element is not None:
        candidates.append((element["bare"], int(element["bare_index"])))
    auto = _AUTO_NAME.match(linen_name)
    if auto is not None:
        # an unnamed submodule built in a loop: an element of the class's nnx.List
        candidates += [(name, int(auto["index"])) for name in auto_list_names(auto["cls"])]
    # an entry of a dict assigned in setup (`self.heads = {'out_a': ...}`), which Linen
    # calls `heads_out_a`: key 'out_a' of the `nnx.Dict` attribute `heads` (or 'a' of
    # `heads_out`: the harness takes whichever exists)
    for i, char in enumerate(linen_name):
        if char == "_" and 0 < i < len(linen_name) - 1:
            entry = (linen_name[:i], linen_name[i + 1:])
            if (entry[0], int(entry[1]) if entry[1].isdigit() else entry[1]) not in candidates:
                candidates.append(entry)
    return candidates
