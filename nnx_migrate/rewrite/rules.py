"""The Linen->NNX API map, read from the `rules/*.toml` data files shipped as
`nnx_migrate._rules`. Pure data access: no jax or flax import."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class LayerRule:
    """How one Linen layer becomes its NNX counterpart (see rules/linen_layers.toml)."""

    linen: str  # name in flax.linen, e.g. "Dense"
    nnx: str  # qualified NNX name, e.g. "flax.nnx.Linear"
    linen_args: tuple[str, ...]
    rename: dict[str, str] = field(default_factory=dict)
    in_size: str = ""
    out_size: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    unsupported: tuple[str, ...] = ()
    call_rename: dict[str, str] = field(default_factory=dict)
    call_unsupported: tuple[str, ...] = ()
    input_arg: int = 0
    out_default: str = ""
    call_time: tuple[str, ...] = ()  # constructor arguments NNX also takes at call time
    call_keywords: tuple[str, ...] = ()  # Linen positional call parameters NNX takes by keyword
    initialize_carry: bool = False  # a recurrent cell: initialize_carry(rng, shape) -> (shape, rngs)
    cell_arg: str = ""  # the argument holding the cell a recurrent layer runs (nn.RNN)
    checked: tuple[str, ...] = ()  # Linen-only arguments whose values recurrent.py checks

    @property
    def nnx_name(self) -> str:
        return self.nnx.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Rules:
    layers: dict[str, LayerRule]  # keyed by qualified Linen name "flax.linen.Dense"
    renames: dict[str, str]  # qualified Linen name -> qualified NNX name
    collections: dict[str, str]  # collection -> qualified NNX Variable type
    keep_last_dim: frozenset[str]
    keep_last_dim_methods: frozenset[str]
    helpers: dict[str, str] = field(default_factory=dict)  # qualified Linen name -> helper written into the file
    unconverted: dict[str, str] = field(default_factory=dict)  # qualified Linen name -> why it is left
    # qualified Linen name -> (qualified NNX name, keyword -> source appended to each call,
    # keywords that keep the call Linen)
    call_renames: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = field(default_factory=dict)
    # qualified Linen name (`*args`) -> qualified NNX name (the same arguments as one tuple)
    packed_calls: dict[str, str] = field(default_factory=dict)


def _load(name: str) -> dict:
    # In a source checkout the rules/ folder beside the imported package is the one that
    # matches this code (an editable install elsewhere may map nnx_migrate._rules to
    # another checkout); an installed wheel has only the package resources.
    beside = Path(__file__).resolve().parents[2] / "rules" / name
    if beside.is_file():
        return tomllib.loads(beside.read_text(encoding="utf-8"))
    return tomllib.loads(files("nnx_migrate._rules").joinpath(name).read_text(encoding="utf-8"))


@functools.cache
def load_rules() -> Rules:
    layers = {}
    for linen_name, entry in _load("linen_layers.toml").items():
        layers[f"flax.linen.{linen_name}"] = LayerRule(
            linen=linen_name,
            nnx=entry["nnx"],
            linen_args=tuple(entry["linen_args"]),
            rename=dict(entry.get("rename", {})),
            in_size=entry.get("in_size", ""),
            out_size=entry.get("out_size", ""),
            defaults=dict(entry.get("defaults", {})),
            unsupported=tuple(entry.get("unsupported", ())),
            call_rename=dict(entry.get("call_rename", {})),
            call_unsupported=tuple(entry.get("call_unsupported", ())),
            input_arg=int(entry.get("input_arg", 0)),
            out_default=entry.get("out_default", ""),
            call_time=tuple(entry.get("call_time", ())),
            call_keywords=tuple(entry.get("call_keywords", ())),
            initialize_carry=bool(entry.get("initialize_carry", False)),
            cell_arg=entry.get("cell_arg", ""),
            checked=tuple(entry.get("checked", ())),
        )
    functions = _load("linen_functions.toml")
    call_renames = functions.get("call_renames", {})
    shapes = _load("shapes.toml")["keep_last_dim"]
    return Rules(
        layers=layers,
        renames=dict(functions["renames"]),
        collections=dict(functions["collections"]),
        keep_last_dim=frozenset(shapes["functions"]),
        keep_last_dim_methods=frozenset(shapes.get("methods", ())),
        helpers=dict(functions.get("helpers", {})),
        # a call-renamed name that is not called stays Linen, for the reason its entry gives
        unconverted={
            **functions.get("unconverted", {}),
            **{name: entry["why"] for name, entry in call_renames.items()},
            **{name: f"converted only where it is called (-> {nnx[len('flax.'):]}((...))); a bare reference is left for a person" for name, nnx in functions.get("packed_calls", {}).items()},
        },
        packed_calls=dict(functions.get("packed_calls", {})),
        call_renames={name: (entry["nnx"], dict(entry.get("add", {})), tuple(entry.get("unsupported", ()))) for name, entry in call_renames.items()},
    )
