"""Summaries of module classes that are NNX already, for the run's class index.

A run over a tree that an earlier run converted in part (it was stopped, or the user
converted the model files first) finds the models as NNX classes: without them in the
index, a training file that builds one would keep its Linen `init`/`apply`. The rewrite
emits constructors by a fixed contract (`sizes.size_param_name`): the fields in order,
then the input sizes, `in_features` for the first `__call__` argument and
`<arg>_in_features` for another argument `arg`, then `rngs`. This reads that contract
back from the class, with Python's own parser (the file is parsed by LibCST already,
for the rewrite; this costs a fraction of that).
"""

from __future__ import annotations

import ast

from nnx_migrate.rewrite.classes import ClassSummary, Field

_NNX_MODULE = {"nnx.Module", "flax.nnx.Module"}


def nnx_class_summaries(text: str) -> dict[str, ClassSummary]:
    """Class name -> summary for each module-level NNX module class whose constructor
    takes `rngs` (the ones a training file builds with `rngs=`)."""
    if "nnx" not in text or "rngs" not in text:
        return {}
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    found: dict[str, ClassSummary] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {ast.unparse(b) for b in node.bases}
        if not (bases & _NNX_MODULE or bases & found.keys()):
            continue
        summary = _summary(node)
        if summary is not None:
            found[node.name] = summary
    return found


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def _summary(cls: ast.ClassDef) -> ClassSummary | None:
    init = _method(cls, "__init__")
    if init is None:
        return None
    params = [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]
    names = [p.arg for p in params]
    if "rngs" not in names:
        return None
    call = _method(cls, "__call__")
    call_args = [a.arg for a in call.args.args[1:]] if call is not None else []
    size_args = {"in_features": 0} if call_args else {}
    size_args.update({f"{a}_in_features": i for i, a in enumerate(call_args) if i > 0})
    defaults = _defaults(init)
    fields, size_params, optional = [], [], []
    for param in params[1:] if params and params[0].arg == "self" else params:
        if param.arg == "rngs":
            continue
        default = defaults.get(param.arg)
        if param.arg in size_args:
            size_params.append(param.arg)
            if default == "None":
                optional.append(param.arg)
            continue
        annotation = ast.unparse(param.annotation) if param.annotation is not None else ""
        fields.append(Field(param.arg, annotation, default))
    return ClassSummary(
        name=cls.name,
        fields=fields,
        size_params=size_params,
        size_param_args={p: size_args[p] for p in size_params},
        out_size=None,
        optional_size_params=tuple(optional),
        size_param_names={p: call_args[size_args[p]] for p in size_params},
    )


def _defaults(init: ast.FunctionDef) -> dict[str, str]:
    args = init.args
    positional = [*args.posonlyargs, *args.args]
    found = {p.arg: ast.unparse(d) for p, d in zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=False)}
    found.update({p.arg: ast.unparse(d) for p, d in zip(args.kwonlyargs, args.kw_defaults, strict=False) if d is not None})
    return found
