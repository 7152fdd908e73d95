"""One file through the training pass: `convert_training(original, converted, path, style)`.

Runs after the module-class rewrite, on its output; the class summaries (input-size
parameters) come from the original text. Returns the new text and the TODO sites.
"""

from __future__ import annotations

import ast
import difflib
import re

import libcst as cst
import libcst.matchers as m

from nnx_migrate.rewrite.edits import JAX, NNX, RE, STRUCT, Place
from nnx_migrate.rewrite.lines import (
    render,
    splits_lines_like_ast,
    start_lines,
    statement_spans,
    statement_starts,
)
from nnx_migrate.rewrite.names import ImportMap
from nnx_migrate.rewrite.nodes import names_in
from nnx_migrate.rewrite.report import TODO_MARK, TodoSite
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.training import param_grad
from nnx_migrate.rewrite.training.api_map import load_training_rules
from nnx_migrate.rewrite.training.checkpoint_calls import (
    convert_checkpoint_calls,
    states_by_function,
    todo_sites,
)
from nnx_migrate.rewrite.training.data_parallel import (
    DEFAULT_PMAP,
    settle_training_todos,
    to_jit_data_parallel,
)
from nnx_migrate.rewrite.training.dataflow import analyse, train_state_checker
from nnx_migrate.rewrite.training.functional import functional_form
from nnx_migrate.rewrite.training.models import (
    ModelIndex,
    factories,
    factory_call,
    summaries_of,
    summaries_of_file,
    with_factories,
)
from nnx_migrate.rewrite.training.notebook import notebook_form
from nnx_migrate.rewrite.training.pmapped import pmapped_functions
from nnx_migrate.rewrite.training.sharding import set_mesh
from nnx_migrate.rewrite.training.state_helper import CarriedField, helper_source
from nnx_migrate.rewrite.training.states import state_flow
from nnx_migrate.rewrite.training.steps import TrainingTransformer
from nnx_migrate.rewrite.visitors import FastTransformer

TRAIN_STYLES = ("flat-state", "nnx-jit")
DEFAULT_TRAIN_STYLE = "flat-state"

# Words without which a file has nothing for this pass (checked before parsing).
_MARKERS = (".init(", ".apply(", "apply_fn", "TrainState", "apply_gradients", "pmap", "checkpoints")


def might_train(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def convert_training(original: str, converted: str, path: str = "<string>", style: str = DEFAULT_TRAIN_STYLE, external=None, exports=None, tree: cst.Module | None = None,
                     context: RunContext | None = None) -> tuple[str, list[TodoSite]]:
    """`converted` is the module rewrite's output for `original`; `external` (the run's
    `index.ModuleIndex`, optional) knows model classes of the other files of the run;
    `tree` (optional) is `converted` as a tree, so that it need not be parsed again;
    `context` (optional) the run's caches and reader of other files."""
    if context is None:
        with RunContext() as context:
            return convert_training(original, converted, path, style, external, exports, tree, context)
    new_text, todos, _ = _convert_training(original, converted, path, style, external, exports, tree, context)
    return new_text, todos


def _convert_training(original: str, converted: str, path: str, style: str, external, exports, tree: cst.Module | None,
                      context: RunContext) -> tuple[str, list[TodoSite], cst.Module | None]:
    """`convert_training`, also returning the tree of the new text (None: unchanged)."""
    if style not in TRAIN_STYLES:
        raise ValueError(f"train style must be one of {TRAIN_STYLES}, not {style!r}")
    builds_run_models = None  # asked only where nothing else makes the file one to visit
    if not might_train(converted) and "linen" not in original:
        builds_run_models = _builds_sibling_models(converted, path, context)
        if not builds_run_models:
            return converted, [], None
    try:
        original_module = context.parse(original)
        module = original_module if converted == original else tree if tree is not None else context.parse(converted)
    except cst.ParserSyntaxError:
        return converted, [], None
    if _already_nnx(original_module):
        return converted, [], None
    rules = load_training_rules()
    imports = ImportMap(module)
    own = with_factories(original_module, exports) if exports is not None else summaries_of(original_module, path, context)
    models = ModelIndex(module, path, own=own, external=external, context=context)
    subclasses = _train_state_subclasses(module, imports, rules)
    helper_name = subclasses[0].name.value if subclasses else "TrainState"
    knows = any(q.startswith("flax.training") for q in imports.aliases.values()) or "apply_fn" in converted or "apply_gradients" in converted
    triggers = _trigger_pattern(imports, rules, knows)
    found_factories = {**factories(original_module, models.own), **models.imported_factories()}
    if not triggers.search(converted) and not found_factories and not (builds_run_models if builds_run_models is not None else _builds_sibling_models(converted, path, context)):
        return converted, [], None
    state_classes = {c.name.value for c in subclasses} | {helper_name}
    carried = {c.name.value: carried_fields(c, imports, rules) for c in subclasses}
    checker = train_state_checker(module, imports, state_classes)
    notebook = notebook_form(module, models, imports, rules, helper_name, style, checker, lambda: state_flow(module, imports, checker),
                             {f.name for fields, _ in carried.values() for f in fields})
    if notebook is not None:  # the rest of the pass reads the notebook's new code
        converted = notebook.code
        module = context.parse(converted)
        imports = ImportMap(module)
        models = ModelIndex(module, path, own=own, external=external, context=context)
    flow = analyse(module, imports, models, train_state_checker(module, imports, state_classes), path)
    if flow.factory_sites:  # the functions that build them are visited, whatever they mention
        triggers = re.compile(r"%s|\b(?:%s)\b" % (triggers.pattern, "|".join(map(re.escape, sorted(flow.factory_sites)))))
    transformer = TrainingTransformer(imports, rules, models, style, state_classes, helper_name, knows, flow)
    if not knows:  # no TrainState: pmap and replicate act on plain pytrees, in either style
        transformer.unsupported = rules.unsupported_for(DEFAULT_TRAIN_STYLE)
    transformer.carried_fields = {f.name for fields, _ in carried.values() for f in fields}
    if notebook is not None:  # its `TrainState.create(model, tx)` is the helper's
        transformer.used_helper = True
        transformer.edits.add_import(NNX, Place.AFTER_IMPORTS)
    transformer.module = module
    transformer.state_flow = state_flow(module, imports, train_state_checker(module, imports, state_classes))
    if "pmap" in converted:
        transformer.pmapped = pmapped_functions(module, imports)
    new, spans, owners = _visit_statements(module, converted, transformer, triggers, context)
    new, forwarded = forward_constructor_arguments(new, found_factories)
    new, meshes = set_mesh(new, imports, transformer.edits) if "with" in converted else (new, False)
    forwarded = forwarded or meshes
    new, functional = functional_form(new, models, imports, transformer.edits)
    checkpoints = convert_checkpoint_calls(new, imports, states_by_function(module, transformer.state_flow), style,
                                           report=transformer.changed or forwarded or functional or converted != original)
    new = checkpoints.module
    forwarded = forwarded or functional or notebook is not None or checkpoints.changed or bool(checkpoints.todos)
    if not transformer.changed and not transformer.todos and not forwarded:
        return converted, [], None
    if not transformer.changed and not forwarded and "flax" not in original:
        # Only TODOs (say, `jax.pmap`) in a file that uses neither flax nor a model of the
        # run: not Linen code, so it is not ours to mark (files without Linen stay untouched).
        return converted, [], None
    # Start lines of the (unchanged, immutable) input tree, only for files with something
    # to report (a render and a diff).
    if transformer.todos or subclasses:
        positions = _start_lines(module, spans, owners, transformer.todos, subclasses)
        to_original = _line_map(converted, original)
    else:
        positions, to_original = {}, None
    todos = [TodoSite(path, to_original(_line(positions, node)), construct, why) for node, construct, why in transformer.todos]
    todos += todo_sites(checkpoints, path, original)
    new, helper_todos = _place_helper(new, subclasses, helper_name, style, transformer.used_helper, path, {c.name.value: to_original(_line(positions, c)) for c in subclasses}, transformer.used_apply_fn, carried)
    todos += helper_todos
    if transformer.used_param_grad:
        new = param_grad.add_helper(new, transformer.used_param_grad)
    edits = transformer.edits
    if checkpoints.changed:  # the checkpoint helpers' code reads `re`, `jax` and `nnx`
        edits.add_import(RE, Place.FIRST)
        edits.add_import(JAX, Place.AFTER_IMPORTS)
        edits.add_import(NNX, Place.AFTER_IMPORTS)
    if transformer.used_helper:  # the helper state's code reads `nnx` (and, flat, `jax`)
        edits.add_import(NNX, Place.AFTER_IMPORTS)
        if style == "flat-state":
            edits.add_import(JAX, Place.AFTER_IMPORTS)
            edits.add_import(STRUCT, Place.AFTER_IMPORTS)
    edits.remove_unused_training_imports()
    new = edits.apply(new)
    return render(new, texts=context.statement_texts), todos, new


_MODULE_CLASS_CALL = re.compile(r"\b([A-Za-z_]\w*)\.([A-Z]\w*)\(")


def _builds_sibling_models(text: str, path: str, context: RunContext) -> bool:
    """Whether a file without Linen builds a Linen model class of a sibling module
    (`model = models.ActorCritic(...)`, then `ppo_lib.train(model)`): a function of
    another file may initialize it (dataflow.py follows it there)."""
    if path.startswith("<"):
        return False
    for alias, cls in set(_MODULE_CLASS_CALL.findall(text)):
        if not re.search(r"^\s*(?:import\s+%s\b|from\s+\.*\s*import\s+.*\b%s\b)" % (alias, alias), text, re.M):
            continue
        file = context.local_module_file(path, alias)
        if file is not None and cls in summaries_of_file(file, context):
            return True
    return False


# Attribute and function names every change or TODO of `TrainingTransformer` starts from
# (`init`/`apply` of a model, `TrainState.create`, a state's `apply_fn`/`apply_gradients`/
# `replace`, gradients over `state.params`); see steps/.
_TRIGGER_WORDS = ("init", "apply", "apply_fn", "apply_gradients", "params", "create", "replace")


def _trigger_pattern(imports: ImportMap, rules, knows_train_state: bool) -> re.Pattern:
    """Code in which none of these names is written (as a whole word) is code the
    transformer cannot change or report anything in. A cheap text check that saves
    full-tree visits of files and top-level statements with nothing to convert."""
    words = set(_TRIGGER_WORDS)
    if knows_train_state:  # `s.params`, `s.step`, ... of any state-like name become NNX
        words.update(rules.state_attributes_eager)
        words.update(rules.state_attributes)
    # Names that qualify to an unsupported API or to the TrainState class (through any
    # import alias): the last part of each local spelling.
    for head, full in imports.aliases.items():
        for target in (*rules.unsupported, *rules.train_state_classes):
            if target == full or target.startswith(full + "."):
                local = head + target[len(full):]
                words.add(local.rpartition(".")[2])
    return re.compile(r"\b(?:%s)\b" % "|".join(map(re.escape, sorted(words))))


def _visit_statements(module: cst.Module, text: str, transformer: TrainingTransformer, triggers: re.Pattern, context: RunContext) -> tuple[cst.Module, list | None, list[int]]:
    """`module.visit(transformer)`, visiting only the top-level statements (and the
    statements of top-level classes) whose source mentions a trigger name; a skipped
    statement leaves the transformer as a visit would (it forgets the previous function's
    init results, see `TrainingTransformer.skipped`). Also returns the `ast` statements
    of each top-level statement (None if the two parsers do not line up) and, for each of
    `transformer.todos`, the index of the top-level statement it was found in."""
    if not splits_lines_like_ast(text):
        return module.visit(transformer), None, []
    try:
        tree = context.parse_ast(text)
    except (SyntaxError, ValueError):
        return module.visit(transformer), None, []
    lines = text.splitlines(keepends=True)
    spans = statement_spans(tree.body, module.body)
    if spans is None:
        return module.visit(transformer), None, []
    owners: list[int] = []
    body = _visit_body(module.body, spans, lines, transformer, triggers, top=True, owners=owners)
    return module.with_changes(body=body), spans, owners


def _visit_body(stmts, spans, lines, transformer: TrainingTransformer, triggers: re.Pattern, top: bool, owners: list[int] | None = None) -> list:
    body = []
    for index, (stmt, group) in enumerate(zip(stmts, spans, strict=False)):
        if top:
            owners.extend([index - 1] * (len(transformer.todos) - len(owners)))
        first = min([group[0].lineno, *(d.lineno for d in getattr(group[0], "decorator_list", ()))])
        if not transformer.may_change_unmentioned() and not triggers.search("".join(lines[first - 1 : group[-1].end_lineno])):
            transformer.skipped(any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for g in group for n in ast.walk(g)))
            body.append(stmt)
            continue
        if top and isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            # A class whose header (decorators, bases) names no trigger: only its members
            # that do are visited (the transformer has no hook for the class itself).
            inner = group[0].body
            header_end = min([inner[0].lineno, *(d.lineno for d in getattr(inner[0], "decorator_list", ()))]) - 1
            inner_spans = statement_spans(inner, stmt.body.body)
            if inner_spans is not None and header_end >= group[0].lineno and not triggers.search("".join(lines[first - 1 : header_end])):
                members = _visit_body(stmt.body.body, inner_spans, lines, transformer, triggers, top=False)
                body.append(stmt.with_changes(body=stmt.body.with_changes(body=members)))
                continue
        new = transformer.transform(stmt)
        if isinstance(new, cst.FlattenSentinel):
            body.extend(new.nodes)
        elif not isinstance(new, cst.RemovalSentinel):
            body.append(new)
    if top:
        owners.extend([len(stmts) - 1] * (len(transformer.todos) - len(owners)))
    return body


def _start_lines(module: cst.Module, spans, owners: list[int], todos, subclasses) -> dict[int, int]:
    """`lines.start_lines(module)` for the nodes the pass reports, rendering only the
    top-level statements that hold them (from `ast`'s line numbers); the whole module
    where that cannot answer for every one of them."""
    if spans is not None:
        indices = set(owners)
        indices.update(i for i, stmt in enumerate(module.body) if any(stmt is c for c in subclasses))
        starts = statement_starts(module.body, spans)
        positions = start_lines(module, {i: starts[i] for i in indices})
        if all(id(node) in positions for node, _, _ in todos) and all(id(c) in positions for c in subclasses):
            return positions
    return start_lines(module)


def _already_nnx(module: cst.Module) -> bool:
    """NNX code that keeps using Linen-era helpers (Flax's own lm1b_nnx port subclasses
    TrainState with a `graphdef` field) is not training code to convert."""
    imports = ImportMap(module)
    uses_nnx = any(q == "flax.nnx" or q.startswith("flax.nnx.") for q in imports.aliases.values())
    return uses_nnx and not imports.linen_aliases()


def _line_map(converted: str, original: str):
    """Line in the module rewrite's output -> line in the original file, so report lines
    point at what the user wrote (the class rewrite changes line counts above)."""
    matcher = difflib.SequenceMatcher(None, converted.splitlines(), original.splitlines(), autojunk=False)
    blocks = matcher.get_opcodes()

    def lookup(line: int) -> int:
        if line <= 0:
            return line
        for tag, a0, a1, b0, _b1 in blocks:
            if a0 < line <= a1 or (a0 == a1 and line == a0 + 1):
                return b0 + (line - 1 - a0) + 1 if tag == "equal" else b0 + 1
        return line

    return lookup


def _line(positions: dict[int, int], node) -> int:
    return positions.get(id(node), 0)  # 0: a node the pass created


def _train_state_subclasses(module: cst.Module, imports: ImportMap, rules) -> list[cst.ClassDef]:
    found = []
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef) and any(imports.qualify(b.value) in rules.train_state_classes for b in stmt.bases):
            found.append(stmt)
    return found


# TrainState's own fields: a subclass that declares one again is not converted.
_BASE_FIELDS = ("step", "apply_fn", "params", "tx", "opt_state")


def carried_fields(cls: cst.ClassDef, imports: ImportMap, rules) -> tuple[tuple[CarriedField, ...], list[str]]:
    """The fields of a Linen TrainState subclass that the emitted state carries (its own
    fields: an EMA, an RNG key, a counter, a `DynamicScale`; not `batch_stats`, which the
    model now holds), and what it cannot carry (methods, redeclared base fields,
    `struct.field` options other than `pytree_node=` and `default=`)."""
    fields, extra = [], []
    for member in cls.body.body:
        if isinstance(member, cst.FunctionDef):
            extra.append(f"method `{member.name.value}`")
            continue
        if not (isinstance(member, cst.SimpleStatementLine) and len(member.body) == 1):
            extra.append(f"statement `{render(member).strip().splitlines()[0]}`")
            continue
        small = member.body[0]
        if isinstance(small, cst.Pass) or (isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString))):
            continue
        if not (isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name)):
            extra.append(f"statement `{render(member).strip()}`")
            continue
        field = small.target.value
        annotation = render(small.annotation.annotation).strip()
        if rules.create_keywords.get(field) == "drop":
            continue  # model state (batch_stats): the NNX model holds it
        if field in _BASE_FIELDS:
            extra.append(f"field `{field}` declared again")
            continue
        value = small.value
        if value is None:
            fields.append(CarriedField(field, annotation=annotation))
        elif isinstance(value, cst.Call) and imports.qualify(value.func) == "flax.struct.field":
            keywords = {a.keyword.value: a.value for a in value.args if a.keyword is not None}
            pytree = keywords.pop("pytree_node", None)
            default = keywords.pop("default", None)
            if keywords or len(value.args) != len(keywords) + (pytree is not None) + (default is not None) or (
                    pytree is not None and not (isinstance(pytree, cst.Name) and pytree.value in ("True", "False"))):
                extra.append(f"field `{field}` (struct.field options)")
                continue
            fields.append(CarriedField(field, render(default).strip() if default is not None else None,
                                       static=isinstance(pytree, cst.Name) and pytree.value == "False", annotation=annotation))
        else:
            fields.append(CarriedField(field, render(value).strip(), annotation=annotation))
    return tuple(fields), extra


def _place_helper(module: cst.Module, subclasses, name: str, style: str, used: bool, path: str, lines: dict[str, int], apply_fn: bool = False, carried=None):
    """`carried`: class name -> `carried_fields` of that subclass."""
    todos = []
    indent = module.default_indent
    source = helper_source(style, name, indent, apply_fn)
    body = list(module.body)
    if subclasses:
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, cst.ClassDef) and stmt.name.value in {c.name.value for c in subclasses}):
                continue
            fields, extra = carried[stmt.name.value]
            source = helper_source(style, name, indent, apply_fn, fields)
            helper = cst.parse_statement(source, config=module.config_for_parsing).with_changes(leading_lines=stmt.leading_lines)
            if extra:
                why = f"custom TrainState {', '.join(extra)} of Linen class {stmt.name.value} not converted: carry them on the model or beside the state"
                helper = helper.with_changes(leading_lines=[*stmt.leading_lines, cst.EmptyLine(comment=cst.Comment(f"# {TODO_MARK}: {why}"))])
                todos.append(TodoSite(path, lines.get(stmt.name.value, 0), f"class {stmt.name.value}", why))
            body[i] = helper
        return module.with_changes(body=body), todos
    if not used or name in {s.name.value for s in body if isinstance(s, (cst.ClassDef, cst.FunctionDef))}:
        return module, todos
    for i, stmt in enumerate(body):
        if m.matches(stmt, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name(name))], value=m.Name(name))])):
            # `TrainState = train_state.TrainState` became `TrainState = TrainState`: the helper takes its place
            body[i] = cst.parse_statement(source, config=module.config_for_parsing).with_changes(leading_lines=stmt.leading_lines)
            break
        if name in names_in(stmt) and (not isinstance(stmt, cst.SimpleStatementLine) or _runs_at_import(stmt)):
            helper = cst.parse_statement(source, config=module.config_for_parsing).with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()] if i else [])
            body.insert(i, helper)
            if isinstance(stmt, cst.SimpleStatementLine):  # a line after a class: two blank lines
                body[i + 1] = stmt.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine(), *stmt.leading_lines])
            break
    return module.with_changes(body=body), todos


def _runs_at_import(stmt: cst.SimpleStatementLine) -> bool:
    """A module-level line that reads the name (`State = TrainState`, a notebook's
    `state = TrainState.create(model, tx)`): it needs the class defined above it."""
    return not any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def forward_constructor_arguments(module: cst.Module, found: dict[str, str]) -> tuple[cst.Module, bool]:
    """`def model(latents): return VAE(latents=latents)` -> the same with `**kwargs`
    forwarded, so `model(latents, in_features=..., rngs=...)` builds the NNX model."""
    changed = False
    body = []
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value in found and stmt.params.star_kwarg is None:
            target = factory_call(stmt)

            class Forward(FastTransformer):
                def leave_Call(self, original, updated):
                    if original is not target:  # noqa: B023 (used within its own iteration)
                        return updated
                    args = [*updated.args]
                    if args:
                        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    return updated.with_changes(args=[*args, cst.Arg(value=cst.Name("kwargs"), star="**")])

            params = stmt.params.with_changes(star_kwarg=cst.Param(name=cst.Name("kwargs")))
            stmt = stmt.with_changes(params=params, body=stmt.body.visit(Forward()))
            changed = True
        body.append(stmt)
    return module.with_changes(body=body), changed


def _module_reader(path: str, context: RunContext):
    """qualified module name -> (file, text) of a module beside `path`, or None."""
    def read(qualified: str):
        file = context.local_module_file(path, qualified)
        text = context.read(file) if file is not None else None
        return (file, text) if text is not None else None

    return read


def apply_training_pass(result, original: str, context: RunContext, style: str = DEFAULT_TRAIN_STYLE, external=None, tree: cst.Module | None = None,
                        pmap: str = DEFAULT_PMAP):
    """The module rewrite's `FileResult` for one file -> the same with the training pass
    applied (new text, extra TODO sites). `tree`: the module rewrite's output as a tree,
    if the caller has it. `pmap="jit"`: pmap programs become jit ones (data_parallel.py)."""
    if result.status == "failed":
        return result
    converted = result.new_text if result.new_text is not None else original
    try:
        new_text, todos, new_tree = _convert_training(original, converted, result.path, style, external, result.exports, tree, context)
        if pmap == "jit" and new_tree is not None and "pmap" in new_text:
            new_text, dp_todos, done = to_jit_data_parallel(new_text, style, result.path, _line_map(new_text, original),
                                                            _module_reader(result.path, context), new_tree)
            if done:
                new_text, todos = settle_training_todos(new_text, todos, load_training_rules().unsupported)
            todos = [*todos, *dp_todos]
    except Exception as exc:  # a bug or an unforeseen construct: keep the module rewrite's result
        why = f"training-code conversion failed ({type(exc).__name__}: {exc}); training code left as it was"
        result.todos = [*result.todos, TodoSite(result.path, 0, "training code", why)]
        return result
    if new_text == converted and not todos:
        return result
    # An output that Python does not parse is never written (a SyntaxError makes the file
    # `failed`); Python's own parser checks that in a fraction of a LibCST parse.
    ast.parse(new_text)
    # Leftover-Linen sites the module rewrite reported and this pass converted (nn.apply).
    still = ImportMap(new_tree).linen_aliases()
    result.todos = [t for t in result.todos if still or "Linen API" not in t.why]
    result.new_text = new_text
    result.old_text = original
    result.todos = [*result.todos, *todos]
    result.status = "changed" if new_text != original else "unchanged"
    return result
