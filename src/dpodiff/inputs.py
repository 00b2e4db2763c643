"""Checks of user input that several commands share, each failing with a UsageError that says how to fix it."""

from __future__ import annotations

import os
from pathlib import Path

from dpodiff.defaults import MAX_IMAGES
from dpodiff.display import shown
from dpodiff.errors import UsageError


def pick_seeds(seeds: str | None, seed: list[int] | None) -> str | list[int]:
    """`--seeds N` (seeds 0..N-1, or a comma list) or `--seed S` (repeatable: these seeds); default 2 seeds."""
    if seeds is not None and seed:
        raise UsageError("Give either --seeds (a count or a comma list) or --seed (particular seeds), not both.")
    return list(seed) if seed else (seeds if seeds is not None else "2")


def parse_seeds(text: str | int | list[int]) -> list[int]:
    """`N` means seeds 0..N-1; `a,b,c` is an explicit list."""
    if isinstance(text, int):
        text = str(text)
    if isinstance(text, list):
        seeds = text
    else:
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise UsageError(f"--seeds {text!r} is not a count (e.g. 4) or a comma list of integers (e.g. 0,3,7).") from None
        if len(values) == 1 and "," not in str(text):
            if values[0] < 1:
                raise UsageError(f"--seeds {text} asks for no images; give a count >= 1 or a comma list of seeds.")
            if values[0] > MAX_IMAGES:
                raise UsageError(f"--seeds {shown(str(text), 30)} asks for more than {MAX_IMAGES} images per candidate; give a "
                                 "smaller count, or particular seeds with --seed S (e.g. --seed 1234).")
            return list(range(values[0]))
        seeds = values
    if not seeds:
        raise UsageError("--seeds is empty; give a count >= 1 or a comma list of seeds.")
    if len(seeds) > MAX_IMAGES:
        raise UsageError(f"{len(seeds)} seeds are more than {MAX_IMAGES} images per candidate; list fewer.")
    if any(s < 0 or s >= 2**63 for s in seeds):
        raise UsageError(f"--seeds {seeds}: seeds must be non-negative 64-bit integers.")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {seeds} repeats a seed; each seed gives one image, list each once.")
    return list(seeds)


def check_prompt(prompt: str, tokenizer, what: str = "text encoder") -> str:
    """The prompt, stripped; an error when it is empty or longer than the tokenizer's window."""
    if not prompt or not prompt.strip():
        raise UsageError("The prompt is empty; give the text you want an image of, e.g. \"a red circle above a blue square\".")
    prompt = prompt.strip()
    limit = int(tokenizer.model_max_length)
    ids = tokenizer(prompt, truncation=False).input_ids
    if len(ids) > limit:
        kept = tokenizer.decode(ids[1 : limit - 1])
        cut = tokenizer.decode(ids[limit - 1 : -1])
        raise UsageError(
            f"The prompt is {len(ids) - 2} tokens long, but the {what} reads at most {limit - 2} (plus start and end "
            f"tokens). Everything after {shown(kept[-40:])!r} would be cut: {shown(cut)!r}. Shorten the prompt."
        )
    return prompt


def check_budget(budget: int) -> int:
    if budget <= 0:
        raise UsageError(f"--budget {budget}: the budget counts scored candidates and must be at least 1 (the paper uses 40).")
    return budget


RUN_FILES = ("result.json", "space.json", "grid.png", "*seed*.png", "evaluations.jsonl")  # what improve, attack and generate write


def check_output_dir(path: str | Path, overwrite: bool | None = None, resume: bool = False) -> Path:
    """Create the folder now, so an unwritable one fails before any model is loaded.

    With `overwrite` False, a folder holding another run is refused (its images would sit beside the
    new result); True clears the files dpodiff wrote there; None (bench) leaves the folder as it is.
    `resume` keeps the run's journal (journal.py), which must be there, and clears the rest.
    """
    out = Path(path).expanduser()
    journal = out / RUN_FILES[-1]
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one of them.")
    if resume and not journal.is_file():
        raise UsageError(f"--resume: {str(out)!r} holds no journal ({journal.name}) of an earlier run to continue; run without --resume.")
    earlier = [p for pattern in RUN_FILES for p in out.glob(pattern)] if out.is_dir() and overwrite is not None else []
    if earlier and not (overwrite or resume):
        hint = ", --resume to continue it" if journal.is_file() else ""
        raise UsageError(f"The output folder {str(out)!r} already holds a run ({earlier[0].name} and {len(earlier) - 1} more files). "
                         f"Choose another --out{hint}, or add --overwrite to replace it.")
    for p in earlier:
        if not (resume and p == journal):
            p.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".dpodiff-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"Cannot write to the output folder {str(out)!r} ({e.strerror or e}). Choose a folder you can write to with --out.") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"Cannot write to the output folder {str(out)!r}. Choose a folder you can write to with --out.")
    return out


def check_port(host: str, port: int) -> None:
    """The UI's address is free and ours to take: said before the model loads, not after."""
    import socket

    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port; give 1 to 65535 (default 7860).")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except PermissionError:
        raise UsageError(f"--port {port}: ports below 1024 need administrator rights; choose a port from 1024 up (default 7860).") from None
    except OSError as e:
        raise UsageError(f"Cannot serve on {host}:{port} ({e.strerror or e}): another program may use the port, or the address "
                         "is not this machine's; choose another --port or --host.") from None
