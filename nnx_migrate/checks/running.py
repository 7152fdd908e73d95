"""Runs one emitted check: the Linen original against its NNX conversion, through
`nnx_migrate.equivalence.compare`. Imports jax; used by the emitted tests and by
`nnx-migrate check --from`.

Where the example comes from, in order: the case itself (an init site of the run's code),
the inputs a parent with such an example passes the class (recorded by running the
parent's Linen `init` abstractly, `jax.eval_shape` under `nn.intercept_methods`), then the
examples file. No example: the check fails, naming the class and the line to add.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nnx_migrate.checks.examples import example_line, read_examples


@dataclass
class Outcome:
    case_id: str
    verdict: str  # "equivalent" | "not equivalent" | "no example" | "could not run"
    message: str
    max_abs_diff: float | None = None
    first_divergence: str | None = None
    example: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "equivalent"


def _spec(value) -> str:
    return f"{value.dtype}[{','.join(map(str, value.shape))}]"


def _load_pair(linen_spec: str, nnx_spec: str):
    """Both classes; the modules the Linen file's own imports bring in are dropped from
    sys.modules before the NNX file is loaded, so that a converted file importing its
    neighbour (`from layers import Block`) gets the converted neighbour."""
    from nnx_migrate.equivalence.loading import load_target

    before = set(sys.modules)
    linen_class = load_target(linen_spec)
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None)
        if module_file and not name.startswith("_nnx_migrate_check_") and "site-packages" not in module_file:
            del sys.modules[name]
    before = set(sys.modules)
    nnx_class = load_target(nnx_spec)
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None)
        if module_file and not name.startswith("_nnx_migrate_check_") and "site-packages" not in module_file:
            del sys.modules[name]
    return linen_class, nnx_class


def _class_key(cls) -> tuple[str, str] | None:
    try:
        return cls.__name__, os.path.realpath(inspect.getsourcefile(cls))
    except (TypeError, OSError):
        return None


# (parent class, kwargs, inputs, call) -> {(class name, real source path): (child, args, kwargs)}
_TRACES: dict = {}


def _first_calls(module, inputs, call) -> dict:
    """The first `__call__` of every class while `module` initialises abstractly:
    {(class name, real source path): (child, args, kwargs)}; {} when init fails."""
    import flax.linen as nn
    import jax

    seen: dict = {}

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__":
            key = _class_key(type(context.module))
            if key is not None and key not in seen:
                seen[key] = (context.module, args, kwargs)
        return next_fun(*args, **kwargs)

    try:
        with nn.intercept_methods(record):
            jax.eval_shape(lambda: module.init(jax.random.key(0), *inputs, **call))
    except Exception:
        return {}
    return seen


def _from_parent(case: dict, cases: list[dict], base: Path):
    """(linen module, input arrays' specs, call kwargs, where) from the first parent example
    that calls this class, or None."""
    from nnx_migrate.equivalence.example_inputs import make_input
    from nnx_migrate.equivalence.loading import load_target

    source = str(base / case["linen"].rpartition("::")[0])  # the file the Linen class is loaded from
    name = case["source"].rpartition("::")[2]
    for parent in cases:
        if parent is case or not parent.get("inputs"):
            continue
        trace_key = (str(base), parent["id"])
        if trace_key not in _TRACES:
            try:
                parent_class = load_target(str(base / parent["linen"]))
                module = parent_class(**parent["kwargs"])
            except Exception:
                _TRACES[trace_key] = {}
                continue
            _TRACES[trace_key] = _first_calls(
                module, [make_input(spec, 100 + i) for i, spec in enumerate(parent["inputs"])], parent.get("call", {}))
        seen = _TRACES[trace_key].get((name, os.path.realpath(source)))
        if seen is None:
            continue
        child, args, kwargs = seen
        if not all(hasattr(a, "shape") and hasattr(a, "dtype") for a in args):
            continue
        if any(hasattr(v, "shape") for v in kwargs.values()):
            continue
        fields = {f.name: getattr(child, f.name) for f in dataclasses.fields(child) if f.init and f.name not in ("parent", "name")}
        try:
            linen_module = type(child)(**fields)
        except Exception:
            continue
        return linen_module, [_spec(a) for a in args], dict(kwargs), f"the inputs {parent['id']} passes it"
    return None


def run_case(case: dict, cases: list[dict] | None = None, base: Path | str = ".", examples: Path | str | None = None) -> Outcome:
    """Compares one case; paths in it are relative to `base` (the checks file's folder).
    The example is looked up first, so that a case that could not run still says where
    its example came from."""
    base = Path(base)
    from nnx_migrate.equivalence.errors import EquivalenceSetupError

    examples = Path(base, examples) if examples else None
    source_path, _, name = case["source"].rpartition("::")
    try:
        example = _example(case, cases or [case], base, examples)
    except EquivalenceSetupError as exc:
        return Outcome(case["id"], "could not run", f"{case['id']}: could not run: {exc}")
    if example is None:
        line = example_line(examples or base / "nnx-examples.toml", base / source_path, name)
        return Outcome(case["id"], "no example",
                       f"{case['id']}: no example inputs for {name}: the code builds and inits it nowhere with "
                       f"written shapes; add this line to {examples or base / 'nnx-examples.toml'}:\n{line}")
    try:
        return _run(case, base, name, *example)
    except EquivalenceSetupError as exc:
        return Outcome(case["id"], "could not run", f"{case['id']}: could not run: {exc}", example=example[-1])


def _example(case: dict, cases: list[dict], base: Path, examples: Path | None):
    """(Linen fields, input specs, call keywords, where) or None."""
    if case.get("inputs"):
        return case["kwargs"], case["inputs"], case.get("call", {}), case.get("example", "")
    derived = _from_parent(case, cases, base)
    if derived is not None:
        child, inputs, call, where = derived
        fields = {f.name: getattr(child, f.name) for f in dataclasses.fields(child) if f.init and f.name not in ("parent", "name")}
        return fields, inputs, call, where
    source_path, _, name = case["source"].rpartition("::")
    entry = read_examples(examples).get((os.path.normpath((base / source_path).resolve()), name)) if examples else None
    if entry is None:
        return None
    return entry["kwargs"], entry["inputs"], entry["call"], os.path.relpath(examples, base).replace(os.sep, "/")


def _run(case: dict, base: Path, name: str, kwargs: dict, inputs: list, call: dict, where: str) -> Outcome:
    from nnx_migrate.equivalence import compare
    from nnx_migrate.equivalence.errors import EquivalenceSetupError
    from nnx_migrate.equivalence.example_inputs import make_input

    linen_class, nnx_class = _load_pair(str(base / case["linen"]), str(base / case["nnx"]))
    try:
        linen_module = linen_class(**kwargs)
    except Exception as exc:
        raise EquivalenceSetupError(f"{name}({kwargs}) failed: {type(exc).__name__}: {exc}") from exc
    arrays = [make_input(spec, 100 + i) for i, spec in enumerate(inputs)]
    result = compare(linen_module, nnx_class, *arrays, call_kwargs=call or None)
    first = result.divergences[0] if result.divergences else None
    first_text = None if first is None else f"{first.linen_path} (last agreeing: {first.last_agreeing or '-'})"
    verdict = "equivalent" if result.ok else "not equivalent"
    header = f"{case['id']}: {verdict} on {', '.join(inputs)} (example: {where})"
    if first_text:
        header += f"; first diverging submodule: {first_text}"
    return Outcome(case["id"], verdict, f"{header}\n{result}", result.max_abs_diff, first_text, where)


def load_checks_file(path: Path) -> tuple[list[dict], str | None]:
    """The CASES and EXAMPLES literals of an emitted checks file, read without running it."""
    import ast

    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    values = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            if stmt.targets[0].id in ("CASES", "EXAMPLES"):
                values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    if "CASES" not in values:
        raise ValueError(f"{path}: no CASES list (not a file written by `nnx-migrate rewrite --emit-checks`)")
    return values["CASES"], values.get("EXAMPLES")


def run_checks_file(path: Path) -> list[Outcome]:
    cases, examples = load_checks_file(path)
    base = Path(path).resolve().parent
    return [run_case(case, cases, base, examples) for case in cases]
