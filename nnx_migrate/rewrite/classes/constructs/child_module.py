"""A user module class converted in the same run, built as a submodule: `FeedForward(self.hidden, x.shape[-1])(y)`.

What: the child is built in `__init__` with its fields as keyword arguments and its own
input-size parameters (its `__init__` takes `in_features=`, ...) given from this class's
sizes; the size after it is the child's output size written in this class's terms. A child
of this file or of another file of the run (through the imports) converts alike.

Why: the converted child needs its input sizes in its constructor, as every NNX module
does; the parent is the one that knows them.

Before:
    y = FeedForward(self.hidden, x.shape[-1])(y)

After:
    # __init__
    self.feed_forward_0 = FeedForward(hidden=self.hidden, out=in_features, in_features=in_features, rngs=rngs)
    # __call__
    y = self.feed_forward_0(y)

Reported: a child given a module this class holds too (Linen's way to share weights;
NNX's tree mode holds no module twice); a child with TODO sites of its own; a factory field bound to several classes
(Linen names the submodule after the class it holds) or to classes with different output
sizes; an input size or the output size of a module passed in a field that the tool
cannot derive (it becomes a constructor argument).
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.classes.constructs.base import SubmoduleConstruct
from nnx_migrate.rewrite.classes.model import SubKind
from nnx_migrate.rewrite.nodes import self_attr
from nnx_migrate.rewrite.sizes import code, scalar

# Linen shares a module by passing it to several modules; NNX's graph mode holds it
# in each, its tree mode (FLIP 5310, Flax's planned default) cannot.
SHARED_MODULE = (
    "'{field}' gets self.{attr}, a module this class holds too: NNX's tree mode (graph=False, "
    "Flax's planned default) rejects a module held twice, so this class runs in graph mode only "
    "(nnx.set_graph_mode(True) or nnx.compat transforms); for tree mode pass the module at call time"
)


class ChildModule(SubmoduleConstruct):
    title = "User modules converted in the same run"
    linen = frozenset()  # the run's own module classes
    kind = SubKind.CHILD
    order = 30

    def matches(self, conv, func, qual) -> bool:
        return conv.ctx.module_class(func) is not None

    def analyse(self, conv, sub, ctor, walker) -> str:
        sub.factory = conv.factory_of(ctor.func)
        if sub.factory is not None:
            sub.child = sub.factory.child
        else:
            # built under the name the file gives it: `blocks.Block`, an import alias
            sub.child = conv.ctx.module_class(conv.class_expr(ctor))
            sub.class_source = code(conv.class_expr(ctor))
        if sub.child.has_todos:
            sub.problems.append(f"{sub.child.name} has TODO sites of its own")
        several = conv.multi_class_fields.get(sub.factory.field) if sub.factory is not None else None
        if several and not any(a.keyword is not None and a.keyword.value == "name" for a in ctor.args):
            sub.problems.append(f"the field '{sub.factory.field}' holds {' or '.join(several)} (the file binds both): Linen names the submodule after the class it holds; give it name= or build it by hand")
        if several and sub.child.out_size is None:
            sub.problems.append(f"{' and '.join(several)} give different output sizes: the size after it is not known")
        _shared_modules(conv, sub)
        return sub.child.name

    def needed_sizes(self, sub) -> list[str]:
        return list(sub.child.size_params)

    def in_sizes(self, conv, sub, call, walker, positional) -> dict:
        sizes = {}
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        for param in sub.child.size_params:
            idx = sub.child.size_param_args.get(param)
            name = sub.child.size_param_names.get(param)
            arg = positional[idx] if idx is not None and idx < len(positional) else keywords.get(name) if name else None
            if param in sub.child.optional_size_params and (arg is None or (isinstance(arg, cst.Name) and arg.value == "None")):
                sizes[param] = "None"  # the argument is not given: the child's default
                continue
            sizes[param] = scalar(walker.size_of(arg)) if arg is not None else None
        return sizes

    def out_size(self, conv, sub, call, walker, in_size):
        in_size = self.first_input_size(call, walker, in_size)
        out = sub.child.out_size
        if isinstance(out, tuple):
            return tuple(conv._child_size(sub, o, in_size) for o in out)
        return conv._child_size(sub, out, in_size)

    def init_source(self, conv, sub) -> str:
        sizes = sub.in_sizes or {}
        child = sub.child
        parts = [f"{key}={value}" for key, value in sub.arg_code.items()]
        for param in child.size_params:
            size = sizes.get(param)
            parts.append(f"{param}={size if size is not None else conv.unknown_size_param(sub, param)}")
        for param, size in sub.field_sizes.items():
            parts.append(f"{param}={size if size is not None else conv.unknown_size_param(sub, param)}")
        parts.append("rngs=rngs")
        callee = sub.factory.callee if sub.factory is not None else sub.class_source or child.name
        built = f"{callee}({', '.join(parts)})"
        if sub.transform is not None:
            return sub.transform.init_source(sub, built)
        return built


def _shared_modules(conv, sub) -> None:
    """A field of the child given a module this class holds (a submodule, or a module in
    one of its own fields the child calls): the child holds it a second time."""
    fields = {f.name for f in conv.shape.fields}
    for key, value in conv._linen_kwargs(sub).items():
        attr = self_attr(value)
        if attr is not None and (attr in conv.subs_by_attr or attr in fields and key in sub.child.field_out_params):
            sub.problems.append(SHARED_MODULE.format(field=key, attr=attr))
