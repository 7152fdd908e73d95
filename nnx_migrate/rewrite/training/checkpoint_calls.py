"""A training program's checkpoint calls on its train state -> the same calls on the NNX state.

What: every save and restore of a Linen TrainState through orbax (`StandardCheckpointer`,
`PyTreeCheckpointer`, `CheckpointManager`), `flax.training.checkpoints` or
`flax.serialization` (the table: rules/linen_checkpoints.toml). A save writes the
converted state's values; a restore reads the checkpoint with no target and fills the
state from it, whether the converted program or the Linen original wrote it (recognised
by its layout), so a migrated program resumes from the last Linen checkpoint.

Why: after the training pass the state is no longer Linen's TrainState; orbax (or msgpack)
would save a flat list of arrays (flat-state) or refuse an `nnx.Module` target, and a
restore into the new state cannot read the Linen layout.

    checkpoints.save_checkpoint(workdir, state, step)
    state = checkpoints.restore_checkpoint(workdir, state)
    manager.save(step, args=ocp.args.StandardSave(state))
    state = serialization.from_bytes(state, data)
->
    checkpoints.save_checkpoint(workdir, checkpoint_tree(state), step)
    state = restored_from_checkpoint(state, checkpoints.restore_checkpoint(workdir, None))
    manager.save(step, args=ocp.args.StandardSave(checkpoint_tree(state)))
    state = restored_from_checkpoint(state, serialization.from_bytes(None, data))

The two helpers are written into the program (training/checkpoint_helper.py).

Reported (TODO(nnx-migrate), the call left as it was): a call whose argument is not known
to be a train state (Linen params or variables, a state the data flow cannot follow into
the function), an orbax restore with no target, a restore whose target also feeds other
arguments. Safe: the state is found by data flow (training/states.py), never by its name.
Pure: no jax or flax import.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.names import dotted as _dotted
from nnx_migrate.rewrite.report import TodoSite, todo_comment
from nnx_migrate.rewrite.rules import _load
from nnx_migrate.rewrite.training import checkpoint_helper
from nnx_migrate.rewrite.training.param_grad import helper_name
from nnx_migrate.rewrite.visitors import FastTransformer, FastVisitor

_UNREPLICATE = "flax.jax_utils.unreplicate"
# flat-state: calls that give back a pytree of the same structure (position of the tree):
# `jax.tree.map(to_global_array, state)` before a save is still the state
_SAME_PYTREE = {"jax.tree_util.tree_map": 1, "jax.tree.map": 1, "jax.device_get": 0, "jax.device_put": 0,
                _UNREPLICATE: 0}
# nnx-jit's state is an nnx.Module, which jax_utils does not replicate (training/pmapped.py)
_REPLICATED = "checkpoint of a replicated train state (pmap): convert by hand"


@dataclass(frozen=True)
class CheckpointRules:
    save_functions: dict[str, tuple[int, str]]
    restore_functions: dict[str, tuple[int, str]]
    orbax_objects: frozenset[str]
    item_position: int
    item_keywords: frozenset[str]
    args_keyword: str
    save_args: frozenset[str]
    restore_args: frozenset[str]
    restore_target_keywords: frozenset[str]
    unconverted: dict[str, str]

    def why(self, qualified: str) -> str:
        return next(why for prefix, why in self.unconverted.items() if qualified.startswith(prefix))


@functools.cache
def load_checkpoint_rules() -> CheckpointRules:
    data = _load("linen_checkpoints.toml")
    orbax = data["orbax"]
    return CheckpointRules(
        save_functions={k: (v["position"], v["keyword"]) for k, v in data["save_functions"].items()},
        restore_functions={k: (v["position"], v["keyword"]) for k, v in data["restore_functions"].items()},
        orbax_objects=frozenset(orbax["objects"]),
        item_position=orbax["item_position"],
        item_keywords=frozenset(orbax["item_keywords"]),
        args_keyword=orbax["args_keyword"],
        save_args=frozenset(orbax["save_args"]),
        restore_args=frozenset(orbax["restore_args"]),
        restore_target_keywords=frozenset(orbax["restore_target_keywords"]),
        unconverted=dict(data["unconverted"]),
    )


def mentions_checkpoints(imports: ImportMap) -> bool:
    """Whether the file imports anything the table knows (cheap: imports only)."""
    return any(full.startswith(("flax.training.checkpoints", "flax.serialization", "orbax.checkpoint"))
               or full in ("flax.training", "flax", "orbax") for full in imports.aliases.values())


@dataclass
class CheckpointResult:
    module: cst.Module
    changed: bool = False
    # (statement's first line, the call's callee as written, construct, why)
    todos: list[tuple[str, str, str, str]] = field(default_factory=list)


def convert_checkpoint_calls(module: cst.Module, imports: ImportMap, states: dict[str | None, set[str]],
                             style: str, report: bool = True) -> CheckpointResult:
    """`module` (the training pass's output) with its checkpoint calls converted.
    `states`: top-level function or method name (`Class.method`; None: module level) ->
    its names that hold a train state (training/states.py, on the pass's input).
    `report`: whether the calls left as they were are marked; False in a file the
    rewrite converts nothing else in (a weight-porting utility, a library's own
    checkpoint code), whose values are still the Linen ones its calls expect."""
    if not mentions_checkpoints(imports):
        return CheckpointResult(module)
    rules = load_checkpoint_rules()
    save, restore = helper_name(module, checkpoint_helper.SAVE), helper_name(module, checkpoint_helper.RESTORE)
    transformer = _CheckpointCalls(imports, rules, states, style, _orbax_names(module, imports, rules), save, restore)
    transformer.report = report
    new = transformer.transform(module)
    result = CheckpointResult(new, transformer.changed, transformer.todos)
    if transformer.changed:
        result.module = checkpoint_helper.add_helpers(new, save, restore)
    return result


def _orbax_names(module: cst.Module, imports: ImportMap, rules: CheckpointRules) -> set[str]:
    """Dotted names (`checkpointer`, `self.manager`) the file binds to an orbax checkpointer
    or manager, by assignment or `with ... as`."""
    found: set[str] = set()

    class Bindings(FastVisitor):
        def visit_Assign(self, node):
            if _is_orbax_object(node.value, imports, rules, set()):
                found.update(filter(None, (_dotted(t.target) for t in node.targets)))

        def visit_WithItem(self, node):
            if node.asname is not None and _is_orbax_object(node.item, imports, rules, set()):
                name = _dotted(node.asname.name)
                if name:
                    found.add(name)

    Bindings().walk(module)
    return found


def _is_orbax_object(node, imports: ImportMap, rules: CheckpointRules, names: set[str]) -> bool:
    if isinstance(node, cst.Call):
        return imports.qualify(node.func) in rules.orbax_objects
    return _dotted(node) in names


class _CheckpointCalls(FastTransformer):
    def __init__(self, imports: ImportMap, rules: CheckpointRules, states, style: str, orbax_names: set[str],
                 save: str, restore: str) -> None:
        super().__init__()
        self.imports, self.rules, self.states, self.style = imports, rules, states, style
        self.orbax_names, self.save, self.restore = orbax_names, save, restore
        self.scope: list[str] = []  # enclosing top-level class / function names
        self._derived: dict[str, set[str]] = {}  # function -> names holding a state mapped leaf by leaf
        self.statements: list[list[tuple[str, str, str]]] = []  # per open statement: (callee, construct, why)
        self.changed = False
        self.report = True
        self.todos: list[tuple[str, str, str, str]] = []

    # scopes: the data flow answers per top-level function and per method of a top-level class
    def visit_ClassDef(self, node):
        self.scope.append(node.name.value)

    def leave_ClassDef(self, original, updated):
        self.scope.pop()
        return updated

    def visit_FunctionDef(self, node):
        self.scope.append(node.name.value)
        if len(self.scope) <= 2 and self.style == "flat-state":
            self._derived[".".join(self.scope)] = self._same_pytree_names(node)

    def leave_FunctionDef(self, original, updated):
        self.scope.pop()
        return updated

    def _state_names(self) -> set[str]:
        key = ".".join(self.scope[:2]) if self.scope else None
        names = self.states.get(key)
        if names is None and self.scope:
            key = self.scope[0]
            names = self.states.get(key, set())
        return (names or set()) | self._derived.get(key, set())

    def _same_pytree_names(self, func: cst.FunctionDef) -> set[str]:
        """Names the function assigns a state mapped leaf by leaf (`_SAME_PYTREE`)."""
        key = ".".join(self.scope[:2])
        states = set(self.states.get(key, self.states.get(self.scope[0], set())))
        assigns = [(t.target.value, small.value) for stmt in _statements(func.body) for small in stmt.body
                   if isinstance(small, cst.Assign) for t in small.targets if isinstance(t.target, cst.Name)]
        found: set[str] = set()
        for _ in range(2):  # `a = tree_map(f, state); b = device_get(a)`
            for name, value in assigns:
                if isinstance(value, cst.Call) and self.imports.qualify(value.func) in _SAME_PYTREE:
                    positional = [a.value for a in value.args if a.keyword is None and not a.star]
                    index = _SAME_PYTREE[self.imports.qualify(value.func)]
                    tree = positional[index] if index < len(positional) else None
                    if isinstance(tree, cst.Name) and tree.value in states | found:
                        found.add(name)
        return found

    # statements: a TODO goes above the innermost statement holding the call
    def on_visit(self, node):
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            self.statements.append([])
        return super().on_visit(node)

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if isinstance(original, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            result = self._marked(original, result)
        return result

    def _marked(self, original, updated):
        todos = self.statements.pop()
        if not todos:
            return updated
        first = cst.Module([]).code_for_node(original.with_changes(leading_lines=[])).strip().splitlines()[0].strip()
        comments = []
        for callee, construct, why in dict.fromkeys(todos):
            self.todos.append((first, callee, construct, why))
            comments.append(cst.EmptyLine(comment=cst.Comment(todo_comment(why))))
        return updated.with_changes(leading_lines=[*updated.leading_lines, *comments])

    # the calls
    def leave_Call(self, original, updated):
        kind, qualified = self._kind(original)
        if kind is None:
            return updated
        occurrences = list(self._state_args(updated))
        if kind == "save":
            return self._save(updated, qualified, occurrences)
        return self._restore(updated, qualified, occurrences)

    def _kind(self, call: cst.Call) -> tuple[str | None, str]:
        qualified = self.imports.qualify(call.func) or ""
        if qualified in self.rules.save_functions:
            return "save", qualified
        if qualified in self.rules.restore_functions:
            return "restore", qualified
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("save", "restore") and _is_orbax_object(
                func.value, self.imports, self.rules, self.orbax_names):
            return func.attr.value, "orbax.checkpoint"
        return None, qualified

    def _state(self, node) -> cst.BaseExpression | None:
        """The state a value is (a name holding one; flat-state: its `unreplicate`), else None."""
        if isinstance(node, cst.Name) and node.value in self._state_names():
            return node
        if (self.style == "flat-state" and isinstance(node, cst.Call) and len(node.args) == 1
                and self.imports.qualify(node.func) == _UNREPLICATE and self._state(node.args[0].value) is not None):
            return node
        return None

    def _state_args(self, call: cst.Call, depth: int = 0):
        """(path, arg) for each argument at any depth of nested calls whose value is a state;
        path: the keyword or position of each enclosing argument, outermost first."""
        for i, arg in enumerate(call.args):
            where = arg.keyword.value if arg.keyword is not None else i
            if self._state(arg.value) is not None:
                yield (where,), arg
            elif isinstance(arg.value, cst.Call) and _dotted(arg.value.func) != self.save:  # (a save converted already)
                for path, inner in self._state_args(arg.value, depth + 1):
                    yield (where, *path), inner

    def _todo(self, call: cst.Call, why: str) -> None:
        if not self.report:
            return
        callee = cst.Module([]).code_for_node(call.func)
        self.statements[-1].append((callee, _construct(call), why))  # a call is always inside a statement

    def _why(self, call: cst.Call, qualified: str) -> str:
        replicated = any(isinstance(a.value, cst.Call) and self.imports.qualify(a.value.func) == _UNREPLICATE for a in call.args)
        return _REPLICATED if replicated else self.rules.why(qualified)

    def _save(self, call: cst.Call, qualified: str, occurrences) -> cst.BaseExpression:
        if not occurrences or not self._item_given(call, qualified, occurrences):
            self._todo(call, self._why(call, qualified))
            return call
        wrap = {id(arg) for _, arg in occurrences}

        class Wrap(FastTransformer):
            def leave_Arg(_, original, updated):  # noqa: N805 (the outer self is the pass)
                if id(original) not in wrap:
                    return updated
                return updated.with_changes(value=cst.Call(cst.Name(self.save), [cst.Arg(updated.value)]))

        self.changed = True
        return Wrap().transform(call)

    def _item_given(self, call: cst.Call, qualified: str, occurrences) -> bool:
        """Whether a state is the item the call saves or restores (not only an argument of
        something else in it)."""
        return any(self._is_item(call, qualified, path) for path, _ in occurrences)

    def _is_item(self, call: cst.Call, qualified: str, path: tuple) -> bool:
        if qualified in self.rules.save_functions or qualified in self.rules.restore_functions:
            position, keyword = {**self.rules.save_functions, **self.rules.restore_functions}[qualified]
            return path in ((position,), (keyword,))
        if path in ((self.rules.item_position,), *((k,) for k in self.rules.item_keywords)):
            return True
        if len(path) == 2 and path[0] == self.rules.args_keyword:
            args = next(a.value for a in call.args if a.keyword is not None and a.keyword.value == self.rules.args_keyword)
            known = self.rules.save_args | self.rules.restore_args
            return isinstance(args, cst.Call) and self.imports.qualify(args.func) in known and path[1] in (0, "item")
        return False

    def _restore(self, call: cst.Call, qualified: str, occurrences) -> cst.BaseExpression:
        items = [(path, arg) for path, arg in occurrences if self._is_item(call, qualified, path)]
        derived = [(path, arg) for path, arg in occurrences if (path, arg) not in items]
        names = {cst.Module([]).code_for_node(arg.value) for _, arg in occurrences}
        if (not items or len(names) != 1 or not isinstance(items[0][1].value, cst.Name)
                or any(not (isinstance(p[0], str) and p[0] in self.rules.restore_target_keywords) for p, _ in derived)):
            self._todo(call, self._why(call, qualified))
            return call
        state = items[0][1].value
        targets = {id(arg) for _, arg in items}
        dropped = {p[0] for p, _ in derived}

        class Untarget(FastTransformer):
            def leave_Arg(_, original, updated):  # noqa: N805
                return updated.with_changes(value=cst.Name("None")) if id(original) in targets else updated

        new = Untarget().transform(call)
        if dropped:
            kept = [a for a in new.args if a.keyword is None or a.keyword.value not in dropped]
            if kept:
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            new = new.with_changes(args=kept)
        self.changed = True
        return cst.Call(cst.Name(self.restore), [cst.Arg(state, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(new)])


def _construct(call: cst.Call) -> str:
    return f"{cst.Module([]).code_for_node(call.func)}(...)"


def states_by_function(module: cst.Module, flow) -> dict[str | None, set[str]]:
    """`flow` (a states.StateFlow over `module`) as `convert_checkpoint_calls` takes it."""
    if flow is None:
        return {}
    found: dict[str | None, set[str]] = {None: flow.names(module)}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            found[stmt.name.value] = flow.names(stmt)
        elif isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            for inner in stmt.body.body:
                if isinstance(inner, cst.FunctionDef):
                    found[f"{stmt.name.value}.{inner.name.value}"] = flow.names(inner)
    return found


def todo_sites(result: CheckpointResult, path: str, original: str) -> list[TodoSite]:
    """The result's TODOs as report entries, each at the line of the input that holds its
    statement: the n-th statement of the same text is on the n-th such line; a statement
    the training pass changed elsewhere (`state.params` -> `state.model`) is found by its
    call's callee, which the pass leaves as it was."""
    lines = [line.strip() for line in original.splitlines()]
    seen: dict[tuple[str, str], int] = {}
    sites = []
    for first, callee, construct, why in result.todos:
        matches = [number for number, line in enumerate(lines, 1) if line == first]
        if not matches:
            matches = [number for number, line in enumerate(lines, 1) if f"{callee}(" in line]
        index = seen.get((first, callee), 0)
        seen[(first, callee)] = index + 1
        sites.append(TodoSite(path, matches[min(index, len(matches) - 1)] if matches else 0, construct, why))
    return sites


def _statements(node: cst.CSTNode):
    """The simple statement lines of a block, nested blocks included."""
    found = []

    class Lines(FastVisitor):
        def visit_SimpleStatementLine(self, line):
            found.append(line)
            return False

    Lines().walk(node)
    return found
