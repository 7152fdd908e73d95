"""`RunContext`: the one way a rewrite reaches other files of the program, and the holder of
a run's caches. `rewrite_source` without one reads no other file."""

from __future__ import annotations

import textwrap

from nnx_migrate.rewrite import rewrite_source
from nnx_migrate.rewrite.run_context import DiskFiles, RunContext, SiblingFiles
from nnx_migrate.rewrite.runner import rewrite_files

MODELS = textwrap.dedent("""\
    import flax.linen as nn


    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(4)(x)
    """)

TRAIN = textwrap.dedent("""\
    import jax
    import jax.numpy as jnp
    from flax.training import train_state

    import models


    def create(key, tx):
        model = models.MLP()
        params = model.init(key, jnp.ones((1, 3)))['params']
        return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    """)


class MemoryFiles(SiblingFiles):
    """Other files held in memory, with every question asked recorded."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.asked: list[tuple[str, str]] = []

    def find_module(self, path, qualified_module):
        self.asked.append(("find_module", qualified_module))
        candidate = path.rsplit("/", 1)[0] + "/" + qualified_module.lstrip(".").replace(".", "/") + ".py"
        return candidate if candidate in self.files else None

    def version(self, file):
        self.asked.append(("version", file))
        return (0, len(self.files[file])) if file in self.files else None

    def read(self, file):
        self.asked.append(("read", file))
        return self.files.get(file)

    def python_files_beside(self, file):
        folder = file.rsplit("/", 1)[0] + "/"
        return sorted(f for f in self.files if f.startswith(folder) and "/" not in f[len(folder):])

    def resolve(self, file):
        return file


def test_without_a_context_no_other_file_is_read(tmp_path):
    (tmp_path / "models.py").write_text(MODELS)
    alone = rewrite_source(TRAIN, str(tmp_path / "train.py"))
    # models.py unseen: MLP is not known as a model class, its `init` is left and reported
    assert "model.init(key" in alone.new_text and "TODO(nnx-migrate)" in alone.new_text
    on_disk = rewrite_source(TRAIN, str(tmp_path / "train.py"), context=RunContext.on_disk())
    assert "model = models.MLP(in_features=3, rngs=nnx.Rngs(key))\n    return TrainState.create(model, tx)\n" in on_disk.new_text


def test_other_files_come_only_from_the_context(tmp_path):
    # the same program from disk and from memory: the same rewrite, and every read went
    # through the context's files (the memory files exist nowhere on disk)
    (tmp_path / "models.py").write_text(MODELS)
    on_disk = rewrite_source(TRAIN, str(tmp_path / "train.py"), context=RunContext.on_disk())
    memory = MemoryFiles({"/nowhere/models.py": MODELS})
    from_memory = rewrite_source(TRAIN, "/nowhere/train.py", context=RunContext(memory))
    assert from_memory.new_text == on_disk.new_text != TRAIN
    assert ("read", "/nowhere/models.py") in memory.asked


def test_a_run_reads_each_other_file_once_and_a_new_run_reads_again():
    memory = MemoryFiles({"/p/models.py": MODELS})
    context = RunContext(memory)
    first = rewrite_source(TRAIN, "/p/train.py", context=context)
    again = rewrite_source(TRAIN, "/p/train.py", context=context)
    assert first.new_text == again.new_text
    assert memory.asked.count(("read", "/p/models.py")) == 1
    memory.files["/p/models.py"] = MODELS.replace("nn.Dense(4)(x)", "nn.Dense(4)(x) * self.param('s', nn.initializers.ones, (1,))")
    rewrite_source(TRAIN, "/p/train.py", context=RunContext(memory))
    assert memory.asked.count(("read", "/p/models.py")) == 2


def test_the_runner_reads_siblings_from_disk(tmp_path):
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(TRAIN)
    [result] = rewrite_files([tmp_path / "train.py"])
    assert result.new_text == rewrite_source(TRAIN, str(tmp_path / "train.py"), context=RunContext(DiskFiles())).new_text
    assert "in_features" in result.new_text


MAIN = textwrap.dedent("""\
    import jax
    import optax

    import lib
    import models


    def main():
        state = lib.create(jax.random.PRNGKey(0), optax.sgd(0.1))
        return state.apply_fn({'params': state.params}, jax.numpy.ones((1, 3)))
    """)


def test_a_run_drops_its_caches_when_it_ends(tmp_path, monkeypatch):
    # what the run keeps of another file (its training analysis) holds the context, a
    # cycle: only `close()` at the end of the run lets reference counting free the run's
    # trees at once, instead of a full cycle collection scanning them all
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "lib.py").write_text(TRAIN)
    (tmp_path / "main.py").write_text(MAIN)
    made = []
    on_disk = RunContext.on_disk.__func__
    monkeypatch.setattr(RunContext, "on_disk", classmethod(lambda cls: made.append(on_disk(cls)) or made[-1]))
    results = rewrite_files([tmp_path / "main.py", tmp_path / "lib.py", tmp_path / "models.py"])
    assert all(r.status != "failed" for r in results)
    [context] = made
    assert not context._parsed and not context._ast and not context._tables and not context.in_progress


def test_a_closed_context_serves_a_new_run():
    memory = MemoryFiles({"/p/models.py": MODELS})
    with RunContext(memory) as context:
        first = rewrite_source(TRAIN, "/p/train.py", context=context)
        assert context._tables
    assert not context._tables and not context._parsed
    again = rewrite_source(TRAIN, "/p/train.py", context=context)
    assert first.new_text == again.new_text
    assert memory.asked.count(("read", "/p/models.py")) == 2
