"""Two real `dpodiff bench` processes on one database: the second is refused while the first runs, and a
killed one leaves no lock behind (flock is dropped by the OS), so the next bench resumes its work."""

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGKILL are POSIX")

PROMPTS = ["a red circle above a blue square", "a green triangle next to a yellow circle"]
SPACE = {
    PROMPTS[0]: {"synonym": {"circle": ["disk", "ring"]}, "antonym": {"red": ["blue", "green", "pink"], "circle": ["square", "triangle"]}, "keywords": ["red", "circle"]},
    PROMPTS[1]: {"synonym": {"triangle": ["wedge"]}, "antonym": {"green": ["red", "blue"], "triangle": ["square", "circle"]}, "keywords": ["green", "triangle"]},
}
BUDGET = 4
# the CLI as a user runs it, in a process of its own, with one thread like the rest of the tests
DPODIFF = [sys.executable, "-c", "import sys, torch; torch.set_num_threads(1); sys.argv[0] = 'dpodiff'; from dpodiff.cli import main; main()"]


@pytest.fixture
def command(tmp_path, tiny_model_dir, tiny_scorer_dir):
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    db = tmp_path / "shared.sqlite"

    def make(out: str) -> list[str]:
        return [*DPODIFF, "bench", str(tmp_path / "prompts.txt"), "--out", str(tmp_path / out), "--db", str(db),
                "--space", str(tmp_path / "space.json"), "--model", str(tiny_model_dir), "--scorer", str(tiny_scorer_dir),
                "--steps", "2", "--seeds", "2", "--budget", str(BUDGET), "--algos", "random,epo"]

    return make, db


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "1000"}  # wide: messages on one line


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=ENV)


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the first bench ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def lock_holder(db: Path) -> dict:
    try:
        return json.loads((db.parent / (db.name + ".lock")).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def query(db: Path, sql: str) -> list:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def assert_each_run_once(db: Path) -> None:
    runs = query(db, "SELECT id, prompt, algorithm, status, evaluations FROM runs ORDER BY id")
    assert sorted((p, a) for _, p, a, _, _ in runs) == sorted((p, a) for p in PROMPTS for a in ("random", "epo"))
    assert all(status == "done" and n == BUDGET for _, _, _, status, n in runs), runs
    for run_id, *_ in runs:
        assert [i for (i,) in query(db, f"SELECT idx FROM evaluations WHERE run_id = {run_id} ORDER BY idx")] == list(range(BUDGET))


def test_a_second_bench_on_the_same_database_exits_2_while_the_first_runs(command, tmp_path):
    make, db = command
    first = start(make("out1"), tmp_path / "first.log")
    try:
        wait_until(lambda: lock_holder(db).get("pid") == first.pid, first, "it held the lock")
        first.send_signal(signal.SIGSTOP)  # the first is surely still running while the second tries
        try:
            second = subprocess.run(make("out2"), check=False, capture_output=True, text=True, timeout=300, env=ENV)
        finally:
            first.send_signal(signal.SIGCONT)
        err = second.stderr
        assert second.returncode == 2, err
        assert "Another dpodiff bench" in err and f"pid {first.pid} on host {socket.gethostname()}" in err and f"database {db};" in err
        assert "loading" not in second.stderr and not (tmp_path / "out2" / "summary.csv").exists()  # refused before any work
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert_each_run_once(db)
    assert (tmp_path / "out1" / "summary.csv").is_file()


def test_a_killed_bench_leaves_no_lock_and_the_next_one_resumes(command, tmp_path):
    make, db = command
    first = start(make("out"), tmp_path / "first.log")
    try:
        wait_until(lambda: query(db, "SELECT 1 FROM runs WHERE status = 'done'"), first, "one run was done")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert lock_holder(db).get("pid") == first.pid  # the lock file is left behind; the lock itself died with the process
    finished = {(p, a): t for p, a, t in query(db, "SELECT prompt, algorithm, finished_at FROM runs WHERE status = 'done'")}
    assert 1 <= len(finished) < 4, "the first bench finished everything before it could be killed; the test proves nothing"

    again = subprocess.run(make("out"), check=False, capture_output=True, text=True, timeout=600, env=ENV)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} of 4 runs are already in the database" in again.stderr
    assert_each_run_once(db)
    kept = {(p, a): t for p, a, t in query(db, "SELECT prompt, algorithm, finished_at FROM runs")}
    assert all(kept[k] == t for k, t in finished.items())  # runs finished before the kill were not redone
