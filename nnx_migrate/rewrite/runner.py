"""Many files: read, rewrite (in parallel), collect results in a stable order.

An own process pool rather than LibCST's `parallel_exec_transform_with_prettyprint`:
that runner prints diffs and returns only counts, while the command needs each file's
result (new text, per-class outcome, TODO sites) for the report, `--output-dir` and exit
codes. Workers get paths, not texts, so only results cross process boundaries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from nnx_migrate.files import SourceError, read_source
from nnx_migrate.rewrite.index import ModuleIndex
from nnx_migrate.rewrite.nnx_summaries import nnx_class_summaries
from nnx_migrate.rewrite.report import FileResult
from nnx_migrate.rewrite.run_context import RunContext
from nnx_migrate.rewrite.training.data_parallel import DEFAULT_PMAP
from nnx_migrate.rewrite.training.run import DEFAULT_TRAIN_STYLE
from nnx_migrate.rewrite.transform import rewrite_source
from nnx_migrate.run_files.collections import rare_collections, worker_start


def rewrite_file(path: str, external: ModuleIndex | None = None, train_style: str = DEFAULT_TRAIN_STYLE, context: RunContext | None = None,
                 pmap: str = DEFAULT_PMAP) -> FileResult:
    """One file read from disk; `context`: the run's (a run of this file alone, reading
    its neighbours from disk, by default)."""
    if context is None:
        with RunContext.on_disk() as context:
            return rewrite_file(path, external, train_style, context, pmap)
    try:
        source = read_source(Path(path))
    except SourceError as exc:
        return FileResult(path=path, status="failed", error=str(exc))
    try:
        result = rewrite_source(source.text, path, external, train_style, context=context, pmap=pmap)
    except Exception as exc:  # never let one file stop a repository run
        return FileResult(path=path, status="failed", old_text=source.text, error=f"internal error: {type(exc).__name__}: {exc}")
    result.encoding = source.encoding
    # Classes that are NNX already (an earlier, partial run) are known to the run's index
    # like converted ones, so a re-run reaches what one run would.
    already = nnx_class_summaries(source.text)
    if already:
        result.exports = {**already, **result.exports}
    return result


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


# A file is rewritten again when a module class it imports from another file of the run
# changed its constructor; chains of imports settle in a few rounds.
MAX_ROUNDS = 4


# A pool worker's share of the run: the pool is made for one run and shut down with it,
# so the context a worker makes when it starts lives exactly as long as the run.
_worker_context: RunContext | None = None


def _worker_start() -> None:
    global _worker_context
    worker_start()
    _worker_context = RunContext.on_disk()


def _rewrite_in_worker(path: str, external: ModuleIndex | None, train_style: str, pmap: str = DEFAULT_PMAP) -> FileResult:
    return rewrite_file(path, external, train_style, _worker_context, pmap)


def rewrite_files(paths: Iterable[Path], jobs: int = 1, advance: Callable[[], None] = lambda: None, train_style: str = DEFAULT_TRAIN_STYLE,
                  pmap: str = DEFAULT_PMAP) -> list[FileResult]:
    """Rewrites every file; files that build module classes defined in other files of the
    run are rewritten again with those classes' constructors known (`ModuleIndex`)."""
    with rare_collections():
        return _rewrite_files(paths, jobs, advance, (train_style, pmap))


def _rewrite_files(paths: Iterable[Path], jobs: int, advance: Callable[[], None], options: tuple[str, str]) -> list[FileResult]:
    """`options`: (train style, pmap mode)."""
    names = [str(p) for p in paths]
    # the caches serve the rounds of this run, never a later run; closed when it ends
    with RunContext.on_disk() as context:
        return _rewrite_rounds(names, context, jobs, advance, options)


def _rewrite_rounds(names: list[str], context: RunContext, jobs: int, advance: Callable[[], None], options: tuple[str, str]) -> list[FileResult]:
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start) if jobs > 1 and len(names) > 1 else None
    try:
        results = dict(zip(names, _map(pool, context, names, None, jobs, advance, options), strict=False))
        index = _index(results.values())
        todo = [r.path for r in results.values() if _depends_on(r, index)]
        for _ in range(MAX_ROUNDS - 1):
            if not todo:
                break
            before = {name: (results[name].exports, results[name].model_attributes) for name in todo}
            for result in _map(pool, context, todo, index, jobs, lambda: None, options):
                results[result.path] = result
            index = _index(results.values())
            changed = {name for name in todo if (results[name].exports, results[name].model_attributes) != before[name]}
            if not changed:
                break
            todo = [r.path for r in results.values() if r.path not in changed and _depends_on(r, index)]
    finally:
        if pool is not None:
            pool.shutdown()
    return [results[name] for name in names]


def _index(results) -> ModuleIndex:
    index = ModuleIndex()
    for result in results:
        if result.exports:
            index.add(result.path, result.exports)
        if result.model_attributes:
            index.add_attributes(result.path, result.model_attributes)
    return index


def _depends_on(result: FileResult, index: ModuleIndex) -> bool:
    # `from pkg import Block` names a class of the run; `from pkg import layers` a module
    # whose classes the file reaches as `layers.Block` (a file that names none of them
    # as `.Block` is not read again). A file the class pass did not open (no Linen
    # import) is asked by its import lines.
    imported = result.imported or _imports_of_text(result.old_text or "")
    if any(index.lookup(q) is not None or index.model_attributes(q) is not None for q in imported):
        return True
    text = result.old_text or ""
    return any(f".{name}" in text for q in imported
               for name in index.classes_of_module(q) | index.model_holders_of_module(q))


_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+\(?([\w ,\t]+)|import[ \t]+([\w., \t]+))", re.M)
_MODEL_API = (".init(", ".apply(", ".init,", ".apply,", ".apply)", ".tabulate(")


def _imports_of_text(text: str) -> set[str]:
    """What a file the class pass did not open (no Linen import) imports, from its text:
    such a file still calls `init`/`apply` on models of other files of the run."""
    if not any(marker in text for marker in _MODEL_API):
        return set()
    found = set()
    for package, names, plain in _IMPORT_LINE.findall(text):
        if plain:
            found.update(part.split(" as ")[0].strip() for part in plain.split(","))
        else:
            found.update(f"{package}.{part.split(' as ')[0].strip()}" for part in names.split(",") if part.strip())
    return {q for q in found if q and not q.startswith(("flax", "jax", "numpy", "optax"))}


def _map(pool, context: RunContext, names: list[str], index: ModuleIndex | None, jobs: int, advance, options: tuple[str, str]) -> list[FileResult]:
    """Each file's result, in order: here with the run's `context`, or in the pool's
    workers (each with its own context for the run)."""
    results: list[FileResult] = []
    if pool is None:
        for name in names:
            results.append(rewrite_file(name, index, options[0], context, options[1]))
            advance()
        return results
    chunk = max(1, min(16, len(names) // (jobs * 4) or 1))
    for result in pool.map(_rewrite_in_worker, names, [index] * len(names), [options[0]] * len(names), [options[1]] * len(names), chunksize=chunk):
        results.append(result)
        advance()
    return results
