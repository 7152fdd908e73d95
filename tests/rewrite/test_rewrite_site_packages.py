"""`rewrite --check` over a whole installed site-packages: no crash, and no file that does
not use flax would change."""

from __future__ import annotations

import json
import site
from pathlib import Path


def test_site_packages_never_crashes_and_only_flax_files_change(cli, tmp_path):
    root = Path(site.getsitepackages()[0])
    result = cli("rewrite", "--check", "--quiet", "--jobs", "2", "--report", tmp_path / "report", root)
    assert result.code & 4 == 0, result.err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["scanned"] > 1000
    changed = [f["path"] for f in report["files"] if f["status"] == "changed"]
    assert changed, "flax's own Linen sources should convert"
    for path in changed:
        assert "flax" in Path(path).read_text("utf-8", errors="replace"), path
    for failed in (f for f in report["files"] if f["status"] == "failed"):
        assert "internal error" not in (failed["error"] or ""), failed
        try:
            compile(Path(failed["path"]).read_bytes(), failed["path"], "exec")
        except (SyntaxError, ValueError):
            continue
        raise AssertionError(f"{failed['path']} compiles but failed: {failed['error']}")
