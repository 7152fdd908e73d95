"""A run killed in the middle of a write, two runs at once on one tree, and a re-run
over a partly converted tree. Each is set up with real processes: a writer killed with
SIGKILL while its temporary file exists, a second process holding the tree's lock."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap

from reliability_helpers import LINEN_MODEL, ROOT, cli

# A process that starts an atomic write of `model.py` and is killed (by the test) while
# its temporary file is written but not yet renamed over the original.
_WRITER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import nnx_migrate.files as files
    def stall(src, dst):
        print("writing", flush=True)
        time.sleep(600)
    files.os.replace = stall
    files.atomic_write(files.Path({path!r}), "half\\n" * 1000)
""")

# A process that holds the tree's lock as a writing run does, until it is told to stop.
_HOLDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from nnx_migrate.run_files.lock import tree_locks
    with tree_locks([{tree!r}]):
        print("held", flush=True)
        sys.stdin.readline()
""")


def _spawn(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # "writing" / "held": the state the test needs is there
    return proc


def test_temporary_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    (tmp_path / "model.py").write_text(LINEN_MODEL)
    writer = _spawn(_WRITER.format(root=str(ROOT), path=str(tmp_path / "model.py")))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".nnx-migrate.tmp")]
    assert len(leftovers) == 1 and f".{writer.pid}." in leftovers[0].name
    assert (tmp_path / "model.py").read_text() == LINEN_MODEL  # the original is whole
    done = cli("rewrite", "--write", tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]
    assert "nnx.Module" in (tmp_path / "model.py").read_text()


def test_temporary_file_of_a_live_writer_is_left_alone(tmp_path):
    (tmp_path / "model.py").write_text(LINEN_MODEL)
    writer = _spawn(_WRITER.format(root=str(ROOT), path=str(tmp_path / "model.py")))
    try:
        done = cli("lint", "--fix", tmp_path)  # another tree top: the writer holds no lock
        assert done.returncode == 0, done.stdout + done.stderr
        assert [p for p in tmp_path.iterdir() if p.name.endswith(".nnx-migrate.tmp")]
    finally:
        writer.kill()
        writer.wait()


def test_a_second_run_on_a_locked_tree_stops_with_a_clear_message(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.py").write_text(LINEN_MODEL)
    holder = _spawn(_HOLDER.format(root=str(ROOT), tree=str(tmp_path)))
    try:
        for command in (["rewrite", "--write", tmp_path], ["lint", "--fix", tmp_path], ["rewrite", "--write", tmp_path / "sub"]):
            done = cli(*command)
            assert done.returncode == 4, done.stderr
            assert f"another nnx-migrate run (pid {holder.pid}:" in done.stderr
            assert f"lock file {tmp_path / '.nnx-migrate.lock'}" in done.stderr
            assert (tmp_path / "sub" / "model.py").read_text() == LINEN_MODEL
        # a run that writes nothing needs no lock
        assert cli("rewrite", "--check", tmp_path).returncode == 1
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait()
    assert not (tmp_path / ".nnx-migrate.lock").exists()  # released and removed


def test_a_run_meeting_a_held_lock_inside_its_tree_stops_before_writing(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.py").write_text(LINEN_MODEL)
    holder = _spawn(_HOLDER.format(root=str(ROOT), tree=str(tmp_path / "sub")))
    try:
        done = cli("rewrite", "--write", tmp_path)
        assert done.returncode == 4, done.stderr
        assert f"lock file {tmp_path / 'sub' / '.nnx-migrate.lock'}" in done.stderr
        assert (tmp_path / "sub" / "model.py").read_text() == LINEN_MODEL
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    (tmp_path / "model.py").write_text(LINEN_MODEL)
    holder = _spawn(_HOLDER.format(root=str(ROOT), tree=str(tmp_path)))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / ".nnx-migrate.lock").exists()  # left behind by the killed run
    done = cli("rewrite", "--write", tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"took over the lock file {tmp_path / '.nnx-migrate.lock'} of a run that ended (pid {holder.pid}:" in done.stderr
    assert "nnx.Module" in (tmp_path / "model.py").read_text()
    assert not (tmp_path / ".nnx-migrate.lock").exists()


def test_rerun_over_a_partly_converted_tree_reaches_the_one_run_result(tmp_path):
    """The first run was stopped after it wrote the model file: the training file, run
    again with the models already NNX, must come out as in one run over the tree."""
    program = ROOT / "fixtures" / "training" / "split_program"
    one_run = tmp_path / "one"
    shutil.copytree(program / "in", one_run)
    assert cli("rewrite", "--write", one_run).returncode & 2 == 0
    partial = tmp_path / "partial"
    shutil.copytree(program / "in", partial)
    assert cli("rewrite", "--write", partial / "models.py").returncode & 2 == 0
    assert "nnx.Module" in (partial / "models.py").read_text()
    done = cli("rewrite", "--write", partial)
    assert done.returncode & 2 == 0, done.stderr
    for name in ("models.py", "train.py"):
        assert (partial / name).read_text() == (one_run / name).read_text(), name
    assert "rngs=nnx.Rngs(key)" in (partial / "train.py").read_text()
