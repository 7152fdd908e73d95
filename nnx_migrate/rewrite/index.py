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
        self.modules: dict[str, set[str]] = {}  # module (dotted path) -> the classes it defines
        self._of_module: dict[str, set[str]] = {}  # (classes_of_module, asked once per name)
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
        if summaries:
            self.modules.setdefault(module, set()).update(summaries)
            self._of_module.clear()
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

    def model_holders_of_module(self, qualified: str) -> set[str]:
        """The classes of the run's module `qualified` names whose `self.` attributes hold
        a model (a subclass in another file reaches them as `agent.Agent`)."""
        module = qualified.lstrip(".")
        return {name for name, entries in self.attributes.items()
                for m, _ in entries if module and (m == module or m.endswith("." + module))}

    def classes_of_module(self, qualified: str) -> set[str]:
        """The converted classes of the run's module an imported name (`pkg.types`,
        `..types`) refers to: the file reaches them as `types.Layer`."""
        found = self._of_module.get(qualified)
        if found is None:
            module = qualified.lstrip(".")
            found = set()
            for m, names in self.modules.items():
                if module and (m == module or m.endswith("." + module)):
                    found |= names
            self._of_module[qualified] = found
        return found

    def __bool__(self) -> bool:
        return bool(self.by_name)
