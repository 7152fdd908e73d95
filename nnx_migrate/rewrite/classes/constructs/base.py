"""The interface every construct of `constructs/` implements.

A construct is one Linen form the class conversion knows, in one module of this folder:
the registry (`constructs/__init__.py`) finds it by importing every module here, and the
catalogue (`docs/constructs.md`) is its module docstring. The docstring has the sections
What, Why, Before, After and Reported.

`ModuleTransform` is the form of a Linen transform of a module class built and called as a
submodule (`nn.remat(Block)(...)(x)`, `nn.scan(Block, ...)(...)(carry, xs)`) or applied to
a method as its decorator. The class conversion asks each one, in this order:
- `matches(imports, transform)`: is this call (`nn.remat(Block)`) this construct's form;
- `wrapped_class(transform)`: the module class it transforms (the submodule's class);
- `analyse(conv, sub, transform, walker)`: its options, onto `sub.transform_options`
  (problems onto `sub.problems`: each becomes a TODO line);
- `init_source(sub, built)`: what `__init__` builds, given the plain construction;
- `call_source(rewriter, original, updated, sub)`: the NNX call site, or None to leave the
  call to the generic rewrite;
- `analyse_method(conv, method)` / `rewrite_method(...)`: the decorator form on a method.
The output size of a transformed submodule is its class's, unless `out_size` says otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from nnx_migrate.rewrite.sizes import scalar

if TYPE_CHECKING:
    from nnx_migrate.rewrite.classes.converter import ClassConverter
    from nnx_migrate.rewrite.classes.generate.rewriters import MethodRewriter
    from nnx_migrate.rewrite.classes.model import Sub
    from nnx_migrate.rewrite.classes.walker import BodyWalker
    from nnx_migrate.rewrite.names import ImportMap


class ModuleTransform:
    """A Linen transform of a module class (see the module docstring)."""

    title: ClassVar[str]  # the catalogue's heading
    linen: ClassVar[frozenset[str]]  # qualified names of the Linen transform
    prefix: ClassVar[str]  # Linen names the transformed class `<prefix><Class>` (`CheckpointDense_0`)
    # a compact local bound to the transformed class (`ScanBlock = nn.scan(Block, ...)`) is
    # followed to its constructions, and the binding dropped (built in `__init__`)
    bindable: ClassVar[bool] = False

    def matches(self, imports: ImportMap, transform: cst.Call) -> bool:
        """Whether `transform` (whose function is one of `linen`) is this construct's form."""
        return True

    def prefix_of(self, qualified: str | None) -> str:
        """The prefix of the class the Linen transform named `qualified` makes."""
        return self.prefix

    def wrapped_class(self, transform: cst.Call) -> cst.BaseExpression | None:
        """The class `transform` wraps (None: a form the tool does not read)."""
        args = transform.args
        return args[0].value if args and args[0].keyword is None else None

    def analyse(self, conv: ClassConverter, sub: Sub, transform: cst.Call, walker: BodyWalker) -> None:
        """Reads the transform's options onto `sub` (problems onto `sub.problems`)."""

    def init_source(self, sub: Sub, built: str) -> str:
        """What `__init__` builds for `sub`: `built` is the plain construction."""
        return built

    def call_source(self, rewriter: MethodRewriter, original: cst.Call, updated: cst.Call, sub: Sub) -> cst.BaseExpression | None:
        """The NNX form of a call of the transformed submodule (None: the generic rewrite)."""
        return None

    def analyse_method(self, conv: ClassConverter, method: cst.FunctionDef) -> None:
        """The decorator form: record it with `conv.method_transforms` (or report it)."""

    def rewrite_method(self, conv: ClassConverter, decorator: cst.Decorator, options, new: cst.FunctionDef, config) -> list[cst.FunctionDef]:
        """The rewritten decorated method (its decorator removed) -> the NNX methods."""
        return [new]


class SubmoduleConstruct:
    """A kind of submodule the walk finds by its Linen class (`nn.Dense(4)`,
    `nn.Sequential([...])`, a module class of the run): for a submodule of its `kind` the
    class conversion asks it
    - `matches(conv, func, qual)`: whether the class `func` (qualified `qual`) is its own;
    - `analyse(conv, sub, ctor, walker)`: reads the construction onto `sub` (rule, child,
      members, problems) and returns the Linen class name (Linen's automatic names use it);
    - `in_sizes(conv, sub, call, walker, positional)`: the input sizes at a call (members'
      too), as `{__init__ size parameter: size}`; `needed_sizes(sub)`: those it must have;
    - `out_size(conv, sub, call, walker, in_size)`: the output size after a call (or, with
      no call, for that input size);
    - `init_source(conv, sub)`: what `__init__` builds (or, for one `built_at_call`, what
      the call site builds);
    - `built_at_call(conv, sub, walker)`: whether a compact construction is built where it
      is called instead of held in an attribute.
    Constructs are asked in `order`: the first that matches a class takes it."""

    title: ClassVar[str]
    linen: ClassVar[frozenset[str]]  # the Linen classes it takes (empty: `matches` decides)
    kind: ClassVar[str]  # the model's SubKind
    order: ClassVar[int] = 50
    checks_members: ClassVar[bool] = False  # its members' sizes are checked with it, wherever it is built

    def matches(self, conv: ClassConverter, func: cst.BaseExpression, qual: str | None) -> bool:
        return qual in self.linen

    def analyse(self, conv: ClassConverter, sub: Sub, ctor: cst.Call, walker: BodyWalker) -> str:
        raise NotImplementedError

    def needed_sizes(self, sub: Sub) -> list[str]:
        return []

    def in_sizes(self, conv: ClassConverter, sub: Sub, call: cst.Call, walker: BodyWalker, positional: list[cst.BaseExpression]) -> dict:
        return {}

    def out_size(self, conv: ClassConverter, sub: Sub, call: cst.Call | None, walker: BodyWalker, in_size):
        return None

    def init_source(self, conv: ClassConverter, sub: Sub) -> str:
        raise NotImplementedError

    def built_at_call(self, conv: ClassConverter, sub: Sub, walker: BodyWalker) -> bool:
        """A container whose members Linen names as the class's own (a compact body's
        `nn.Sequential`, `nn.RNN`) holds no state of its own: held in an attribute too, the
        class would hold each member twice, which NNX's tree mode rejects (no shared
        references, FLIP 5310). Such a container is built at its call site from the member
        attributes."""
        return False

    @staticmethod
    def first_input_size(call: cst.Call | None, walker: BodyWalker, in_size):
        """The size of the call's first positional argument (`in_size` without a call or
        without positional arguments)."""
        if call is not None:
            positional = [a.value for a in call.args if a.keyword is None and not a.star]
            if positional:
                return scalar(walker.size_of(positional[0]))
        return in_size


class SelfCallConstruct:
    """A call of one of Linen's own Module methods (`self.param(...)`, `self.sow(...)`,
    `self.make_rng(...)`): for a call `self.<m>(...)` with `m` in `methods` the class
    conversion asks it
    - `walk(conv, walker, node, method)`: reads the call (True: the walk goes no further
      into it);
    - `finish(conv)`: after the whole class is walked;
    - `init_source(conv)`: statements `__init__` needs first (after the fields);
    - `call_source(rewriter, original, updated, method)`: the NNX call (None: as it is).
    Constructs are asked in `order`."""

    title: ClassVar[str]
    methods: ClassVar[frozenset[str]]
    order: ClassVar[int] = 50

    def walk(self, conv: ClassConverter, walker: BodyWalker, node: cst.Call, method: str) -> bool:
        return False

    def finish(self, conv: ClassConverter) -> None:
        """After the walk of every method."""

    def init_source(self, conv: ClassConverter) -> list[str]:
        return []

    def call_source(self, rewriter: MethodRewriter, original: cst.Call, updated: cst.Call, method: str) -> cst.BaseExpression | None:
        return None
