"""The converted module classes of a whole run, so a file that imports a Linen module from
another file of the repository builds it the NNX way (with `rngs=` and its input sizes)."""

from __future__ import annotations

from pathlib import PurePath


def module_path(path: str) -> str:
    """`/repo/pkg/models/resnet.py` -> `repo.pkg.models.resnet` (package `__init__` -> the
    package); imports are matched against its tail."""
    parts = list(PurePath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(p for p in parts if p not in ("/", "\\", ""))


class ModuleIndex:
    def __init__(self) -> None:
        self.by_name: dict[str, list[tuple[str, object]]] = {}
        # class name -> (module, `self.` attributes holding a model): for subclasses in other files
        self.attributes: dict[str, list[tuple[str, frozenset]]] = {}

    def add_attributes(self, path: str, attributes: dict[str, set]) -> None:
        module = module_path(path)
        for name, attrs in attributes.items():
            self.attributes.setdefault(name, []).append((module, frozenset(attrs)))

    def model_attributes(self, qualified: str) -> frozenset | None:
        """The model attributes of an imported class (`pkg.agents.dqn.Agent`), when exactly
        one file of the run matches it."""
        module, _, name = qualified.rpartition(".")
        module = module.lstrip(".")
        matches = [a for m, a in self.attributes.get(name, []) if module and (m == module or m.endswith("." + module))]
        return matches[0] if len(matches) == 1 else None

    def add(self, path: str, summaries: dict[str, object]) -> None:
        module = module_path(path)
        for name, summary in summaries.items():
            entries = [e for e in self.by_name.get(name, []) if e[0] != module]
            entries.append((module, summary))
            self.by_name[name] = entries

    def lookup(self, qualified: str):
        """The summary for an imported qualified name (`..resnet.Block`,
        `pkg.models.resnet.Block`), when exactly one file of the run matches it."""
        module, _, name = qualified.rpartition(".")
        module = module.lstrip(".")
        if not module:
            return None
        matches = [s for m, s in self.by_name.get(name, []) if m == module or m.endswith("." + module)]
        return matches[0] if len(matches) == 1 else None

    def has_module(self, qualified: str) -> bool:
        """Whether a file of the run that `qualified` names as a module (`pkg.networks`)
        has converted classes."""
        module = qualified.lstrip(".")
        return bool(module) and any(m == module or m.endswith("." + module) for table in (self.by_name, self.attributes) for entries in table.values() for m, _ in entries)

    def __bool__(self) -> bool:
        return bool(self.by_name)
