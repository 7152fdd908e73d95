"""How findings are printed: text (default), json, github annotations, SARIF 2.1.0."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from nnx_migrate import __version__

if TYPE_CHECKING:  # imported lazily: `nnx-migrate --help` reads FORMATS and must start fast
    from nnx_migrate.lint.runner import LintRun

FORMATS = ("text", "json", "github", "sarif")


def render(run: LintRun, fmt: str) -> str:
    return {"text": _text, "json": _json, "github": _github, "sarif": _sarif}[fmt](run)


def _text(run: LintRun) -> str:
    lines = [f"{path}:{f.line}:{f.column}: {f.code} {f.message}" for path, f in run.findings]
    lines += [f"{r.path}:1:1: E902 {r.error}" for r in run.errors]
    return "".join(line + "\n" for line in lines)


def _json(run: LintRun) -> str:
    document = {
        "findings": [
            {
                "path": path,
                "line": f.line,
                "column": f.column,
                "end_line": f.end_line,
                "end_column": f.end_column,
                "code": f.code,
                "message": f.message,
                "fix": f.fix,
            }
            for path, f in run.findings
        ],
        "errors": [{"path": r.path, "message": r.error} for r in run.errors],
        "fixes_applied": run.fixes_applied,
    }
    return json.dumps(document, indent=2) + "\n"


def _escape_property(value: str) -> str:
    # GitHub workflow command escaping for property values.
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A").replace(":", "%3A").replace(",", "%2C")


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github(run: LintRun) -> str:
    lines = [
        f"::warning file={_escape_property(path)},line={f.line},col={f.column},"
        f"endLine={f.end_line},endColumn={f.end_column},title={f.code}::{_escape_data(f.code + ' ' + f.message)}"
        for path, f in run.findings
    ]
    lines += [f"::error file={_escape_property(r.path)},title=E902::{_escape_data(r.error)}" for r in run.errors]
    return "".join(line + "\n" for line in lines)


def _sarif(run: LintRun) -> str:
    from nnx_migrate.lint.rules import all_rules

    rules = [
        {
            "id": rule.CODE,
            "name": rule.NAME,
            "shortDescription": {"text": rule.SUMMARY},
            "fullDescription": {"text": rule.documentation()},
            "help": {"text": f"nnx-migrate explain {rule.CODE}"},
        }
        for rule in all_rules()
    ]
    results = [
        {
            "ruleId": f.code,
            "level": "warning",
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": path},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        },
                    }
                }
            ],
        }
        for path, f in run.findings
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": r.error},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.path}}}],
        }
        for r in run.errors
    ]
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "nnx-migrate", "version": __version__, "rules": rules}},
                "results": results,
                "invocations": [
                    {"executionSuccessful": not run.errors, "toolExecutionNotifications": notifications}
                ],
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
