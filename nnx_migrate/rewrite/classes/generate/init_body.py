"""Generation of the constructions in `__init__`."""

from __future__ import annotations

from typing import TYPE_CHECKING


from nnx_migrate.naming import snake_case
from nnx_migrate.rewrite.report import TODO_MARK
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.classes.model import Sub, SubKind

if TYPE_CHECKING:
    pass


class InitGenerator:
    """Generation: a submodule's construction in `__init__`."""

    # ---- generation -------------------------------------------------------------
    def unknown_size_param(self, sub: Sub, param: str) -> str:
        if sub.attr is None:
            # An unnamed element (of a list or nn.Sequential): one parameter per site.
            if sub.anonymous_name is None:
                cls = snake_case(self._linen_class(sub))
                sub.anonymous_name = f"{cls}_{sum(1 for v in self.anonymous_names if v.startswith(cls + '_'))}"
                self.anonymous_names.append(sub.anonymous_name)
            base = sub.anonymous_name
        else:
            base = sub.attr
        name = f"{base}_{param}"
        if name not in self.extra_size_params:
            self.extra_size_params.append(name)
        return name

    def ctor_source(self, sub: Sub) -> str:
        sizes = sub.in_sizes or {}
        if sub.construct is not None:
            return sub.construct.init_source(self, sub)
        parts: list[str] = []
        if sub.kind == SubKind.LAYER:
            rule = sub.rule
            if rule.in_size:
                size = sizes.get(rule.in_size)
                parts.append(f"{rule.in_size}={size if size is not None else self.unknown_size_param(sub, rule.in_size)}")
            if rule.cell_arg:
                member = sub.members[0] if sub.members else None
                parts.append(f"self.{member.attr}" if member is not None and member.attr is not None else self.ctor_source(member) if member is not None else "None")
            for key, value in sub.arg_code.items():
                if key in rule.checked:
                    continue  # recurrent.rnn_problems reported what NNX does differently
                if key in rule.unsupported:
                    sub.problems.append(f"Linen argument '{key}' has no NNX counterpart")
                    continue
                if key == "parent":
                    sub.problems.append("parent= is not supported")
                    continue
                parts.append(f"{rule.rename.get(key, key)}={value}")
            for key, value in rule.defaults.items():
                if key not in sub.arg_code and not (sub.factory is not None and sub.factory.field is not None):
                    # (a field's factory keeps its own presets: Linen's default is not forced on it)
                    parts.append(f"{key}={value}")
            parts.append("rngs=rngs")
            callee = sub.factory.callee if sub.factory is not None else f"nnx.{rule.nnx_name}"
            return f"{callee}({', '.join(parts)})"
        if sub.kind == SubKind.CHILD:
            child = sub.child
            for key, value in sub.arg_code.items():
                parts.append(f"{key}={value}")
            for param in child.size_params:
                size = sizes.get(param)
                parts.append(f"{param}={size if size is not None else self.unknown_size_param(sub, param)}")
            for param, size in sub.field_sizes.items():
                parts.append(f"{param}={size if size is not None else self.unknown_size_param(sub, param)}")
            parts.append("rngs=rngs")
            callee = sub.factory.callee if sub.factory is not None else child.name
            built = f"{callee}({', '.join(parts)})"
            if sub.transform is not None:
                return sub.transform.init_source(sub, built)
            return built
        return code(sub.ctor)

    def _todo_comments(self, problems: list[str]) -> str:
        return "".join(f"# {TODO_MARK}: {p}\n" for p in dict.fromkeys(problems))
