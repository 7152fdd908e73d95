"""Generation of the `__init__` signature's size parameters."""

from __future__ import annotations

import re

import libcst as cst

from nnx_migrate.rewrite.sizes import portable_size, size_param_name


class SignatureGenerator:
    """Generation: the `__init__` size parameters and what a parent needs to know of them."""

    def _method_out_sizes(self, size_params: list[str]) -> dict[str, str]:
        """Other methods' return sizes that depend on fields and literals only: a method
        walked from `__call__` may have been sized by `__call__`'s inputs, which a parent
        calling the method with other arguments does not give it."""
        inputs = re.compile(r"(?<![\w.])(?:" + "|".join(map(re.escape, ["in_features", *size_params])) + r")\b")
        out = {}
        for name, size in self.method_returns.items():
            portable = self._portable_out_size(size, size_params) if name != "__call__" else None
            if isinstance(portable, str) and not inputs.search(portable):
                out[name] = portable
        return out

    def _portable_out_size(self, size, size_params: list[str]):
        """The return size in terms a parent can translate (see sizes.portable_size)."""
        if isinstance(size, tuple):
            return tuple(self._portable_out_size(s, size_params) for s in size)
        local_sources = dict(self.setup_local_sources)
        if self.call_walker is not None:
            local_sources.update({name: src for name, (src, _) in self.call_walker.scope.static.items()})
        return portable_size(size, {f.name for f in self.shape.fields}, set(size_params), local_sources)

    def _size_params(self) -> list[str]:
        """Input-size parameters the generated __init__ needs, in __call__ order."""
        base = self.shape.base
        own_builder = self.shape.setup is not None or self.shape.compact is not None or base is None
        if not own_builder:
            return list(base.size_params)
        call = self.shape.compact if self.shape.compact is not None and self.shape.compact.name.value == "__call__" else next((m for m in self.shape.methods if m.name.value == "__call__"), None)
        if call is None and self.shape.compact is not None:
            call = self.shape.compact
        names: list[str] = []
        source = "\n".join(self._all_size_sources())
        if call is not None:
            params = [p for p in call.params.params if p.name.value != "self"]
            for i, p in enumerate(params):
                pname = size_param_name(i, p.name.value)
                # a bare name: `self.in_features` is a field that happens to share the name
                if re.search(rf"(?<![\w.]){re.escape(pname)}\b", source):
                    names.append(pname)
        return names + [p for p in self.extra_size_params if p not in names]

    def _call_method(self) -> cst.FunctionDef | None:
        return self.shape.compact if self.shape.compact is not None else next((m for m in self.shape.methods if m.name.value == "__call__"), None)

    def _size_param_names(self, size_params: list[str]) -> dict[str, str]:
        if self.shape.base is not None and not (self.shape.setup is not None or self.shape.compact is not None):
            return dict(self.shape.base.size_param_names)
        call = self._call_method()
        params = [p for p in call.params.params if p.name.value != "self"] if call is not None else []
        names = {size_param_name(i, p.name.value): p.name.value for i, p in enumerate(params)}
        return {p: names[p] for p in size_params if p in names}

    def _optional_size_params(self, size_params: list[str]) -> list[str]:
        """Input sizes of arguments that default to None (the parent passes None when it
        leaves the argument out)."""
        if self.shape.base is not None and not (self.shape.setup is not None or self.shape.compact is not None):
            return [p for p in size_params if p in self.shape.base.optional_size_params]
        call = self._call_method()
        params = [p for p in call.params.params if p.name.value != "self"] if call is not None else []
        optional = {size_param_name(i, p.name.value) for i, p in enumerate(params) if isinstance(p.default, cst.Name) and p.default.value == "None"}
        return [p for p in size_params if p in optional]

    def _size_param_args(self, size_params: list[str]) -> dict[str, int]:
        call = self.shape.compact if self.shape.compact is not None else next((m for m in self.shape.methods if m.name.value == "__call__"), None)
        mapping = {}
        if call is not None:
            params = [p for p in call.params.params if p.name.value != "self"]
            for i, p in enumerate(params):
                mapping[size_param_name(i, p.name.value)] = i
        if self.shape.base is not None:
            mapping.update(self.shape.base.size_param_args)
        return {p: mapping[p] for p in size_params if p in mapping}

    def _all_size_sources(self) -> list[str]:
        out = []
        for sub in self.subs:
            for member in [sub, *sub.members]:
                out += [v for v in (member.in_sizes or {}).values() if v]
                out += [v for pair in member.carried.values() for v in pair]
                out += list(member.arg_code.values())
        loops = {id(loop): loop for sub in self.subs for loop in (sub.loop, sub.sizes_loop) if loop is not None}
        for loop in loops.values():
            out += [v for first, end, _ in loop.carried_vars.values() for v in (first, end) if v]
        for var in self.vars:
            out.append(var.init_code)
        for chain in self.append_chains.values():
            if chain.ok:
                out += [chain.first, *chain.outs.values()]
        if self.shape.compact is not None and self.call_walker is not None:
            scope = self.call_walker.scope
            out += [src for src, _ in scope.static.values()]
        return out

    def _init_params(self, fields, size_params: list[str]) -> list[str]:
        """The parameters of `__init__` as source: fields, input sizes, `rngs`."""
        params_src = []
        keyword_only = False
        seen_default = False
        for f in fields:
            ann = f": {f.annotation}" if f.annotation else ""
            default = f" = {self.factory_fields.get(f.name, f.default_code)}" if f.has_default else ""
            if not f.has_default and seen_default and not keyword_only:
                # a required field after defaulted ones (Linen's kw_only dataclasses,
                # subclasses): keyword-only from here, as Python requires
                params_src.append("*")
                keyword_only = True
            seen_default = seen_default or f.has_default
            params_src.append(f"{f.name}{ann}{default}")
        optional_sizes = self._optional_size_params(size_params)
        sizes_src = [f"{p}: int" for p in size_params if p not in optional_sizes]
        if sizes_src and not seen_default:
            params_src += sizes_src
            params_src.append("*")
        else:
            if not keyword_only:
                params_src.append("*")
            params_src += sizes_src
        if not keyword_only and "*" not in params_src:
            params_src.append("*")
        params_src += [f"{p}: int | None = None" for p in optional_sizes]
        params_src += [f"{p}: int | None = None" for p in self.field_out_params.values()]
        params_src.append("rngs: nnx.Rngs")
        return params_src
