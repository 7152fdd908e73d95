"""The data the analysis of one Linen class produces and the generation reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.rules import LayerRule



@dataclass
class Field:
    name: str
    annotation: str
    default_code: str | None  # the default as source; None when required
    comments: tuple = ()  # the field line's own comments (leading lines, trailing comment)
    factory: str | None = None  # dataclasses.field(default_factory=...): called when not given
    problem: str | None = None  # a field declaration the tool does not convert

    @property
    def has_default(self) -> bool:
        return self.default_code is not None


@dataclass
class ClassSummary:
    """What other classes in the file need to know about a converted class."""

    name: str
    fields: list[Field]
    size_params: list[str]  # input-size parameters of __init__, in order
    size_param_args: dict[str, int]  # size parameter -> index of the __call__ argument
    out_size: str | None  # in the class's own __init__ scope
    has_todos: bool = False
    # input sizes of `__call__` arguments that default to None: `__init__` takes None
    # (the default) when the argument is not given
    optional_size_params: tuple[str, ...] = ()
    # fields holding a module the class calls -> the constructor parameter (default None)
    # that gives that module's output size
    field_out_params: dict[str, str] = field(default_factory=dict)
    size_param_names: dict[str, str] = field(default_factory=dict)  # size parameter -> __call__ argument
    # the class (or a submodule) tells training from evaluation by its mode attribute
    # (Linen's `is_mutable_collection('batch_stats')`), not by a call argument
    decides_mode: bool = False
    # other methods' return sizes in the class's own terms (`initial_state` returning
    # `jnp.zeros((batch, self.hidden))`): a parent's `cell.initial_state(n)` has that size
    method_out_sizes: dict[str, object] = field(default_factory=dict)
    # factory fields without a default whose layers take call-time arguments the parent's
    # partial set from its call arguments: field -> {Linen keyword -> `__call__` parameter}
    call_time_params: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Sub:
    """A submodule: one construction site."""

    attr: str | None
    kind: str  # "layer" | "local" | "sequential"
    ctor: cst.Call
    line: int
    origin: str  # "setup" | "compact"
    rule: LayerRule | None = None
    child: ClassSummary | None = None
    in_sizes: dict[str, str | None] | None = None  # set at the first call
    guards: list[str] = field(default_factory=list)
    hoist: list[tuple[str, str]] = field(default_factory=list)  # static locals the args need
    arg_code: dict[str, str] = field(default_factory=dict)  # linen kw -> __init__ source
    elements: list["Sub"] = field(default_factory=list)  # nn.Sequential members
    call_kwargs: dict[str, str] = field(default_factory=dict)  # moved to the call site
    loop: "LoopContext | None" = None  # built in a loop: one element of an nnx.List
    sizes_loop: "LoopContext | None" = None  # built in a loop, left a plain attribute (TODO): the loop's carried sizes still replayed
    carried: dict[str, tuple[str, str]] = field(default_factory=dict)  # size before / along the loop
    # input sizes at its call in terms of the loop's carried size variables (`x_size`),
    # from the loop's symbolic pass (BodyWalker._symbolic_pass)
    symbolic_in_sizes: dict[str, str | None] | None = None
    remat: bool = False  # built through nn.remat / nn.checkpoint: called through nnx.remat
    scan: dict | None = None  # scan over layers: length (source), in_axes, out_axes (ScanAxes); over time: {"time": TimeScan}
    auto_class: str | None = None  # Linen auto-named (`Dense_<n>`): the class part
    list_index: str | None = None  # element of an nnx.List named after the class: its index
    comp_attr: str | None = None  # element of a setup list comprehension `self.<attr> = [...]`
    chain: "AppendChain | None" = None  # kind "chain": any element of a setup list run as a chain
    args_unsure: bool = False  # an argument's __init__ source could not be written
    alternatives: list["Sub"] = field(default_factory=list)  # setup binds the same attribute under other conditions
    factory: Factory | None = None  # built through a layer factory (field or local partial)
    conditional: bool = False  # auto-named in a compact body under a condition
    either: tuple[str, "Sub", "Sub"] | None = None  # kind "either": (field condition, if-branch, else-branch)
    field_name: str | None = None  # kind "field": a module held in a field
    field_sizes: dict[str, str | None] = field(default_factory=dict)  # child's field-module size parameter -> size
    foreign_carry: bool = False  # a recurrent cell called with a carry its `features` did not make

    @property
    def members(self) -> list["Sub"]:
        """The layers among an nn.Sequential's elements (the rest are functions)."""
        return [m for m in self.elements if isinstance(m, Sub)]
    problems: list[str] = field(default_factory=list)


@dataclass
class Factory:
    """A layer built through a factory: a field whose default is a Linen layer class or a
    `functools.partial` of one (`conv: ModuleDef = nn.Conv`), or a local `partial` of such
    a class or field in the compact body. `callee` builds it in `__init__`: the field
    itself (whatever class the caller gave) or the NNX class."""

    callee: str
    rule: LayerRule | None  # a Linen layer, or
    args: list[cst.Arg]  # the local partial's arguments, merged before the call's
    preset: dict[str, str]  # the field default's keywords (for sizes only: not repeated)
    field: str | None = None
    child: "ClassSummary | None" = None  # a module class converted in this run


@dataclass
class AppendChain:
    """A list built in setup by appending submodules (`blocks = []`, `blocks.append(b)` in
    loops too, `self.blocks = blocks`) that a method runs as a chain (`for block in
    self.blocks: x = block(x)`): each element's input size is the previous element's
    output size. `__init__` (the setup body) carries that size in a variable, set after
    `blocks = []` and updated after each append."""

    local: str
    init_stmt: cst.CSTNode  # the `<local> = []` statement
    appends: list[tuple["Sub", cst.CSTNode]] = field(default_factory=list)  # element, append statement
    attr: str | None = None
    var: str = ""
    first: str | None = None  # the size the chain starts from, in __init__ terms
    used: bool = False
    problem: str | None = None
    outs: dict[int, str] = field(default_factory=dict)  # id(append statement) -> size after it

    @property
    def ok(self) -> bool:
        return self.used and self.problem is None


@dataclass
class LoopContext:
    """A `for` loop of a compact body that builds submodules: `__init__` replays its header
    and appends to an `nnx.List` per construction site."""

    node: cst.For
    index_var: str | None  # the loop variable counting 0, 1, ... (range / enumerate)
    header: str  # `for <target> in <iter>:` as __init__ source
    line: int
    hoist: list[tuple[str, str]] = field(default_factory=list)
    iter_src: str = ""  # the iterable as __init__ source
    counter: str | None = None  # the counter __call__ gets (enumerate) when it has none
    carried_vars: dict = field(default_factory=dict)  # array local -> (before, end of body, variable)
    # the ends are written in the carried variables themselves (`x_size = (w) if (i == 0)
    # else (x_size)`): __init__ updates them together, at the end of each iteration
    symbolic: bool = False


@dataclass
class VarDef:
    """A `self.param` / `self.variable` site."""

    attr: str
    collection: str
    init_code: str  # NNX construction source
    line: int
    guards: list[str] = field(default_factory=list)
    hoist: list[tuple[str, str]] = field(default_factory=list)
