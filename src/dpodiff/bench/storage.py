"""The benchmark database (SQLite, WAL): one row per run, every evaluation, and what the database was made for.

Each finished run is written in one transaction, so killing the process loses at most the runs in progress.
A run is first claimed (status 'running'); a rerun redoes every run that is not 'done', under the same id.
Claims are not exclusive between processes: one `dpodiff bench` at a time writes a database, which
bench/lock.py enforces with an OS lock on `<db>.lock` held for the whole command.
The meta table pins the schema version and the settings fingerprint, so results made with other settings
are never mixed into one database.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from dpodiff.bench.records import RunRecord
from dpodiff.errors import UsageError

SCHEMA_VERSION = 2  # 2: the evaluation-seed columns (bench --eval-seeds)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    prompt TEXT NOT NULL,
    task TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    seeds TEXT NOT NULL,
    settings TEXT NOT NULL,
    status TEXT NOT NULL,
    baseline_loss REAL,
    best_loss REAL,
    best_prompt TEXT,
    best_negative_prompt TEXT,
    top TEXT,
    evaluations INTEGER,
    wall_seconds REAL,
    judge_before REAL,
    judge_after REAL,
    judge_before_eval REAL,
    judge_after_eval REAL,
    repaired_eval REAL,
    broken_eval REAL,
    run_dir TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    UNIQUE (prompt, task, algorithm)
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL,
    candidate TEXT NOT NULL,
    loss REAL NOT NULL,
    losses TEXT NOT NULL,
    seconds REAL NOT NULL,
    similarity REAL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS baselines (prompt TEXT PRIMARY KEY, loss REAL NOT NULL, losses TEXT NOT NULL);
"""


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def open_db(path: Path, settings: dict) -> sqlite3.Connection:
    """Open (or create) the database for `settings`; refuse one made by another schema or with other settings."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: a killed process loses nothing committed
        conn.execute("PRAGMA foreign_keys=ON")
        meta = _meta(conn)
    except sqlite3.DatabaseError as e:
        raise UsageError(f"{path} is not a dpodiff benchmark database ({e}). Give another --db path, or delete the file.") from None
    if not meta:
        _create(conn, settings)
        return conn
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        conn.close()
        raise UsageError(
            f"{path} was written with benchmark schema version {meta.get('schema_version')} (dpodiff {meta.get('dpodiff_version', '?')}); "
            f"this dpodiff writes version {SCHEMA_VERSION}. Use another --db path, or export the old results with that dpodiff version."
        )
    if meta.get("fingerprint") != fingerprint(settings):
        stored = json.loads(meta.get("settings", "{}"))
        diffs = [f"{k}: {stored.get(k)!r} there, {settings.get(k)!r} now" for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
        conn.close()
        raise UsageError(
            f"{path} holds results made with other settings ({'; '.join(diffs) or 'fingerprint differs'}). "
            "Rerun with the same settings to resume, or give another --db path so that results are not mixed."
        )
    return conn


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        if tables:
            raise sqlite3.DatabaseError(f"it has tables {sorted(tables)} but no meta table")
        return {}
    return dict(conn.execute("SELECT key, value FROM meta"))


def _create(conn: sqlite3.Connection, settings: dict) -> None:
    from dpodiff import __version__

    conn.executescript(SCHEMA)
    with transaction(conn):
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", str(SCHEMA_VERSION)), ("dpodiff_version", __version__),
            ("settings", json.dumps(settings, sort_keys=True)), ("fingerprint", fingerprint(settings)), ("created_at", str(time.time())),
        ])


class transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, value, tb):
        if not self.conn.in_transaction:
            return False
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def done_runs(conn: sqlite3.Connection, task: str) -> set[tuple[str, str]]:
    return {(p, a) for p, a in conn.execute("SELECT prompt, algorithm FROM runs WHERE task = ? AND status = 'done'", (task,))}


def claim(conn: sqlite3.Connection, prompt: str, task: str, algorithm: str, seeds: list[int], settings: dict) -> int:
    """Mark the run as in progress and return its id (the id it already had if it was started before)."""
    with transaction(conn):
        row = conn.execute(
            "INSERT INTO runs (prompt, task, algorithm, seeds, settings, status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?) "
            "ON CONFLICT (prompt, task, algorithm) DO UPDATE SET status = 'running', started_at = excluded.started_at, error = NULL "
            "RETURNING id",
            (prompt, task, algorithm, json.dumps(seeds), json.dumps(settings, sort_keys=True), time.time()),
        ).fetchone()
    return int(row[0])


def finish(conn: sqlite3.Connection, run_id: int, record: RunRecord) -> None:
    """Store a run and its whole history in one transaction (replacing what a killed attempt left)."""
    with transaction(conn):
        conn.execute("DELETE FROM evaluations WHERE run_id = ?", (run_id,))
        conn.execute(
            "UPDATE runs SET status = ?, baseline_loss = ?, best_loss = ?, best_prompt = ?, best_negative_prompt = ?, top = ?, "
            "evaluations = ?, wall_seconds = ?, judge_before = ?, judge_after = ?, judge_before_eval = ?, judge_after_eval = ?, "
            "repaired_eval = ?, broken_eval = ?, run_dir = ?, error = ?, finished_at = ? WHERE id = ?",
            (record.status, record.baseline_loss, record.best_loss, record.best_prompt, record.best_negative_prompt, json.dumps(record.top),
             record.evaluations, record.wall_seconds, record.judge_before, record.judge_after, record.judge_before_eval,
             record.judge_after_eval, record.repaired_eval, record.broken_eval, record.run_dir, record.error or None, time.time(), run_id),
        )
        conn.executemany(
            "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, e["index"], e["prompt"], e["negative_prompt"], json.dumps(e["candidate"]), e["loss"], json.dumps(e["losses"]),
              e["seconds"], e.get("similarity")) for e in record.history],
        )


def fail(conn: sqlite3.Connection, run_id: int, error: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status != 'done'",  # never undo a finished run
                     (error, time.time(), run_id))


def stored_baselines(conn: sqlite3.Connection) -> dict[str, float]:
    return dict(conn.execute("SELECT prompt, loss FROM baselines"))


def store_baselines(conn: sqlite3.Connection, scores: dict[str, list[float]]) -> None:
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)",
                         [(p, sum(l) / len(l), json.dumps(l)) for p, l in scores.items()])


def run_rows(conn: sqlite3.Connection, task: str, prompts: list[str], algorithms: list[str]) -> list[sqlite3.Row]:
    """Finished runs of these prompts and algorithms, in prompt then algorithm order."""
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM runs WHERE task = ? AND status = 'done'", (task,)).fetchall()
    finally:
        conn.row_factory = None
    order = {(p, a): i for i, (p, a) in enumerate((p, a) for p in prompts for a in algorithms)}
    return sorted((r for r in rows if (r["prompt"], r["algorithm"]) in order), key=lambda r: order[(r["prompt"], r["algorithm"])])


def history(conn: sqlite3.Connection, run_id: int) -> list[float]:
    """Losses of a run's evaluations, in order."""
    return [r[0] for r in conn.execute("SELECT loss FROM evaluations WHERE run_id = ? ORDER BY idx", (run_id,))]
