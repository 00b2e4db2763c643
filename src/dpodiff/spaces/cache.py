"""A cache of built spaces: one JSON file per key under $DPODIFF_CACHE or ~/.cache/dpodiff/spaces.

Building an antonym space with embedding neighbours or an LLM is slow or costs
money; the same prompt and settings give the same space, so it is built once.
The key holds everything that changes the result (prompt, kind, source,
settings, a fingerprint of the text encoder, the LLM endpoint and model) and
never the API key.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from dpodiff.errors import UsageError
from dpodiff.spaces.space import SearchSpace


def default_dir() -> Path:
    return Path(os.environ.get("DPODIFF_CACHE") or Path.home() / ".cache" / "dpodiff" / "spaces")


def path_for(key: dict, cache_dir=None) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]
    return Path(cache_dir or default_dir()) / f"{digest}.json"


def read(key: dict, cache_dir=None) -> SearchSpace | None:
    path = path_for(key, cache_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        space = SearchSpace.from_dict(data["space"])
        return space if space.positive or space.negative else None  # stored by older versions: ask again
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UsageError):
        return None  # missing or damaged entries ("[]", "null", cut short) are rebuilt, and rewritten


def write(key: dict, space: SearchSpace, cache_dir=None) -> None:
    """Store atomically; a cache that cannot be written only costs a rebuild next time, so warn and go on.

    An empty space is not stored: it usually means a source that failed for now (an LLM answer with no
    usable substitute), and a cached one would stop every later run from asking again."""
    if not space.positive and not space.negative:
        return
    path = path_for(key, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "space": space.to_dict()}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"dpodiff: could not write the space cache {path.parent} ({e.strerror}); set $DPODIFF_CACHE to a writable folder.")
