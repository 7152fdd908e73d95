"""What a rewrite run found: per-file results, TODO sites, summary, JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

TODO_MARK = "TODO(nnx-migrate)"


def todo_comment(why: str) -> str:
    """`# TODO(nnx-migrate): why` on one line, whatever the text holds (a why quoting
    code may span lines; a comment cannot)."""
    return f"# {TODO_MARK}: {' '.join(why.split())}"


@dataclass(frozen=True)
class TodoSite:
    """One place a person must finish: what construct, and why the tool did not."""

    path: str
    line: int
    construct: str
    why: str

    def render(self) -> str:
        return f"{self.path}:{self.line}: {self.construct}: {self.why}"


@dataclass
class ClassOutcome:
    name: str
    line: int
    status: str  # "converted" | "todo" | "failed"
    todos: int = 0


@dataclass
class FileResult:
    path: str
    status: str  # "changed" | "unchanged" | "failed" | "skipped"
    new_text: str | None = None
    old_text: str | None = None
    error: str | None = None
    classes: list[ClassOutcome] = field(default_factory=list)
    todos: list[TodoSite] = field(default_factory=list)
    exports: dict = field(default_factory=dict)  # class name -> classes.ClassSummary
    imported: set = field(default_factory=set)  # qualified names the file imports
    model_attributes: dict = field(default_factory=dict)  # class name -> its `self.` attributes holding a model (leftovers.py)
    encoding: str = "utf-8"  # the file's own (PEP 263 cookie or BOM): writes keep it


@dataclass
class Summary:
    scanned: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    modules_converted: int = 0
    modules_with_todos: int = 0
    modules_failed: int = 0
    todo_sites: int = 0

    def add(self, result: FileResult) -> None:
        self.scanned += 1
        if result.status == "changed":
            self.changed += 1
        elif result.status == "failed":
            self.failed += 1
        else:
            self.unchanged += 1
        for cls in result.classes:
            if cls.status == "converted":
                self.modules_converted += 1
            elif cls.status == "todo":
                self.modules_with_todos += 1
            else:
                self.modules_failed += 1
        self.todo_sites += len(result.todos)

    def render(self) -> str:
        return (
            f"{self.scanned} files scanned: {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.failed} failed; {self.modules_converted} modules converted, "
            f"{self.modules_with_todos} converted with TODO sites, {self.modules_failed} failed; "
            f"{self.todo_sites} sites need attention"
        )


def to_json(summary: Summary, results: list[FileResult]) -> str:
    return json.dumps(
        {
            "summary": asdict(summary),
            "files": [
                {
                    "path": r.path,
                    "status": r.status,
                    "error": r.error,
                    "classes": [asdict(c) for c in r.classes],
                }
                for r in results
                if r.status != "skipped" or r.classes
            ],
            "todos": [asdict(t) for r in results for t in r.todos],
        },
        indent=2,
    )


def to_markdown(summary: Summary, results: list[FileResult]) -> str:
    lines = ["# nnx-migrate rewrite report", "", summary.render(), ""]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        lines += ["## Files that failed", "", "| file | error |", "|---|---|"]
        lines += [f"| `{r.path}` | {r.error} |" for r in failed]
        lines.append("")
    todos = [t for r in results for t in r.todos]
    lines += ["## Sites that need attention", ""]
    if not todos:
        lines.append("None.")
    else:
        lines += ["| file:line | construct | why |", "|---|---|---|"]
        for t in todos:
            lines.append(f"| `{t.path}:{t.line}` | `{t.construct}` | {t.why} |")
    return "\n".join(lines) + "\n"
