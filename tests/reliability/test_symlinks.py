"""Symbolic links in the tree: a linked file is converted through to its target, once,
and stays a link; a link out of the run, a broken link and link loops are skipped with a
warning, and nothing outside the run changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reliability_helpers import LINEN_MODEL, OLD_NNX, cli


@pytest.fixture()
def linked_tree(tmp_path):
    """src/ holds a model, a link to it, a link to a file outside src/, a broken link, a
    link to itself, a two-link loop and a linked folder pointing back up the tree."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "pkg").mkdir(parents=True)
    outside.mkdir()
    return src, outside


def _links(src: Path, outside: Path, text: str) -> None:
    pkg = src / "pkg"
    (pkg / "model.py").write_text(text)
    (outside / "ext.py").write_text(text)
    os.symlink("model.py", pkg / "alias.py")
    os.symlink("../../outside/ext.py", pkg / "ext.py")
    os.symlink("gone.py", pkg / "broken.py")
    os.symlink("self.py", pkg / "self.py")
    os.symlink("loop_b.py", pkg / "loop_a.py")
    os.symlink("loop_a.py", pkg / "loop_b.py")
    os.symlink("..", pkg / "up")  # a folder loop: walking it would never end


def _assert_links_kept(src: Path, outside: Path, original: str) -> None:
    pkg = src / "pkg"
    assert os.readlink(pkg / "alias.py") == "model.py"
    assert os.readlink(pkg / "ext.py") == "../../outside/ext.py"
    assert os.readlink(pkg / "up") == ".."
    for name in ("broken.py", "self.py", "loop_a.py", "loop_b.py"):
        assert (pkg / name).is_symlink()
    assert (outside / "ext.py").read_text() == original  # outside the run: untouched
    assert sorted(p.name for p in pkg.iterdir()) == sorted(
        ["model.py", "alias.py", "ext.py", "broken.py", "self.py", "loop_a.py", "loop_b.py", "up"]
    )  # no converted copy of a link was added


def test_rewrite_write_converts_through_links_and_keeps_them(linked_tree):
    src, outside = linked_tree
    _links(src, outside, LINEN_MODEL)
    done = cli("rewrite", "--write", src, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    model = (src / "pkg" / "model.py").read_text()
    assert "class Mlp(nnx.Module):" in model and "flax.linen" not in model
    assert model.count("class Mlp") == 1  # converted once, not once per path to it
    _assert_links_kept(src, outside, LINEN_MODEL)
    assert f"{src}/pkg/ext.py: warning: symbolic link to {outside / 'ext.py'}, outside the paths given" in done.stderr
    assert "symbolic link loop: skipped" in done.stderr
    assert f"{src}/pkg/broken.py: warning: broken symbolic link: skipped" in done.stderr
    assert "1 files scanned" in done.stderr or "1 file scanned" in done.stderr


def test_lint_fix_fixes_through_links_and_keeps_them(linked_tree):
    src, outside = linked_tree
    _links(src, outside, OLD_NNX)
    done = cli("lint", "--fix", src, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrt=nnx.Param" in (src / "pkg" / "model.py").read_text()
    _assert_links_kept(src, outside, OLD_NNX)
    assert "outside the paths given: skipped" in done.stderr
    assert "1 file checked" in done.stderr


def test_a_link_into_the_run_from_outside_a_named_folder_is_followed_once(tmp_path):
    """Both the link and its target are in the run: the target is converted once, under
    its own path, and the link is left a link."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "model.py").write_text(LINEN_MODEL)
    os.symlink(b / "model.py", a / "model_link.py")
    done = cli("rewrite", "--write", a, b, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (a / "model_link.py").is_symlink()
    assert "nnx.Module" in (b / "model.py").read_text()
    assert "1 files scanned" in done.stderr or "1 file scanned" in done.stderr
