"""Which names in a file are Linen model classes the rewrite converts, and the input-size
parameters their NNX constructors take (`in_features`, ...).

The answer comes from the module rewrite itself (its per-class `ClassSummary`), run on
this file and on the local modules the file imports (`import models`,
`from models import CNN`, `from . import models`). So a model defined in one file and
created in another gets the constructor the model file's rewrite emits, whichever file is
converted first. Within a CLI run the run-wide `index.ModuleIndex` is asked first. Other
files are read through the run context (run_context.py), which also keeps their summaries.
"""

from __future__ import annotations

import libcst as cst

from nnx_migrate.rewrite.class_pass import rewrite_classes
from nnx_migrate.rewrite.classes import ClassSummary
from nnx_migrate.rewrite.names import ImportMap, dotted
from nnx_migrate.rewrite.nnx_summaries import nnx_class_summaries
from nnx_migrate.rewrite.nodes import is_docstring
from nnx_migrate.rewrite.run_context import RunContext


def summaries_of(module: cst.Module, path: str, context: RunContext) -> dict[str, ClassSummary]:
    """Class name -> summary, for the Linen classes of one parsed (unconverted) file: the
    class pass's own analysis of it (the same rewrite as the file gets)."""
    text = module.code
    # NNX classes too: a file an earlier (partial) run converted already
    found = nnx_class_summaries(text)
    if "linen" in text:
        found.update(rewrite_classes(text, path, context)[0].exports or {})
    return with_factories(module, found) if found else {}


def with_factories(module: cst.Module, summaries: dict[str, ClassSummary]) -> dict[str, ClassSummary]:
    summaries = dict(summaries)
    for name, cls in factories(module, summaries).items():
        summaries[name] = summaries[cls]
    return summaries


def factories(module: cst.Module, summaries: dict[str, ClassSummary]) -> dict[str, str]:
    """Module-level functions that only build a model: `def model(latents): return
    VAE(latents=latents)` (or `m = VAE(...)` then `return m`) -> {"model": "VAE"}. The
    pass lets them forward the NNX constructor's extra arguments (`**kwargs`), so callers
    can treat them as the class."""
    found = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            call = factory_call(stmt)
            if call is not None and dotted(call.func) in summaries:
                found[stmt.name.value] = dotted(call.func)
    return found


def factory_call(func: cst.FunctionDef) -> cst.Call | None:
    """The one constructor call a factory function's result is."""
    body = [s for s in func.body.body if not is_docstring(s)]
    if not body or not all(isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1 for s in body):
        return None
    last = body[-1].body[0]
    if not isinstance(last, cst.Return):
        return None
    if len(body) == 1 and isinstance(last.value, cst.Call):
        return last.value
    if len(body) == 2 and isinstance(last.value, cst.Name):
        first = body[0].body[0]
        if isinstance(first, cst.Assign) and len(first.targets) == 1 and isinstance(first.targets[0].target, cst.Name) \
                and first.targets[0].target.value == last.value.value and isinstance(first.value, cst.Call):
            return first.value
    return None


def summaries_of_file(file: str, context: RunContext) -> dict[str, ClassSummary]:
    """Class name -> summary for another file of the program (`summaries_of` of its text),
    once per file version in a run."""
    version = context.files.version(file)
    if version is None:
        return {}
    return context.cached("summaries of files", (file, version), lambda: _summaries_of_file(file, context))


def _summaries_of_file(file: str, context: RunContext) -> dict[str, ClassSummary]:
    text = context.read(file)
    if text is None:
        return {}
    found = nnx_class_summaries(text)  # converted already by an earlier (partial) run
    if not found and "linen" not in text:
        return {}
    try:
        module = context.parse(text)
    except cst.ParserSyntaxError:
        return {}
    if "linen" in text:
        found.update(rewrite_classes(text, file, context)[0].exports)
    return with_factories(module, found) if found else {}


class ModelIndex:
    """Resolves an expression such as `CNN`, `models.CNN` or `m.Encoder` to a summary."""

    def __init__(self, module: cst.Module, path: str, own: dict[str, ClassSummary] | None = None, external=None, context: RunContext | None = None):
        self.path = path
        self.external = external  # the run's index.ModuleIndex, when the CLI has one
        self.context = context if context is not None else RunContext()
        self.imports = ImportMap(module)
        self.own = own if own is not None else summaries_of(module, path, self.context)
        # functions that only build a model of another file (`def get_model(c): return
        # models.Seq2seq(...)`): the local ones are in `own` already
        self._factory_calls = {s.name.value: call for s in module.body if isinstance(s, cst.FunctionDef) and s.name.value not in self.own
                               and (call := factory_call(s)) is not None and dotted(call.func) != s.name.value}

    def may_decide_mode(self) -> bool:
        """Whether a model this file can reach tells training from evaluation by its mode
        (Linen's `is_mutable_collection('batch_stats')`) rather than by a call argument:
        one of this file's, or any of the run's (an over-approximation: the pass cannot
        always tell which model an `apply_fn` belongs to)."""
        if any(s.decides_mode for s in self.own.values()):
            return True
        return bool(self.external) and any(s.decides_mode for entries in self.external.by_name.values() for _, s in entries)

    def imported_factories(self) -> dict[str, str]:
        """This file's functions that only build a model class of another file."""
        return {name: dotted(call.func) for name, call in self._factory_calls.items() if self.lookup(call.func) is not None}

    def lookup(self, func: cst.BaseExpression) -> ClassSummary | None:
        name = dotted(func)
        if name is None:
            return None
        if name in self.own:
            return self.own[name]
        if name in self._factory_calls:
            return self.lookup(self._factory_calls[name].func)
        qualified = self.imports.qualify(func)
        if not qualified or "." not in qualified:
            return None
        if self.external:
            found = self.external.lookup(qualified)
            if found is not None:
                return found
        module_name, _, cls = qualified.rpartition(".")
        file = self.context.local_module_file(self.path, module_name)
        if file is None:
            return None
        return summaries_of_file(file, self.context).get(cls)

