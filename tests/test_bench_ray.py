"""The Ray backend on a local CPU cluster gives the same database as the local backend; local never imports Ray."""

import contextlib
import json
import sqlite3
import subprocess
import sys

import pytest

from test_bench_command import PROMPTS, SPACE, run_cli

COLUMNS = "id, prompt, task, algorithm, seeds, settings, status, baseline_loss, best_loss, best_prompt, best_negative_prompt, evaluations, run_dir"


def dump(db):
    with contextlib.closing(sqlite3.connect(db)) as conn:
        runs = conn.execute(f"SELECT {COLUMNS} FROM runs ORDER BY id").fetchall()
        evaluations = conn.execute("SELECT run_id, idx, prompt, negative_prompt, candidate, loss, losses FROM evaluations ORDER BY run_id, idx").fetchall()
        meta = conn.execute("SELECT key, value FROM meta WHERE key IN ('settings', 'fingerprint')").fetchall()
    return runs, evaluations, meta


def same(a, b):
    """Rows equal, floats (also those in JSON lists) within 1e-6: another process, with other CPU threads, may sum in another order."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            if isinstance(u, str) and u.startswith("[") and u.endswith("]"):
                u, v = json.loads(u), json.loads(v)
            assert u == pytest.approx(v, abs=1e-6) if isinstance(u, (float, list)) else u == v


def test_ray_executor_matches_local(tmp_path, tiny_model_dir, tiny_scorer_dir):
    ray = pytest.importorskip("ray")
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    common = ["--space", tmp_path / "space.json", "--model", tiny_model_dir, "--scorer", tiny_scorer_dir,
              "--steps", 2, "--seeds", 2, "--budget", 3, "--algos", "random,epo", "--select", "--select-threshold", 0.0]
    code, err = run_cli("bench", tmp_path / "prompts.txt", "--out", tmp_path / "local", *common)
    assert code == 0, err
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        code, err = run_cli("bench", tmp_path / "prompts.txt", "--out", tmp_path / "ray", "--executor", "ray", *common)
    finally:
        ray.shutdown()
    assert code == 0, err
    local, distributed = dump(tmp_path / "local" / "results.sqlite"), dump(tmp_path / "ray" / "results.sqlite")
    assert len(local[0]) == 4 and len(local[1]) == 12
    for a, b in zip(local, distributed):
        same(a, b)
    for run in local[0]:
        assert (tmp_path / "ray" / run[-1] / "result.json").is_file()  # the workers saved the images under --out
    assert "report.html" in err and (tmp_path / "ray" / "report.html").is_file()


def test_local_executor_does_not_import_ray():
    code = ("import sys, dpodiff.cli; from dpodiff.bench import command, local_executor, runner, report, storage; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_task_whose_worker_dies_is_retried(tmp_path, tiny_model_dir, tiny_scorer_dir):
    """The first attempt of each task kills its worker process; max_retries brings the runs home, max_retries=0 fails them."""
    ray = pytest.importorskip("ray")
    from dpodiff.bench.config import BenchConfig
    from dpodiff.bench.jobs import Job
    from dpodiff.config import ModelSpec, RunConfig
    from dpodiff.bench.ray_executor import run_ray
    from dpodiff.bench.runner import run_one

    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    config = BenchConfig(RunConfig(task="improve", seeds=(0,), budget=2, steps=2), out=str(tmp_path),
                         models=ModelSpec(str(tiny_model_dir), str(tiny_scorer_dir)), space=str(tmp_path / "space.json"))

    def dies_once(config, prompt, algorithm):
        import os
        from pathlib import Path

        marker = Path(config.out) / f"died-{algorithm}"
        if not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies, as on a lost node or an out-of-memory kill
        return run_one(config, prompt, algorithm)

    jobs = [Job(1, PROMPTS[0], "random"), Job(2, PROMPTS[0], "epo")]
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        done = []
        run_ray(config, jobs[:1], lambda job: None, lambda job, record, error: done.append((job, record, error)), run=dies_once)
        failed = []
        run_ray(config, jobs[1:], lambda job: None, lambda job, record, error: failed.append((job, record, error)), max_retries=0, run=dies_once)
    finally:
        ray.shutdown()
    [(job, record, error)] = done
    assert (tmp_path / "died-random").exists() and error == "" and record.evaluations == 2 and record.prompt == PROMPTS[0]
    [(job, record, error)] = failed
    assert record is None and job.run_id == 2 and error.startswith("WorkerCrashedError"), error


def test_one_gpu_per_task_when_the_cluster_has_gpus(monkeypatch):
    ray = pytest.importorskip("ray")
    from dpodiff.bench import ray_executor

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 32.0, "GPU": 4.0})
    assert ray_executor._resources() == {"num_gpus": 1, "num_cpus": 1}
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert ray_executor._resources() == {"num_cpus": 1}
