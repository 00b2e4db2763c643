"""One `dpodiff bench` per database at a time: an OS lock on `<db>.lock`, held for the whole command.

Without it, two benchmarks on one database both claim every unfinished run, both compute it, and the
last to finish overwrites the other's row; one may even set a run the other finished back to 'running'
or 'failed'. The lock is flock(2) on a file beside the database: the OS drops it when its process ends,
however it ends (SIGKILL, a crash, a lost session), so a stale lock file never blocks the next run. The
file holds the holder's pid and host, for the message the second process prints; it is left in place
(deleting a lock file while another process may be opening it would let two processes hold "the" lock).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from dpodiff.display import shown
from dpodiff.errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None


def lock_path(db: Path) -> Path:
    return Path(db).with_name(Path(db).name + ".lock")


class BenchLock:
    """`with BenchLock(db):` holds the database's lock; raises UsageError at once if another process holds it."""

    def __init__(self, db: Path):
        self.db = Path(db)
        self.path = lock_path(self.db)
        self.shown_db, self.shown_path = shown(str(self.db), 1000), shown(str(self.path), 1000)  # for messages
        self.fd: int | None = None

    def __enter__(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"Cannot create the lock file {self.shown_path} of the database ({e.strerror or e}). "
                             "Give a --db path in a folder you can write to.") from None
        try:
            _lock(fd)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"Another dpodiff bench ({holder}) is using the database {self.shown_db}; two at once would compute the same runs twice. "
                f"Wait for it to finish (rerunning then resumes), or give another --db path. (Lock file: {self.shown_path}.)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:  # who holds it, for the message of a second bench; the lock works without it
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}).encode())
        except OSError:
            pass

    def __exit__(self, *exc) -> bool:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None
        return False


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    import msvcrt

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # released by Windows too when the process ends
    except OSError:
        raise BlockingIOError from None


def _holder(fd: int) -> str:
    """"pid 123 on host h, since ..." from the lock file, or what is known of it."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started_at"])))
        return f"pid {int(info['pid'])} on host {shown(str(info['host']), 100)}, since {since}"
    except (OSError, AttributeError, ValueError, KeyError, TypeError):  # no os.pread on Windows
        return "a process that has not yet written its pid"
