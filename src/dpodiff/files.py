"""Writing result files so that a crash, a kill or a full disk never leaves a broken one.

Every file is written to a temporary file in the same folder, flushed to disk, then renamed over
the target: a reader sees the old file or the new one, never a partial one. JSON goes through one
encoder that turns non-finite numbers into null, so every file is valid for strict parsers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dpodiff.errors import UsageError


def finite(value):
    """`value` with every NaN or infinity (in nested lists and dicts) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def to_json(data) -> str:
    """The one JSON encoding of result files: indented, UTF-8 kept, strictly finite."""
    return json.dumps(finite(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(temporary path)`, fsync, then rename onto `path`; on failure the old file stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.fchmod(fd, _file_mode())  # mkstemp makes it 0600; a result file gets what the umask gives any new file
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data) -> Path:
    return write_text(path, to_json(data))


def save_image(path: str | Path, image, info=None) -> Path:
    """A PIL image as PNG (the format is named: the temporary file's suffix would not tell PIL); with an
    `ImageInfo` (dpodiff.report.metadata), its settings go into the `parameters` and `dpodiff` text chunks."""
    if info is None:
        return write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
    pnginfo = info.png()
    return write_atomic(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=pnginfo))


def save_all(folder: Path, writes: list[tuple[str, Callable[[Path], object]]]) -> None:
    """Run each (file name, writer) in order; one that fails does not stop the others. Then a
    UsageError names what could not be written, the folder and its free space."""
    failed, written = [], []
    for name, write in writes:
        try:
            write(folder / name)
            written.append(name)
        except OSError as e:
            failed.append(f"{name} ({e.strerror or e})")
    if failed:
        free = shutil.disk_usage(folder).free / 2**20
        saved = f"Saved: {', '.join(written)}" if written else "No file was saved"
        raise UsageError(f"Could not write {', '.join(failed)} in {folder} ({free:.0f} MiB free there). "
                         f"{saved}. Free some space, make the folder writable, or choose another --out.")
