"""Where a model comes from: a local folder or a hub id, and the one-paragraph error when neither works.

A leaf module, shared by the pipeline loader (models.py) and the scorer loader (objectives/).
"""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path

from dpodiff.errors import UsageError


def not_found(what: str, name: str, layout: str, error: Exception | None) -> UsageError:
    reason = f" ({type(error).__name__}: {str(error).splitlines()[0][:300]})" if error else ""
    return UsageError(
        f"Could not load the {what} {name!r}{reason}. It is neither a local folder in the {layout} layout "
        f"nor a model the Hugging Face hub cache could provide. Check the spelling; if you are offline, "
        f"download it on a connected machine (e.g. `hf download {name}`) or pass the path of a local "
        f"folder that holds it."
    )


def is_local(name: str) -> bool:
    path = Path(name).expanduser()
    return path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection now (seconds, not its client's retries)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urllib.parse.urlsplit(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_local(name: str, what: str, marker: str, layout: str) -> None:
    """A name that looks like a path must be a folder holding `marker`; a hub id must be in the local
    cache or the hub reachable right now (otherwise the hub client retries for half a minute)."""
    if not is_local(name):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, marker), str) and not hub_reachable():
            raise not_found(what, name, layout, ConnectionError("not in the local cache, and the hub cannot be reached"))
        return
    path = Path(name).expanduser()
    if not path.is_dir():
        raise UsageError(f"The {what} folder {name!r} does not exist. Pass an existing folder in the {layout} layout or a hub id.")
    if not (path / marker).is_file():
        raise UsageError(
            f"The folder {name!r} is not a {what} in the {layout} layout: it has no {marker}. "
            f"Save the model there with `save_pretrained`, or point to the folder that contains {marker}."
        )


def checkpoint_file(path: str | Path, names: tuple[str, ...], what: str, fetch: str) -> Path:
    """A checkpoint read from one file: `path` itself, or the first of `names` in the folder `path`;
    `fetch` tells the user how to get it."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = [path / name for name in names if (path / name).is_file()]
        if not found:
            raise UsageError(f"The folder {str(path)!r} holds no {' or '.join(names)} ({what}). {fetch}")
        return found[0]
    if not path.is_file():
        raise UsageError(f"The {what} {str(path)!r} does not exist. {fetch}")
    return path


def read_torch_file(file: Path, fetch: str):
    """torch.load with weights_only (no code from the file runs); an unreadable file is a UsageError."""
    import torch

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors have no common type
        raise UsageError(f"{str(file)!r} is not a readable torch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]}). {fetch}") from None
