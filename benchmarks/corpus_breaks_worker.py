"""The subprocess of `benchmarks/corpus_breaks.py` for one package: imports the Linen
originals and the converted copies as the package's modules, builds each class through
the equivalence harness on its example and classifies what happens (see that script)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import signal
import sys
import traceback
import types
from pathlib import Path

MARKER = "TODO(nnx-migrate)"
CLASS_SECONDS = 300
# inputs tried, in order, for every required positional input of `__call__`
_CANDIDATES = [(2, 4), (2, 3, 4), (2, 4, 4, 4), ("int", (2, 3), 4), (4,), (3, 4)]


def module_names(root: Path, rel: str) -> list[tuple[Path, str]]:
    """Ways to import the file `rel` under `root`, as (folder to put on sys.path, dotted
    module name), most natural first: the name through every enclosing folder that has an
    __init__.py; where that chain ends at `root` itself, also `root` as a namespace package
    (a corpus folder holding part of a package, imported by its own name). A file in a
    folder with no __init__.py that uses relative imports is imported as a namespace
    module of `root`; other such files are loaded alone (None)."""
    path = root / rel
    parts = [path.stem] if path.stem != "__init__" else []
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder != root.parent:
        parts.insert(0, folder.name)
        folder = folder.parent
    if folder == path.parent:
        if not any(line.startswith("from .") for line in path.read_text(errors="replace").splitlines()):
            return [(folder, None)]
        parts = list(Path(rel).with_suffix("").parts)
        folder = root
    ways = [(folder, ".".join(parts))]
    if folder == root and root.name.isidentifier():
        ways.append((root.parent, ".".join([root.name, *parts])))
    return ways


def _under(module, root: str) -> bool:
    search = getattr(module, "__path__", None)
    try:
        search = list(search or [])
    except KeyError:  # a namespace package whose parent is already forgotten
        search = list(getattr(search, "_path", []))
    paths = [getattr(module, "__file__", None) or "", *search]
    return any(str(p).startswith(root) for p in paths)


def _forget(root: Path) -> None:
    for key, module in list(sys.modules.items()):
        if module is not None and _under(module, str(root)) and not key.startswith("_breaks_"):
            del sys.modules[key]


def _bare_parents(folder: Path, name: str) -> None:
    """Registers the parent packages of `name` without running their __init__.py (which
    often imports the whole package and its optional dependencies)."""
    parts = name.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(folder.joinpath(*parts[:depth]))]
            module.__package__ = package
            sys.modules[package] = module


def import_file(root: Path, rel: str):
    """The module of `rel`, importing its package as the package's own code does; raises
    the last way's exception when no way works."""
    last = None
    for folder, name in module_names(root, rel):
        for bare in (False, True):
            if name is None and bare:
                continue
            sys.path.insert(0, str(folder))
            try:
                if name is None:
                    from nnx_migrate.equivalence.loading import load_python_file

                    module = load_python_file(root / rel, f"_breaks_{abs(hash(str(root / rel)))}")
                else:
                    if bare:
                        _bare_parents(folder, name)
                    module = importlib.import_module(name)
                return module
            except Exception as exc:  # noqa: BLE001 - the next way may work
                last = exc
            finally:
                sys.path.remove(str(folder))
                _forget(root)
    raise last


def import_all(root: Path, rels: list[str]) -> dict[str, object]:
    """{rel: module or the exception importing it}; afterwards the modules under `root`
    are gone from sys.modules (the objects live on), so the other tree can be imported by
    the same names."""
    loaded: dict[str, object] = {}
    for rel in rels:
        try:
            loaded[rel] = import_file(root, rel)
        except Exception as exc:  # noqa: BLE001 - a missing dependency, a syntax error: counted
            loaded[rel] = exc
    return loaded


def _message(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).splitlines()[0] if str(cause) else ""
    return f"{type(cause).__name__}: {text}"[:300]


# --- examples -------------------------------------------------------------------------


def _field_value(field: dataclasses.Field):
    text = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", repr(field.type))
    text = text.replace("typing.", "")
    if "Optional" in text or "None" in text:
        return None
    if text in ("int",):
        return 4
    if text in ("float",):
        return 0.5
    if text in ("bool",):
        return False
    inner = text.split("[", 1)[1].rstrip("]") if "[" in text else ""
    if text.split("[")[0] in ("Tuple", "tuple", "Sequence", "List", "list", "Iterable") and inner.split(",")[0].strip() == "int":
        return (2, 2) if text.lower().startswith("tuple") else [4, 4]
    raise LookupError(f"required field {field.name}: {text}")


def probe_fields(cls) -> dict:
    fields = {}
    for field in dataclasses.fields(cls):
        if field.name in ("parent", "name") or not field.init:
            continue
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            fields[field.name] = _field_value(field)
    return fields


def _make(spec, key):
    import jax
    import jax.numpy as jnp

    if spec[0] == "int":
        return jax.random.randint(key, spec[1], 0, spec[2])
    return jax.random.normal(key, spec, jnp.float32)


def probe_inputs(instance) -> list | None:
    """Inputs on which Linen's own init runs (abstractly), or None: every required
    positional input gets the same candidate (a node-and-adjacency pair gets (2, 4) twice
    and fails, a token-and-mask pair works)."""
    import inspect

    import jax

    from nnx_migrate.equivalence.mode_flags import TRAIN_FLAGS, eval_and_train_kwargs

    method = type(instance).__call__
    required = [p for p in list(inspect.signature(method).parameters.values())[1:]
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
                and p.name not in TRAIN_FLAGS]
    kwargs = eval_and_train_kwargs(method, {}, None)[0]
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    for spec in _CANDIDATES:
        inputs = [_make(spec, jax.random.key(i)) for i in range(len(required))]
        try:
            with _time_limit(30):
                jax.eval_shape(lambda *xs: instance.init(rngs, *xs, **kwargs), *inputs)
        except BaseException:  # noqa: BLE001 - Linen does not run on this candidate
            continue
        return inputs
    return None


# --- locating a break -------------------------------------------------------------------


def converted_frames(exc: BaseException, root: str) -> list:
    """Frames in converted files of the most original exception in `exc`'s chain that has
    any, innermost last."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for link in reversed(chain):
        frames = [f for f in traceback.extract_tb(link.__traceback__) if f.filename.startswith(root)]
        if frames:
            return frames
    return []


def is_marked(path: str, line: int) -> bool:
    lines = Path(path).read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if not node.lineno <= line <= (node.end_lineno or node.lineno):
            continue
        first = node.lineno
        while first > 1 and lines[first - 2].strip().startswith("#"):
            first -= 1
        # the statement's own lines up to the reached line, and the comments above it
        if any(MARKER in text for text in lines[first - 1: line]):
            return True
    return False


def classify(exc: BaseException, converted_root: str) -> tuple[str, str]:
    frames = converted_frames(exc, converted_root)
    message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    if not frames:
        return "harness", message
    inner = frames[-1]
    where = f"{Path(inner.filename).relative_to(converted_root)}:{inner.lineno}"
    if is_marked(inner.filename, inner.lineno):
        return "reported", f"{where}: {message}"
    for frame in reversed(frames[:-1]):
        if is_marked(frame.filename, frame.lineno):
            caller = f"{Path(frame.filename).relative_to(converted_root)}:{frame.lineno}"
            return "reported", f"{where} (caller's TODO at {caller}): {message}"
    return "unreported", f"{where}: {message}"


# --- one class ----------------------------------------------------------------------------


class _Timeout(Exception):
    pass


class _time_limit:
    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        signal.alarm(self.seconds)

    def _fire(self, *_):
        raise _Timeout(f"over {self.seconds} s")

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def build_one(entry: dict, linen_mod, nnx_mod, converted_root: str, examples: dict) -> tuple[str, str]:
    import jax

    from nnx_migrate.equivalence import compare

    name = entry["name"]
    linen_cls, nnx_cls = getattr(linen_mod, name, None), getattr(nnx_mod, name, None)
    if linen_cls is None or nnx_cls is None:
        return "not_runnable", "the class is not a module-level name of its file"
    example = examples.get(entry["key"])
    try:
        if example is not None:
            from corpus import _input

            keys = jax.random.split(jax.random.key(0), len(example["inputs"]))
            inputs = [_input(s, k) for s, k in zip(example["inputs"], keys, strict=True)]
            instance = linen_cls(**example["fields"](linen_mod))
            call_kwargs = example.get("call_kwargs")
        else:
            instance = linen_cls(**probe_fields(linen_cls))
            inputs = probe_inputs(instance)
            call_kwargs = None
            if inputs is None:
                return "no_example", "Linen's init runs on none of the probed inputs"
    except Exception as exc:  # noqa: BLE001
        return "no_example", f"{type(exc).__name__}: {exc}"[:200]
    try:
        with _time_limit(CLASS_SECONDS):
            # probed examples run the inference pass only (a break shows in the construction
            # and the call); hand-written examples get the whole proof
            result = compare(instance, nnx_cls, *inputs, call_kwargs=call_kwargs, gradients=example is not None,
                             train_kwargs="auto" if example is not None else None)
    except BaseException as exc:  # noqa: BLE001 - every exception is the measurement
        if isinstance(exc, KeyboardInterrupt):
            raise
        from nnx_migrate.equivalence.errors import EquivalenceSetupError

        outcome, detail = classify(exc, converted_root)
        if "_Timeout" in detail:
            return "timeout", detail  # a loaded machine, not the code: counted apart
        if outcome == "harness" and isinstance(exc, EquivalenceSetupError) and "Linen" in str(exc).split(":")[0]:
            return "no_example", detail  # Linen itself did not run on the example
        if outcome == "harness" and "no value for required argument" in str(exc):
            # the harness's size solver swallows the constructor's own exceptions: build it
            # once more abstractly, with stand-in sizes, to see whether the constructor breaks
            hidden = _constructor_exception(instance, nnx_cls, inputs)
            if hidden is not None:
                hidden_outcome, hidden_detail = classify(hidden, converted_root)
                if hidden_outcome != "harness":
                    return hidden_outcome, f"with stand-in sizes: {hidden_detail}"
        return outcome, detail
    if result.ok:
        return "proven", f"max |diff| {result.max_abs_diff:.2g}"
    failed = [f"{c.name}: max |diff| {c.max_abs_diff:.2g}" for c in result.failed_checks]
    return "differs", "; ".join(failed + result.weight_map.problems()[:2])[:300]


def _constructor_exception(instance, nnx_cls, inputs) -> BaseException | None:
    from flax import nnx

    from nnx_migrate.equivalence import construction

    fields = construction.linen_field_values(instance)
    offered = {**fields, **construction.input_size_arguments(type(instance).__call__, inputs)}
    parameters = construction.inspect.signature(nnx_cls.__init__).parameters
    kwargs = {k: v for k, v in offered.items() if k in parameters}
    stand_in = {name: 720720 * (i + 2) for i, name in enumerate(construction.missing_arguments(nnx_cls, kwargs))}
    try:
        with _time_limit(60):
            nnx.eval_shape(lambda: nnx_cls(**kwargs, **stand_in, rngs=nnx.Rngs(0)))
    except Exception as exc:  # noqa: BLE001 - the measurement
        return exc
    return None


def work(job_path: Path, answer_path: Path) -> None:
    job = json.loads(job_path.read_text())
    sys.path.insert(0, str(Path(__file__).parent))
    from corpus_examples import EXAMPLES

    original, converted = Path(job["original"]), Path(job["converted"])
    rels = sorted({c["rel"] for c in job["classes"]})
    linen = import_all(original, rels)
    nnx = import_all(converted, rels)
    rows = []
    for entry in job["classes"]:
        rel = entry["rel"]
        if isinstance(linen[rel], Exception):
            rows.append({**entry, "outcome": "not_runnable", "detail": _message(linen[rel])})
        elif isinstance(nnx[rel], Exception):
            # the original imports here, its conversion does not: a break of the converted file
            outcome, detail = classify(nnx[rel], str(converted))
            rows.append({**entry, "outcome": "unreported" if outcome == "harness" else outcome,
                         "detail": f"importing the converted file: {detail}"})
        else:
            outcome, detail = build_one(entry, linen[rel], nnx[rel], str(converted), EXAMPLES)
            rows.append({**entry, "outcome": outcome, "detail": detail})
        answer_path.write_text(json.dumps(rows))
    answer_path.write_text(json.dumps(rows))

