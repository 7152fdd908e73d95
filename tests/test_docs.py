"""docs/ holds the depth: its generated parts are current and every link resolves."""

import re
from pathlib import Path

from nnx_migrate.lint.docs import with_rules_table

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_rule_table_is_current():
    lint_md = (ROOT / "docs" / "lint.md").read_text("utf-8")
    assert with_rules_table(lint_md) == lint_md, "run: python -m nnx_migrate.lint.docs docs/lint.md"


def test_every_module_fixture_is_in_the_rewrite_docs_table():
    rewrite_md = (ROOT / "docs" / "rewrite.md").read_text("utf-8")
    cases = sorted(p.name.removesuffix(".in.py") for p in (ROOT / "fixtures" / "modules").glob("*.in.py"))
    missing = [case for case in cases if f"| `{case}` |" not in rewrite_md]
    assert cases and not missing, missing


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        text = page.read_text("utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.is_file():
                broken.append(f"{page.name}: {target}")
                continue
            if anchor:
                headings = re.findall(r"^#+ (.+)$", linked.read_text("utf-8"), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target}")
    assert not broken, broken
    assert len(PAGES) > 5
