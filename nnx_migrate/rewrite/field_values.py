"""What the file's constructions pass to fields that have no default.

A "ModuleDef" field without a default (`conv: ModuleDef`, `block_cls: ModuleDef`) is set
by whoever builds the module: a parent's compact or setup body (`Block(conv=conv)(x)`,
through locals bound to `partial(...)`, the parent's own fields and their defaults, its
fields without a default in turn), or a module-level `functools.partial(Class, field=...)`
binding. When every such construction in the file passes the same known value (a Linen
layer class or partials of it, a function, converted module classes), the field converts
as if that value were its default; anything else (another value, a value the tool cannot
follow, a construction through `*args`/`**kwargs`) leaves the field unknown.

This is a pre-pass over the file's syntax: it runs before any class is converted, since a
child class is converted before the parents that build it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from nnx_migrate.rewrite.names import normalize_linen
from nnx_migrate.rewrite.nodes import self_attr
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.visitors import FastVisitor


@dataclass
class Passed:
    """One value passed to a field, as far as it resolves."""

    kind: str  # "layer" (a Linen layer class) | "class" (a Linen module class of the file) | "function" | "unknown"
    key: str = ""  # qualified layer / function name, or the class name
    base: str = ""  # the class or function as written in the file
    presets: dict[str, str] = field(default_factory=dict)  # partial keywords (source)
    call_time: frozenset = frozenset()  # presets the layer also takes at call time, set from non-literal values


@dataclass
class Inferred:
    """The value every construction passes to one field."""

    kind: str
    base: str  # source of the common class / function (for "class": the first class)
    classes: tuple[str, ...] = ()  # "class": every class bound
    presets: dict[str, str] = field(default_factory=dict)  # keywords every construction presets alike (literals)
    call_time: frozenset = frozenset()  # call-time keywords some construction sets from call arguments
    key: str = ""  # the qualified layer or function name

    def key_in(self, names) -> bool:
        """(functions: every one passed)"""
        return all(k in names for k in self.classes) if self.kind == "function" else self.key in names

    def default_code(self, partial_name: str) -> str:
        if not self.presets:
            return self.base
        kw = "".join(f", {k}={v}" for k, v in self.presets.items())
        return f"{partial_name}({self.base}{kw})"


def _fields(cls: cst.ClassDef) -> list[tuple[str, bool]]:
    out = []
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else []
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign) and isinstance(stmt.body[0].target, cst.Name):
            ann = stmt.body[0]
            name = ann.target.value
            if name in ("parent", "name") or "ClassVar" in code(ann.annotation.annotation):
                continue
            out.append((name, ann.value is not None))
    return out


def _is_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False", "None")
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return _is_literal(node.expression)
    if isinstance(node, (cst.Tuple, cst.List)):
        return all(_is_literal(e.value) for e in node.elements)
    return False


class FieldValues:
    """`infer(cls, field)`: the Inferred value of a field without a default, or None."""

    def __init__(self, module: cst.Module, imports, rules, linen_classes: set[str]):
        self.imports = imports
        self.rules = rules
        self.classes: dict[str, cst.ClassDef] = {}
        self.fields: dict[str, list[tuple[str, bool]]] = {}
        for stmt in module.body:
            if isinstance(stmt, cst.ClassDef) and stmt.name.value in linen_classes:
                self.classes[stmt.name.value] = stmt
                own = _fields(stmt)
                inherited: list[tuple[str, bool]] = []
                for base in stmt.bases:
                    if isinstance(base.value, cst.Name) and base.value.value in self.fields:
                        inherited = list(self.fields[base.value.value])
                names = {n for n, _ in own}
                self.fields[stmt.name.value] = [f for f in inherited if f[0] not in names] + own
        self.module = module
        self._sites: list[tuple] | None = None
        self._memo: dict[tuple[str, str], Inferred | None] = {}
        self._provisional: dict[tuple[str, str], Inferred | None] = {}
        self._busy: set[tuple[str, str]] = set()

    # ---- resolving one value ------------------------------------------------------
    def _field_default(self, owner: str, name: str) -> cst.BaseExpression | None:
        cls = self.classes.get(owner)
        for stmt in cls.body.body if cls is not None and isinstance(cls.body, cst.IndentedBlock) else ():
            if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.AnnAssign):
                ann = stmt.body[0]
                if isinstance(ann.target, cst.Name) and ann.target.value == name:
                    return ann.value
        return None

    def resolve(self, node: cst.BaseExpression, owner: str | None, local_values: dict, depth: int = 0) -> list[Passed]:
        """The values `node` may hold (several when it is a field bound to several classes)."""
        if depth > 8:
            return [Passed("unknown")]
        if isinstance(node, cst.Name) and node.value in local_values:
            value = local_values[node.value]
            return [Passed("unknown")] if value is None else self.resolve(value, owner, local_values, depth + 1)
        attr = self_attr(node)
        if attr is not None:
            if owner is None or attr not in {n for n, _ in self.fields.get(owner, [])}:
                return [Passed("unknown")]
            default = self._field_default(owner, attr)
            if default is not None:
                return self.resolve(default, owner, {}, depth + 1)
            inferred = self.infer(owner, attr)
            if inferred is None:
                return [Passed("unknown")]
            if inferred.kind == "class":
                return [Passed("class", c, c) for c in inferred.classes]
            return [Passed(inferred.kind, inferred.key, inferred.base, dict(inferred.presets), inferred.call_time)]
        if isinstance(node, cst.Call) and self.imports.qualify(node.func) == "functools.partial":
            if not node.args or node.args[0].keyword is not None or any(a.star or a.keyword is None for a in node.args[1:]):
                return [Passed("unknown")]  # positional presets shift the arguments
            out = []
            for inner in self.resolve(node.args[0].value, owner, local_values, depth + 1):
                if inner.kind not in ("layer", "class"):
                    out.append(Passed("unknown"))
                    continue
                presets = dict(inner.presets)
                call_time = set(inner.call_time)
                rule = self.rules.layers.get(inner.key) if inner.kind == "layer" else None
                for a in node.args[1:]:
                    key = a.keyword.value
                    if rule is not None and key in rule.call_time and not _is_literal(a.value):
                        call_time.add(key)
                        presets.pop(key, None)
                        continue
                    presets[key] = code(a.value) if _is_literal(a.value) else "\0"  # not comparable
                out.append(Passed(inner.kind, inner.key, inner.base, presets, frozenset(call_time)))
            return out
        if isinstance(node, cst.Name) and node.value in self.classes and node.value not in self.imports.aliases:
            return [Passed("class", node.value, node.value)]
        if isinstance(node, (cst.Name, cst.Attribute)):
            qual = self.imports.qualify(node)
            layer = normalize_linen(qual, self.rules.layers)
            if layer in self.rules.layers:
                return [Passed("layer", layer, code(node))]
            if qual is not None and (qual in self.rules.keep_last_dim or qual in self.rules.renames):
                return [Passed("function", qual, code(node))]
        return [Passed("unknown")]

    # ---- every construction of the file -----------------------------------------------
    def _collect(self) -> list[tuple]:
        """Every call of the file that may build a module, unresolved: (callee, arguments,
        owner class, the function's locals, through functools.partial)."""
        sites: list[tuple] = []
        for stmt in self.module.body:
            if isinstance(stmt, cst.ClassDef):
                owner = stmt.name.value if stmt.name.value in self.classes else None
                for item in stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else ():
                    if isinstance(item, cst.FunctionDef):
                        self._function(item, owner, sites)
            elif isinstance(stmt, cst.FunctionDef):
                self._function(stmt, None, sites)
            else:
                self._constructions(stmt, None, {}, sites)
        return sites

    def _function(self, func: cst.FunctionDef, owner: str | None, sites) -> None:
        bindings: dict[str, cst.BaseExpression | None] = {}
        for p in [*func.params.params, *func.params.kwonly_params]:
            bindings[p.name.value] = None

        class Assigns(FastVisitor):
            def visit_Assign(self, node: cst.Assign) -> None:
                for t in node.targets:
                    if isinstance(t.target, cst.Name):
                        name = t.target.value
                        bindings[name] = node.value if name not in bindings else None
                    else:
                        for n in _names(t.target):
                            bindings[n] = None

            def visit_For(self, node: cst.For) -> None:
                for n in _names(node.target):
                    bindings[n] = None

            def visit_AugAssign(self, node: cst.AugAssign) -> None:
                for n in _names(node.target):
                    bindings[n] = None

        Assigns().walk(func.body)
        self._constructions(func.body, owner, bindings, sites)

    def _constructions(self, node: cst.CSTNode, owner: str | None, local_values: dict, sites) -> None:
        imports = self.imports

        class Calls(FastVisitor):
            def visit_Call(self, call: cst.Call) -> None:
                is_partial = imports.qualify(call.func) == "functools.partial"
                target = call.args[0].value if is_partial and call.args and call.args[0].keyword is None else call.func
                if not isinstance(target, (cst.Name, cst.Attribute)):
                    return
                args = list(call.args[1:]) if is_partial else list(call.args)
                if isinstance(target, cst.Name) and local_values.get(target.value) is not None:
                    # `block = partial(Block, conv=conv)` then `block(...)`: the partial's
                    # own keywords are passed too
                    bound = local_values[target.value]
                    if isinstance(bound, cst.Call) and imports.qualify(bound.func) == "functools.partial":
                        args = [*bound.args[1:], *args]
                sites.append((target, args, owner, local_values, is_partial))

        Calls().walk(node)

    def _record(self, cls: str, name: str, args: list[cst.Arg], owner, local_values, partial: bool, out: list) -> None:
        names = [n for n, _ in self.fields.get(cls, [])]
        starred = False
        pos = 0
        for a in args:
            if a.star:
                starred = True
            elif a.keyword is None:
                if pos < len(names) and names[pos] == name:
                    out.extend(self.resolve(a.value, owner, local_values))
                    return
                pos += 1
            elif a.keyword.value == name:
                out.extend(self.resolve(a.value, owner, local_values))
                return
        if starred or not partial:
            # through *args/**kwargs, or not given at all (Linen then fails): unknown
            out.append(Passed("unknown"))

    def why_unknown(self, cls: str, name: str) -> str:
        """Why `infer` found no common value (for the report)."""
        values = self._values(cls, name)
        if not values:
            return "no construction in this file sets it"
        if any(v.kind == "unknown" for v in values):
            return "a construction in this file passes a value the tool cannot follow"
        shown = sorted({v.base or v.key for v in values})
        return f"the file's constructions pass different values ({', '.join(shown)})" if len(shown) > 1 else f"the value passed ({shown[0]}) is not a layer the tool converts"

    def _values(self, cls: str, name: str) -> list[Passed]:
        if self._sites is None:
            self._sites = self._collect()
        values: list[Passed] = []
        for target, args, owner, local_values, partial in self._sites:
            if isinstance(target, cst.Name) and target.value not in self.classes and target.value not in local_values:
                continue  # (cheap skip: a plain function call)
            if any(p.kind == "class" and p.key == cls for p in self.resolve(target, owner, local_values)):
                self._record(cls, name, args, owner, local_values, partial, values)
        return values

    def infer(self, cls: str, name: str) -> Inferred | None:
        key = (cls, name)
        if key in self._memo:
            return self._memo[key]
        if key in self._provisional:
            return self._provisional[key]
        if key in self._busy or not any(n == name and not d for n, d in self.fields.get(cls, [])):
            return None
        top = not self._busy
        self._busy.add(key)
        try:
            result = _combine(self._values(cls, name))
        finally:
            self._busy.discard(key)
        if top:
            self._memo[key] = result
            self._provisional.clear()
        else:
            # Inside a cycle the answer may be incomplete (a field that depends on one being
            # worked out reads as unknown): kept only until the outermost query is answered,
            # so each field is worked out once per query, not once per path to it (not
            # keeping it at all was exponential in the fields passed on: minutes on
            # diffusers' blocks).
            self._provisional[key] = result
        return result


def _names(target) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for e in target.elements for n in _names(e.value)]
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    return []


def _combine(values: list[Passed]) -> Inferred | None:
    if not values or any(v.kind == "unknown" for v in values):
        return None
    kinds = {v.kind for v in values}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind == "class":
        classes = tuple(dict.fromkeys(v.key for v in values))
        if any(v.presets for v in values):
            return None
        return Inferred("class", classes[0], classes, key=classes[0])
    first = values[0]
    if kind == "function":
        # functions: the callers may differ (the converted class keeps calling its field);
        # what the class needs to know is whether each of them keeps the last axis
        keys = tuple(dict.fromkeys(v.key for v in values))
        return Inferred("function", first.base, keys, key=first.key if len(keys) == 1 else "")
    if len({v.key for v in values}) != 1:
        return None
    presets = {k: v for k, v in first.presets.items() if v != "\0" and all(o.presets.get(k) == v for o in values)}
    call_time = frozenset().union(*(v.call_time for v in values))
    return Inferred(kind, first.base, (), presets, call_time, first.key)
