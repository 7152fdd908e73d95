"""Models that cross function boundaries: a Linen module built in one function and
initialized (`model.init`) in another (of the same file, or of a sibling module the file
imports), and what `init` returned passed on to the function that builds the TrainState.

A Linen module instance is a blueprint: `init(key, x)` makes its variables later. An NNX
constructor makes them at once, so it needs the key and the input sizes that only the
`init` site knows. Where a model flows from where it is built, through function arguments
only, to a function that calls `init` on it, the pass keeps the Linen order of events:

- where it is built, a factory is built instead: `model = Net(f)` ->
  `model = functools.partial(Net, f)` (a function that only returns a model forwards
  `**kwargs`, see `models.factories`);
- the `init` site calls the factory: `variables = model.init(key, x)` ->
  `model = model(in_features=x.shape[-1], rngs=nnx.Rngs(key))`, and a function that
  returned `variables['params']` (or `variables`) returns the model;
- a parameter that every call in the file fills with such a function's result holds the
  model, so `TrainState.create(apply_fn=model.apply, params=params, tx=tx)` ->
  `TrainState.create(params, tx)`.

Anything else a model value flows into (an attribute read, a call of the model, a call
the file cannot see into) stops the rule for it: nothing of it is converted and the
TODOs stay. The answer is a fixpoint over the file's top-level functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.training.api_map import load_training_rules
from nnx_migrate.rewrite.training.models import ModelIndex, summaries_of_file
from nnx_migrate.rewrite.visitors import FastVisitor

# How a value is used: ("init",) as the receiver of `v = m.init(...)`, ("apply_fn",) as
# `apply_fn=m.apply` of TrainState.create, ("pass", callee, parameter) as an argument of a
# top-level function of the file, ("ext", ok) of a sibling module's function (ok: that
# parameter holds a blueprint there), ("other",) anything else.
Use = tuple


@dataclass
class Flow:
    blueprints: dict[str, set[str]] = field(default_factory=dict)  # function -> parameters holding a blueprint
    factory_sites: dict[str, set[str]] = field(default_factory=dict)  # function -> local names built as factories
    model_results: set[str] = field(default_factory=set)  # functions returning the model `init` built
    model_params: dict[str, set[str]] = field(default_factory=dict)  # function -> parameters holding that model
    classes: dict[tuple[str, str], object] = field(default_factory=dict)  # (function, parameter) -> ClassSummary
    # (file, function, parameter) of another file's function -> the class of the model
    # this file passes there (None: not known)
    passes: dict[tuple[str, str, str], object] = field(default_factory=dict)

    def is_blueprint(self, function: str | None, name: str) -> bool:
        return function is not None and name in self.blueprints.get(function, ())

    def is_factory_site(self, function: str | None, name: str) -> bool:
        return function is not None and name in self.factory_sites.get(function, ())

    def holds_model(self, function: str | None, name: str) -> bool:
        return function is not None and name in self.model_params.get(function, ())


EMPTY = Flow()


def init_receiver(call: cst.Call, imports: ImportMap) -> cst.BaseExpression | None:
    """`m.init(...)` or `jax.jit(m.init)(...)` -> `m`."""
    func = call.func
    if isinstance(func, cst.Call) and imports.qualify(func.func) == "jax.jit" and len(func.args) == 1:
        func = func.args[0].value
    if isinstance(func, cst.Attribute) and func.attr.value == "init":
        return func.value
    return None


def _params_of(func: cst.FunctionDef) -> tuple[list[str], set[str]]:
    p = func.params
    positional = [x.name.value for x in (*p.posonly_params, *p.params)]
    return positional, {*positional, *(x.name.value for x in p.kwonly_params)}


class _Uses(FastVisitor):
    """Every use of the tracked names in one function body."""

    def __init__(self, tracked: set[str], sites: set[str], functions: dict[str, cst.FunctionDef], imports: ImportMap, is_create, external=None):
        self.external = external  # callee expression -> (its FunctionDef, its blueprint parameters) in another file
        self.tracked = tracked
        self.sites = sites  # names whose one assignment is not a use
        self.functions = functions
        self.imports = imports
        self.is_create = is_create
        self.uses: dict[str, list[Use]] = {name: [] for name in tracked}
        self.calls: list[tuple[str, cst.Call]] = []  # calls of the file's functions
        self.ext_calls: list[tuple[str, str, str, str]] = []  # (name, file, function, parameter)
        self.references: set[str] = set()  # the file's functions named other than as a callee
        self._consumed: set[int] = set()
        self._skip: set[int] = set()
        self._init_sites: set[int] = set()  # calls in the one form the pass converts

    def visit_Assign(self, node):
        # `v = m.init(key, x)` or `v = m.init(key, x)['params']`
        value = node.value.value if isinstance(node.value, cst.Subscript) else node.value
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) and isinstance(value, cst.Call):
            if any(a.keyword is None and not a.star for a in value.args):
                self._init_sites.add(id(value))

    def visit_Call(self, node):
        receiver = init_receiver(node, self.imports)
        if isinstance(receiver, cst.Name) and receiver.value in self.tracked:
            self.uses[receiver.value].append(("init",) if id(node) in self._init_sites else ("other",))
            self._consumed.add(id(receiver))
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "create" and self.is_create(node.func.value):
            for arg in node.args:
                v = arg.value
                if arg.keyword is not None and arg.keyword.value == "apply_fn" and isinstance(v, cst.Attribute) and v.attr.value == "apply" and isinstance(v.value, cst.Name) and v.value.value in self.tracked:
                    self.uses[v.value.value].append(("apply_fn",))
                    self._consumed.add(id(v.value))
        callee = node.func.value if isinstance(node.func, cst.Name) else None
        found = self.external(node.func) if callee not in self.functions and self.external is not None else None
        if found is not None:
            file, name, func, blueprints = found
            positional, names = _params_of(func)
            for i, arg in enumerate(node.args):
                if isinstance(arg.value, cst.Name) and arg.value.value in self.tracked and not arg.star:
                    param = arg.keyword.value if arg.keyword is not None else (positional[i] if i < len(positional) else None)
                    if param in names:
                        self.uses[arg.value.value].append(("ext", blueprints is not None and param in blueprints))
                        self.ext_calls.append((arg.value.value, file, name, param))
                        self._consumed.add(id(arg.value))
        if callee in self.functions:
            self._skip.add(id(node.func))
            self.calls.append((callee, node))
            positional, names = _params_of(self.functions[callee])
            for i, arg in enumerate(node.args):
                if not (isinstance(arg.value, cst.Name) and arg.value.value in self.tracked):
                    continue
                if arg.star:
                    continue
                if arg.keyword is not None:
                    param = arg.keyword.value if arg.keyword.value in names else None
                else:
                    param = positional[i] if i < len(positional) else None
                if param is not None:
                    self.uses[arg.value.value].append(("pass", callee, param))
                    self._consumed.add(id(arg.value))

    def visit_Attribute(self, node):
        self.walk(node.value)
        return False

    def visit_AssignTarget(self, node):
        return not (isinstance(node.target, cst.Name) and node.target.value in self.sites)

    def visit_Arg(self, node):
        self.walk(node.value)
        return False

    def visit_Param(self, node):
        if node.default is not None:
            self.walk(node.default)
        return False

    def visit_Name(self, node):
        if id(node) in self._consumed or id(node) in self._skip:
            return
        if node.value in self.tracked:
            self.uses[node.value].append(("other",))
        if node.value in self.functions:
            self.references.add(node.value)


def analyse(module: cst.Module, imports: ImportMap, models: ModelIndex, is_train_state_class, path: str = "<string>",
            sibling_depth: int = 2) -> Flow:
    """`path` (a file on disk) lets calls into local modules (`ppo_lib.train(model)`)
    count: their blueprint parameters come from the same analysis of that file.
    `sibling_depth`: how far to ask the folder's other files what they pass in (a sibling's
    own analysis asks one level less): main.py -> lib.py -> models.py is followed, an
    import web of a large package is not walked file after file (that ran past Python's
    recursion limit on jax's own sources). Other files are read through `models.context`."""
    real = not path.startswith("<")
    context = models.context
    external = _external_resolver(imports, path, sibling_depth, context) if real else None
    ext_calls = []
    siblings = _SiblingPasses(path, sibling_depth - 1, context) if real and sibling_depth > 0 else None
    functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
    if not functions:
        return EMPTY
    # per function: uses of its parameters and of its single-assignment model constructions
    param_uses: dict[tuple[str, str], list[Use]] = {}
    site_uses: dict[tuple[str, str], list[Use]] = {}
    site_ctor: dict[tuple[str, str], cst.Call] = {}
    bound_by_call: dict[tuple[str, str], str] = {}  # (function, name) -> function whose result it holds
    calls: dict[str, list[tuple[str, cst.Call]]] = {name: [] for name in functions}
    referenced: set[str] = set()
    for name, func in functions.items():
        _, params = _params_of(func)
        assigned: dict[str, list[cst.BaseExpression]] = {}
        for assign in _assignments(func.body):
            for target in assign.targets:
                if isinstance(target.target, cst.Name):
                    assigned.setdefault(target.target.value, []).append(assign.value)
                else:
                    for n in names_of_target(target.target):
                        assigned.setdefault(n, []).append(None)
        sites = {}
        for var, values in assigned.items():
            if len(values) == 1 and isinstance(values[0], cst.Call) and var not in params:
                if models.lookup(values[0].func) is not None:
                    sites[var] = values[0]
                elif isinstance(values[0].func, cst.Name) and values[0].func.value in functions:
                    bound_by_call[(name, var)] = values[0].func.value
        tracked = (params - set(assigned)) | set(sites)
        visitor = _Uses(tracked, set(sites), functions, imports, is_train_state_class, external)
        visitor.walk(func.body)
        referenced |= visitor.references
        ext_calls += [(name, *call) for call in visitor.ext_calls]
        for callee, call in visitor.calls:
            calls[callee].append((name, call))
        for var, uses in visitor.uses.items():
            if var in sites:
                site_uses[(name, var)] = uses
                site_ctor[(name, var)] = sites[var]
            else:
                param_uses[(name, var)] = uses

    def arg_at(func_name: str, call: cst.Call, param: str) -> cst.BaseExpression | None:
        positional, _ = _params_of(functions[func_name])
        for i, arg in enumerate(call.args):
            if arg.star:
                return None
            if arg.keyword is not None and arg.keyword.value == param:
                return arg.value
            if arg.keyword is None and i < len(positional) and positional[i] == param:
                return arg.value
        return None

    fits = lambda u, kinds: u[0] in kinds or u == ("ext", True)  # noqa: E731
    blue = {key for key, uses in param_uses.items() if uses and all(fits(u, ("init", "apply_fn", "pass")) for u in uses)}
    fact = {key for key, uses in site_uses.items() if uses and all(fits(u, ("apply_fn", "pass")) for u in uses) and any(u[0] in ("pass", "ext") for u in uses)}
    classes: dict[tuple[str, str], object] = {}
    while True:
        before = (set(blue), set(fact))
        for key in list(blue):
            if any(u[0] == "pass" and (u[1], u[2]) not in blue for u in param_uses[key]) or key[0] in referenced:
                blue.discard(key)
        for key in list(fact):
            if any(u[0] == "pass" and (u[1], u[2]) not in blue for u in site_uses[key]):
                fact.discard(key)
        for key in list(blue):
            func_name, param = key
            for caller, call in calls[func_name]:
                value = arg_at(func_name, call, param)
                if not (isinstance(value, cst.Name) and ((caller, value.value) in blue or (caller, value.value) in fact)):
                    blue.discard(key)
                    break
        # a blueprint that reaches `init` needs its class (for the input-size arguments)
        classes = _classes(blue, fact, site_ctor, functions, calls, arg_at, models, siblings)
        for key in list(blue):
            if any(u[0] == "init" for u in param_uses[key]) and classes.get(key) is None:
                blue.discard(key)
        if (blue, fact) == before:
            break
    flow = Flow(classes=classes)
    for func_name, var, file, callee, param in ext_calls:
        key = (func_name, var)
        cls = models.lookup(site_ctor[key].func) if key in site_ctor else classes.get(key)
        flow.passes[(file, callee, param)] = cls if flow.passes.get((file, callee, param), cls) is cls else None
    for f, p in blue:
        flow.blueprints.setdefault(f, set()).add(p)
    for f, v in fact:
        flow.factory_sites.setdefault(f, set()).add(v)
    for f, p in blue:
        if any(u[0] == "init" for u in param_uses[(f, p)]) and _returns_init_result(functions[f], p, imports):
            flow.model_results.add(f)
    for (f, p), _uses in param_uses.items():
        if not calls[f] or f in referenced:
            continue
        ok = True
        for caller, call in calls[f]:
            value = arg_at(f, call, p)
            if not (isinstance(value, cst.Name) and bound_by_call.get((caller, value.value)) in flow.model_results):
                ok = False
                break
        if ok:
            flow.model_params.setdefault(f, set()).add(p)
    return flow


def train_state_checker(module: cst.Module, imports: ImportMap, extra: set[str] = frozenset()):
    """Whether an expression names a TrainState class: Flax's, a subclass of it defined in
    this file, or one of `extra` (the helper's name)."""
    train_states = load_training_rules().train_state_classes
    local = {s.name.value for s in module.body if isinstance(s, cst.ClassDef) and any(imports.qualify(b.value) in train_states for b in s.bases)}
    names = local | set(extra)
    return lambda node: dotted(node) in names or imports.qualify(node) in train_states


def _external_resolver(imports: ImportMap, path: str, depth: int, context: RunContext):
    """Functions of local modules this file calls; their own analysis follows imports one
    level less (`depth`), past that they are known only as callees."""
    def resolve(func: cst.BaseExpression):
        qualified = imports.qualify(func)
        if not qualified or "." not in qualified:
            return None
        module_name, _, name = qualified.rpartition(".")
        file = context.local_module_file(path, module_name)
        if file is None:
            return None
        version = context.files.version(file)
        if version is None:
            return None
        if file in context.in_progress or depth <= 0:  # being worked out, or too far: known only as a callee
            functions, flow = _functions_of(file, version, context), None
        else:
            functions, flow = _flow_of(file, version, depth - 1, context)
        if name not in functions:
            return None
        return file, name, functions[name], (flow.blueprints.get(name, set()) if flow is not None else None)

    return resolve


def _flow_of(file: str, version, sibling_depth: int, context: RunContext):
    """The analysis of another file of the program, once per file version in a run."""
    return context.cached("flows of files", (file, version, sibling_depth), lambda: _flow_of_file(file, sibling_depth, context))


def _flow_of_file(file: str, sibling_depth: int, context: RunContext):
    context.in_progress.add(file)
    try:
        text = context.read(file)
        if text is None:
            return {}, EMPTY
        module = context.parse(text)
        imports = ImportMap(module)
        models = ModelIndex(module, file, own=summaries_of_file(file, context), context=context)
        functions = {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}
        return functions, analyse(module, imports, models, train_state_checker(module, imports), file, sibling_depth)
    except (OSError, cst.ParserSyntaxError):
        return {}, EMPTY
    finally:
        context.in_progress.discard(file)


def _functions_of(file: str, version, context: RunContext) -> dict:
    """Another file's top-level functions by name, once per file version in a run."""
    def make() -> dict:
        text = context.read(file)
        if text is None:
            return {}
        try:
            module = context.parse(text)
        except cst.ParserSyntaxError:
            return {}
        return {s.name.value: s for s in module.body if isinstance(s, cst.FunctionDef)}

    return context.cached("functions of files", (file, version), make)


class _SiblingPasses:
    """The classes other files of the same folder pass to this file's functions
    (`lib.create_train_state(key, model)` in main.py, `model = models.Net(...)`): asked
    only for a blueprint whose class neither an annotation nor a caller here gives."""

    def __init__(self, path: str, depth: int, context: RunContext):
        self.file = context.files.resolve(path)
        self.depth = depth  # for the siblings' own analyses
        self.context = context
        self._passes = None

    def get(self, function: str, param: str) -> list:
        if self._passes is None:
            self._passes = {}
            stem = Path(self.file).stem
            files, in_progress = self.context.files, self.context.in_progress
            in_progress.add(self.file)
            try:
                for sibling in files.python_files_beside(self.file)[:200]:
                    if sibling == self.file or sibling in in_progress:
                        continue
                    version = files.version(sibling)
                    text = self.context.read(sibling) if version is not None else None
                    if text is None or stem not in text:
                        continue
                    _, flow = _flow_of(sibling, version, self.depth, self.context)
                    for (file, func, p), cls in flow.passes.items():
                        if file == self.file:
                            self._passes.setdefault((func, p), []).append(cls)
            finally:
                in_progress.discard(self.file)
        return self._passes.get((function, param), [])


def _classes(blue, fact, site_ctor, functions, calls, arg_at, models: ModelIndex, siblings=None) -> dict:
    """(function, parameter) -> the model class summary its blueprint comes from (one
    class: an annotation, else the same class from every caller), or None."""
    out: dict = {}

    def of(key, seen):
        if key in out:
            return out[key]
        if key in seen:
            return None
        seen = seen | {key}
        func_name, param = key
        found = None
        for p in (*functions[func_name].params.posonly_params, *functions[func_name].params.params, *functions[func_name].params.kwonly_params):
            if p.name.value == param and p.annotation is not None:
                found = models.lookup(p.annotation.annotation)
        if found is None:
            answers = []
            for caller, call in calls[func_name]:
                value = arg_at(func_name, call, param)
                if isinstance(value, cst.Name) and (caller, value.value) in fact:
                    answers.append(models.lookup(site_ctor[(caller, value.value)].func))
                elif isinstance(value, cst.Name) and (caller, value.value) in blue:
                    answers.append(of((caller, value.value), seen))
                else:
                    answers.append(None)
            if siblings is not None:
                answers += siblings.get(func_name, param)
            if answers and all(a is not None and a is answers[0] for a in answers):
                found = answers[0]
        out[key] = found
        return found

    for key in blue:
        of(key, frozenset())
    return out


def _returns_init_result(func: cst.FunctionDef, param: str, imports: ImportMap) -> bool:
    """`v = p.init(...)` (or `p.init(...)['params']`) and every return gives `v` or
    `v['params']`."""
    results = set()
    for assign in _assignments(func.body):
        value = assign.value
        if isinstance(value, cst.Subscript):
            value = value.value
        if isinstance(value, cst.Call) and len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name):
            receiver = init_receiver(value, imports)
            if isinstance(receiver, cst.Name) and receiver.value == param:
                results.add(assign.targets[0].target.value)
    returns = _returns(func.body)
    if not results or not returns:
        return False
    for ret in returns:
        value = ret.value
        if isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index) and isinstance(value.slice[0].slice.value, cst.SimpleString) and value.slice[0].slice.value.evaluated_value == "params":
            value = value.value
        if not (isinstance(value, cst.Name) and value.value in results):
            return False
    return True


# Module-level visitors: a class defined per call would start with empty callback tables
# each time (rewrite/visitors.py fills them per class, on first use).
class _FindAssigns(FastVisitor):
    def __init__(self, found: list) -> None:
        self.found = found

    def visit_Assign(self, node):
        self.found.append(node)

    def visit_FunctionDef(self, node):
        return False  # nested functions have their own scope

    def visit_Lambda(self, node):
        return False


class _FindReturns(FastVisitor):
    def __init__(self, found: list) -> None:
        self.found = found

    def visit_Return(self, node):
        self.found.append(node)

    def visit_FunctionDef(self, node):
        return False


def _assignments(body) -> list[cst.Assign]:
    found: list[cst.Assign] = []
    _FindAssigns(found).walk(body)
    return found


def _returns(body) -> list[cst.Return]:
    found: list[cst.Return] = []
    _FindReturns(found).walk(body)
    return found


def names_of_target(node) -> list[str]:
    """The names an assignment or loop target binds (`a`, `a, (b, c)`, `[a, b]`)."""
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for el in node.elements for n in names_of_target(el.value)]
    return []


__all__ = ["Flow", "EMPTY", "analyse", "init_receiver", "train_state_checker"]
