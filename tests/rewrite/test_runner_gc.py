"""A run collects cycles rarely (the run's parse caches make each collection costly) and
gives the caller back the thresholds it had, also when a file fails."""

from __future__ import annotations

import gc

from nnx_migrate.rewrite import runner


def test_run_raises_gc_thresholds_and_restores_them(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("import flax.linen as nn\n")
    seen = []

    def spy(*args, **kwargs):
        seen.append(gc.get_threshold())
        raise RuntimeError("boom")  # a failing file must not leave the thresholds raised

    monkeypatch.setattr(runner, "rewrite_source", spy)
    before = gc.get_threshold()
    results = runner.rewrite_files([tmp_path / "a.py"])
    assert results[0].status == "failed" and "boom" in results[0].error
    assert seen == [runner._RUN_GC_THRESHOLDS] != [before]
    assert gc.get_threshold() == before
