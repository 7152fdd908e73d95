"""`nnx-migrate check --from FILE`: the emitted checks without pytest, as a table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

EXIT_EQUIVALENT, EXIT_DIFFERENT, EXIT_CANNOT_RUN = 0, 1, 2


def run_from(path: str, as_json: bool = False) -> int:
    from nnx_migrate.checks.running import run_checks_file

    try:
        outcomes = run_checks_file(Path(path))
    except (OSError, SyntaxError, ValueError) as exc:
        print(f"nnx-migrate check: could not run: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if as_json:
        print(json.dumps([{"class": o.case_id, "verdict": o.verdict, "max_abs_diff": o.max_abs_diff,
                           "first_diverging_submodule": o.first_divergence, "example": o.example,
                           "message": o.message} for o in outcomes], indent=2))
    else:
        rows = [("class", "verdict", "max abs diff", "first diverging submodule")]
        for o in outcomes:
            diff = "" if o.max_abs_diff is None else f"{o.max_abs_diff:.3g}"
            rows.append((o.case_id, o.verdict, diff, o.first_divergence or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        for o in outcomes:
            if not o.ok:
                print(f"\n{o.message}", file=sys.stderr)
    # like `check`: 1 when a class computes other numbers, else 2 when one could not be
    # compared (no example, a model that fails to build), else 0
    if any(o.verdict == "not equivalent" for o in outcomes):
        return EXIT_DIFFERENT
    return EXIT_CANNOT_RUN if any(not o.ok for o in outcomes) else EXIT_EQUIVALENT
