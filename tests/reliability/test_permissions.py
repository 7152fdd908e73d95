"""Unreadable and unwritable files and folders: a clear error per path (exit bit 2), the
run goes on over everything else, and the summary and report are still written.

These run the CLI in a subprocess that really lacks the permission (see
reliability_helpers: as root, without the capabilities that override permission bits);
each test first checks that the denial is real.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from reliability_helpers import LINEN_MODEL, OLD_NNX, cli, denied, unwritable


@pytest.fixture()
def restore_modes():
    changed = []

    def chmod(path, mode):
        changed.append((path, stat.S_IMODE(path.stat().st_mode)))
        os.chmod(path, mode)

    yield chmod
    for path, mode in reversed(changed):
        os.chmod(path, mode)


def _tree(tmp_path, text):
    src = tmp_path / "src"
    for sub in ("a", "locked", "z"):
        (src / sub).mkdir(parents=True)
        (src / sub / "model.py").write_text(text)
    (src / "z" / "secret.py").write_text(text)
    return src


@pytest.mark.parametrize("command", [["rewrite", "--write"], ["lint", "--fix"]])
def test_unreadable_folder_and_file_are_errors_and_the_run_goes_on(tmp_path, restore_modes, command):
    text = LINEN_MODEL if command[0] == "rewrite" else OLD_NNX
    src = _tree(tmp_path, text)
    restore_modes(src / "locked", 0o000)
    restore_modes(src / "z" / "secret.py", 0o000)
    assert denied(src / "locked") and denied(src / "z" / "secret.py")
    report = [] if command[0] == "lint" else ["--report", tmp_path / "report"]
    done = cli(*command, src, *report, permissions_apply=True, timeout=120)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode & 2, output
    assert f"{src / 'locked'}" in output and "cannot read folder: Permission denied" in output
    assert f"{src / 'z' / 'secret.py'}" in output and "cannot read: Permission denied" in output
    marker = "nnx.Module" if command[0] == "rewrite" else "wrt=nnx.Param"
    for sub in ("a", "z"):  # before and after the unreadable ones in walk order
        assert marker in (src / sub / "model.py").read_text()
    if command[0] == "rewrite":
        assert "4 files scanned: 2 changed, 0 unchanged, 2 failed" in done.stderr
        data = json.loads((tmp_path / "report.json").read_text())
        failed = {f["path"] for f in data["files"] if f["status"] == "failed"}
        assert failed == {str(src / "locked"), str(src / "z" / "secret.py")}
        assert "cannot read folder" in (tmp_path / "report.md").read_text()
    else:
        assert "3 files checked, 0 findings, 2 fixed" in done.stderr and "2 files could not be read or parsed" in done.stderr
        assert f"{src / 'locked'}:1:1: E902 cannot read folder" in done.stdout


@pytest.mark.parametrize("command", [["rewrite", "--write"], ["lint", "--fix"]])
def test_read_only_folder_is_an_error_per_file_and_the_run_goes_on(tmp_path, restore_modes, command):
    text = LINEN_MODEL if command[0] == "rewrite" else OLD_NNX
    src = _tree(tmp_path, text)
    restore_modes(src / "locked", 0o555)
    assert unwritable(src / "locked")
    report = [] if command[0] == "lint" else ["--report", tmp_path / "report"]
    done = cli(*command, src, *report, permissions_apply=True, timeout=120)
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.returncode & 2, output
    assert (src / "locked" / "model.py").read_text() == text  # whole, unchanged
    assert not [p for p in (src / "locked").iterdir() if p.name != "model.py"]  # no temporary left
    assert f"{src / 'locked' / 'model.py'}" in output and "Permission denied" in output
    marker = "nnx.Module" if command[0] == "rewrite" else "wrt=nnx.Param"
    for sub in ("a", "z"):
        assert marker in (src / sub / "model.py").read_text()
    if command[0] == "rewrite":
        assert "cannot write: Permission denied" in done.stderr
        assert "4 files scanned: 3 changed, 0 unchanged, 1 failed" in done.stderr
        data = json.loads((tmp_path / "report.json").read_text())
        assert [f["path"] for f in data["files"] if f["status"] == "failed"] == [str(src / "locked" / "model.py")]
        assert data["summary"]["modules_converted"] == 3  # the unwritten file's class is not counted
    else:
        assert f"{src / 'locked' / 'model.py'}:1:1: E902 cannot write the fixes: Permission denied" in done.stdout
        # its finding remains (not fixed), the others were fixed
        assert f"{src / 'locked' / 'model.py'}:5:13: NNX001" in done.stdout
        assert "3 fixed" in done.stderr
