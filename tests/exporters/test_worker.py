"""``graphfeat.runtime.Worker``: one MindSpore worker process for a series of jobs.

What it must keep from a fresh process per job: the same file byte for byte, a
clean start after any failed job, and a bound on the memory it holds.
"""
from __future__ import annotations

import pytest

pytest.importorskip("mindspore")

from graphfeat.errors import GraphfeatError  # noqa: E402
from graphfeat.runtime import Worker, export_in_worker, registered_models  # noqa: E402

SIZE = (64, 64)


def test_a_kept_worker_writes_the_files_a_fresh_one_writes_and_restarts_after_a_failure(tmp_path):
    fresh = tmp_path / "fresh.onnx"
    export_in_worker("resnet18", fresh, input_size=SIZE)
    with Worker() as worker:
        kept = tmp_path / "kept.onnx"
        export_in_worker("mobilenet_v3_small_100", tmp_path / "other.onnx", input_size=SIZE, worker=worker)
        export_in_worker("resnet18", kept, input_size=SIZE, worker=worker)
        assert worker.started == 1  # the second export ran in the process of the first
        # MindSpore's graph names count the graphs its process compiled; the export names the graph itself
        assert kept.read_bytes() == fresh.read_bytes()
        with pytest.raises(GraphfeatError, match="export of resnet81 failed: unknown model 'resnet81'"):
            export_in_worker("resnet81", tmp_path / "bad.onnx", input_size=SIZE, worker=worker)
        assert not (tmp_path / "bad.onnx").exists()
        assert "resnet18" in registered_models(worker)
        assert worker.started == 2  # a failed job ends its process; the next job starts a new one


def test_a_worker_gone_or_over_its_memory_bound_is_replaced():
    with Worker() as worker:
        assert "resnet18" in registered_models(worker)
        worker._proc.kill()  # it died between jobs (say, the OOM killer)
        worker._proc.wait()
        worker.max_rss_mb = 1  # the next process ends after each job: MindSpore alone holds more than 1 MiB
        assert "resnet18" in registered_models(worker)
        assert worker.started == 2
        registered_models(worker)
        assert worker.started == 3
