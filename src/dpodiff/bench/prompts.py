"""Reading the benchmark's prompt file: plain text (one prompt a line), a JSON list, or JSON lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dpodiff.errors import UsageError


@dataclass
class PromptList:
    prompts: list[str]  # unique, in file order
    duplicates: list[str]  # prompts met again after their first line (each listed once)


def read_prompts(path: Path) -> PromptList:
    """Prompts of `path`; duplicates (same words, whitespace aside) are kept once, so each is run once."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"The prompt file {str(path)!r} does not exist. Give a text file with one prompt a line, or a JSON/JSONL file.") from None
    except IsADirectoryError:
        raise UsageError(f"{str(path)!r} is a folder; give a text file with one prompt a line, or a JSON/JSONL file.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"Cannot read the prompt file {str(path)!r} ({e}). Give a readable UTF-8 text, JSON or JSONL file.") from None
    raw = _parse(text, Path(path))
    prompts, duplicates, seen = [], [], set()
    for item in raw:
        prompt = " ".join(item.split())
        if not prompt:
            continue
        if prompt in seen:
            if prompt not in duplicates:
                duplicates.append(prompt)
            continue
        seen.add(prompt)
        prompts.append(prompt)
    if not prompts:
        raise UsageError(f"The prompt file {str(path)!r} holds no prompt. Write one prompt a line (or a JSON list of strings or of objects with a \"prompt\" field).")
    return PromptList(prompts, duplicates)


def _parse(text: str, path: Path) -> list[str]:
    stripped = text.strip()
    if path.suffix.lower() == ".jsonl":
        return [_prompt_of(_json(line, path, n), path, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if path.suffix.lower() == ".json" or stripped.startswith("["):
        data = _json(stripped, path, None)
        if not isinstance(data, list):
            raise UsageError(f"{path}: a JSON prompt file must hold a list of strings or of objects with a \"prompt\" field.")
        return [_prompt_of(item, path, n) for n, item in enumerate(data, 1)]
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def _json(text: str, path: Path, line: int | None):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f" line {line}" if line else ""
        raise UsageError(f"{path}{where} is not valid JSON ({e.msg} at column {e.colno}). Fix it, or use a text file with one prompt a line.") from None


def _prompt_of(item, path: Path, n: int) -> str:
    if isinstance(item, dict) and isinstance(item.get("prompt"), str):
        return item["prompt"]
    if isinstance(item, str):
        return item
    raise UsageError(f"{path}: entry {n} is neither a string nor an object with a string \"prompt\" field: {str(item)[:80]}.")
