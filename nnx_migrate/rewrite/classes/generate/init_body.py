"""Generation of the constructions in `__init__`."""

from __future__ import annotations

from typing import TYPE_CHECKING


from nnx_migrate.naming import snake_case
from nnx_migrate.rewrite.report import TODO_MARK
from nnx_migrate.rewrite.sizes import code
from nnx_migrate.rewrite.classes.model import Sub

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
        if sub.construct is not None:
            return sub.construct.init_source(self, sub)
        return code(sub.ctor)

    def _todo_comments(self, problems: list[str]) -> str:
        return "".join(f"# {TODO_MARK}: {p}\n" for p in dict.fromkeys(problems))
