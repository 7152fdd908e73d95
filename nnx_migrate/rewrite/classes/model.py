"""The data the analysis of one Linen class produces and the generation reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import libcst as cst

from nnx_migrate.rewrite.report import TodoSite
from nnx_migrate.rewrite.rules import LayerRule

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.constructs.base import ModuleTransform, SubmoduleConstruct
    from nnx_migrate.rewrite.classes.walker import BodyWalker

# The attribute `nnx.Module.train()` / `.eval()` set to False / True on every module that
# has it (nnx.BatchNorm's own); a converted class that asked Linen whether its batch
# statistics were mutable (`self.is_mutable_collection('batch_stats')`) keeps its mode in it.
MODE_ATTRIBUTE = "use_running_average"

# A placeholder for the variable `__init__` carries a setup list element's input size in:
# the next element's size is written in it where it depends on it (a residual block keeps
# its input's size; BodyWalker._next_element_size).
CARRIED = "__nnx_migrate_carried__"


class SubKind(StrEnum):
    """What a submodule site is."""

    LAYER = "layer"  # a Linen layer rules/*.toml maps to an NNX class
    CHILD = "local"  # a module class converted in this run (this file or another)
    SEQUENTIAL = "sequential"  # nn.Sequential of layers and functions
    UNKNOWN_LINEN = "unknown-linen"  # a Linen layer no rule converts (reported)
    FOREIGN = "foreign"  # a Linen class of another package, kept and wrapped (nnx.bridge.ToNNX)
    CHAIN = "chain"  # any element of a setup list a method runs as a chain
    EITHER = "either"  # one of two submodules, picked by a test on fields
    FIELD = "field"  # a module the caller passed in a field


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
    # the Linen classes of other packages it holds (itself or through a child), wrapped by
    # nnx.bridge.ToNNX: their variables appear when `nnx.bridge.lazy_init(model, x)` runs it
    foreign: tuple[str, ...] = ()


@dataclass
class Sub:
    """A submodule: one construction site."""

    attr: str | None
    kind: SubKind
    ctor: cst.Call
    line: int
    origin: str  # "setup" | "compact"
    rule: LayerRule | None = None
    child: ClassSummary | None = None
    in_sizes: dict[str, str | None] | None = None  # set at the first call
    guards: list[str] = field(default_factory=list)
    hoist: list[tuple[str, str]] = field(default_factory=list)  # static locals the args need
    arg_code: dict[str, str] = field(default_factory=dict)  # linen kw -> __init__ source
    elements: list[Sub] = field(default_factory=list)  # nn.Sequential members
    call_kwargs: dict[str, str] = field(default_factory=dict)  # moved to the call site
    loop: LoopContext | None = None  # built in a loop: one element of an nnx.List
    sizes_loop: LoopContext | None = None  # built in a loop, left a plain attribute (TODO): the loop's carried sizes still replayed
    carried: dict[str, tuple[str, str]] = field(default_factory=dict)  # size before / along the loop
    # input sizes at its call in terms of the loop's carried size variables (`x_size`),
    # from the loop's symbolic pass (BodyWalker._symbolic_pass)
    symbolic_in_sizes: dict[str, str | None] | None = None
    # built through a Linen transform of its class (constructs/: nn.remat, nn.scan): the
    # construct, and the options it read
    transform: ModuleTransform | None = None
    transform_options: object = None
    construct: SubmoduleConstruct | None = None  # the construct of its kind (constructs/), if one
    linen_class: str = ""  # the Linen class it builds (without a transform's prefix)
    class_source: str | None = None  # a child class as the file names it (`blocks.Block`, an import alias)
    auto_class: str | None = None  # Linen auto-named (`Dense_<n>`): the class part
    list_index: str | None = None  # element of an nnx.List named after the class: its index
    comp_attr: str | None = None  # element of a setup list comprehension `self.<attr> = [...]`
    chain: AppendChain | None = None  # kind "chain": any element of a setup list run as a chain
    args_unsure: bool = False  # an argument's __init__ source could not be written
    alternatives: list[Sub] = field(default_factory=list)  # setup binds the same attribute under other conditions
    factory: Factory | None = None  # built through a layer factory (field or local partial)
    conditional: bool = False  # auto-named in a compact body under a condition
    # a layer bound to a local of a compact body, built where no condition holds but first
    # called under conditions on fields: Linen makes its parameters only when that call
    # runs, so __init__ builds it under those conditions (None otherwise)
    called_guards: list[str] | None = None
    called_guards_built: list[str] = field(default_factory=list)  # the guards where it was built
    either: tuple[str, Sub, Sub] | None = None  # kind "either": (field condition, if-branch, else-branch)
    field_name: str | None = None  # kind "field": a module held in a field
    field_sizes: dict[str, str | None] = field(default_factory=dict)  # child's field-module size parameter -> size
    foreign_carry: bool = False  # a recurrent cell called with a carry its `features` did not make
    problems: list[str] = field(default_factory=list)
    order: int = -1  # creation order among the class's submodules and variables (-1: not a construction)
    anonymous_name: str | None = None  # an unnamed element's name in the size parameters it needs
    # a compact container (nn.Sequential, nn.RNN) built where it is called, from members held
    # as the class's own attributes (SubmoduleConstruct.built_at_call): no attribute of its own
    at_call: bool = False

    @property
    def members(self) -> list[Sub]:
        """The layers among an nn.Sequential's elements (the rest are functions)."""
        return [m for m in self.elements if isinstance(m, Sub)]


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
    child: ClassSummary | None = None  # a module class converted in this run


@dataclass
class AppendChain:
    """A list built in setup by appending submodules (`blocks = []`, `blocks.append(b)` in
    loops too, `self.blocks = blocks`) that a method runs as a chain (`for block in
    self.blocks: x = block(x)`): each element's input size is the previous element's
    output size. `__init__` (the setup body) carries that size in a variable, set after
    `blocks = []` and updated after each append."""

    local: str
    init_stmt: cst.CSTNode  # the `<local> = []` statement
    appends: list[tuple[Sub, cst.CSTNode]] = field(default_factory=list)  # element, append statement
    attr: str | None = None
    var: str = ""
    first: str | None = None  # the size the chain starts from, in __init__ terms
    used: bool = False
    problem: str | None = None
    outs: dict[int, str] = field(default_factory=dict)  # append statement -> size after it

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
    order: int = -1  # creation order among the class's submodules and variables


@dataclass(eq=False)
class ClassAnalysis:
    """What the walk of one class finds: its submodules and variables, and the sites the
    generation changes. Tables keyed by a node hold the node itself (LibCST nodes hash and
    compare by identity)."""

    subs: list[Sub] = field(default_factory=list)
    sub_by_node: dict[cst.CSTNode, Sub] = field(default_factory=dict)  # construction call -> submodule
    subs_by_attr: dict[str, Sub] = field(default_factory=dict)
    vars: list[VarDef] = field(default_factory=list)
    var_by_node: dict[cst.CSTNode, VarDef] = field(default_factory=dict)  # self.param/variable call -> site
    var_attrs: dict[str, VarDef] = field(default_factory=dict)
    auto_counts: dict[str, int] = field(default_factory=dict)  # Linen class -> unnamed ones built so far
    created: int = 0  # submodules and variables created so far (their `order`)
    todos: list[TodoSite] = field(default_factory=list)
    needs_rngs_attr: bool = False
    # `self.is_mutable_collection('batch_stats')` calls: the class gets a mode attribute
    mode_calls: set[cst.CSTNode] = field(default_factory=set)
    nested_defs: list = field(default_factory=list)
    extra_size_params: list[str] = field(default_factory=list)  # unknown sizes turned into parameters
    setup_walker: BodyWalker | None = None
    call_walker: BodyWalker | None = None
    return_size: str | None = None
    list_attrs: set[str] = field(default_factory=set)
    dict_attrs: set[str] = field(default_factory=set)  # setup attributes holding a dict of submodules
    comp_plans: dict[str, dict] = field(default_factory=dict)  # setup list comprehensions of submodules
    anonymous_names: list[str] = field(default_factory=list)  # Sub.anonymous_name of each unnamed element so far
    todo_nodes: dict[cst.CSTNode, tuple[cst.CSTNode, list[str]]] = field(default_factory=dict)  # node -> why, for markers
    # compact locals bound to a transformed class (`ScanBlock = nn.scan(Block, ...)`): the
    # construct and the transform call
    transform_bindings: dict[str, tuple[ModuleTransform, cst.Call]] = field(default_factory=dict)
    # statements MethodRewriter drops: those bindings, partials used only to build
    dropped_statements: set[cst.CSTNode] = field(default_factory=set)
    # methods a construct transforms by a decorator (`@partial(nn.scan, ...)`): the
    # construct, the decorator, the options it read
    method_transforms: dict[str, tuple[ModuleTransform, cst.Decorator, object]] = field(default_factory=dict)
    carry_inits: dict[cst.CSTNode, str] = field(default_factory=dict)  # `Cell(parent=None).initialize_carry(...)` -> NNX source
    carry_swaps: set[cst.CSTNode] = field(default_factory=set)  # `cell.initialize_carry(rng, shape)` of a converted cell
    # `name(...)` -> (the submodule the local `name` holds, whether the call-time arguments
    # Linen gave it where it was built still mean the same at this call)
    local_calls: dict[cst.CSTNode, tuple[Sub, bool]] = field(default_factory=dict)
    method_binding_counts: dict[cst.CSTNode, dict[str, int]] = field(default_factory=dict)
    sow_names: set[str] = field(default_factory=set)  # NNX keeps each sown value in an attribute of its name
    has_variable_calls: list[cst.Call] = field(default_factory=list)  # `self.has_variable('cache', 'name')`
    has_variable_attrs: dict[cst.CSTNode, str] = field(default_factory=dict)  # those with an NNX attribute: its name
    method_returns: dict[str, object] = field(default_factory=dict)
    call_returns: dict[cst.CSTNode, object] = field(default_factory=dict)  # call of a helper method -> size it returns there
    walking: set[str] = field(default_factory=set)
    walked: set[str] = field(default_factory=set)
    setup_var_attrs: dict[str, VarDef] = field(default_factory=dict)
    # setup locals bound once, at the top level: name -> source (for output sizes)
    setup_local_sources: dict[str, str] = field(default_factory=dict)
    setup_bound: dict[str, int] = field(default_factory=dict)  # setup's binding counts
    append_chains: dict[str, AppendChain] = field(default_factory=dict)  # setup local list -> chain
    partials: dict[str, cst.Call] = field(default_factory=dict)  # compact locals bound to functools.partial(...)
    field_out_params: dict[str, str] = field(default_factory=dict)  # field holding a called module -> its output-size parameter
    partial_statements: dict[str, cst.CSTNode] = field(default_factory=dict)  # their binding statements
    factory_fields: dict[str, str] = field(default_factory=dict)  # factory field -> its default as NNX source
    # factory fields without a default whose layers take call-time arguments from the
    # caller's call: field -> {Linen keyword -> `__call__` parameter}
    call_time_params: dict[str, dict[str, str]] = field(default_factory=dict)
    multi_class_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # class field bound to several classes
    loop_statics: set[tuple[str, str]] = field(default_factory=set)  # (local, source) recomputed inside a replayed loop
    partial_passes: dict[str, int] = field(default_factory=dict)  # local partial -> times passed to a child as an NNX partial
    chain_by_attr: dict[str, AppendChain] = field(default_factory=dict)
    # `self.query = nn.Dense(..., name='to_q')` in setup: (sub, attribute, name, name node, in a loop)
    setup_names: list[tuple[Sub, str, str | None, cst.BaseExpression, bool]] = field(default_factory=list)
    # `self.w = self.param('kernel', ...)`: (Linen name, attribute, node)
    setup_var_names: list[tuple[str, str, cst.CSTNode]] = field(default_factory=list)
    attr_renames: dict[str, str] = field(default_factory=dict)  # setup attribute -> its Linen name, the NNX attribute
    leftovers_before: int = 0  # the file's Linen leftovers found before this class

    def next_order(self) -> int:
        self.created += 1
        return self.created - 1
