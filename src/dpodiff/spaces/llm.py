"""Substitutes from a large language model behind an OpenAI-compatible chat endpoint.

This is how the paper built its spaces ("For each word, give 5 substitution
words ... Use the format A -> B"). The answer is free text, so the parser
accepts the shapes models actually produce: bullets, numbering, bold, quotes,
"A -> B, C", "A: B; C", or the word on one line and its substitutes below.
The API key is sent in the Authorization header only: never printed, logged,
cached or put in an error message.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dpodiff.errors import UsageError

INSTRUCTIONS = {
    "synonym": "For each word below, give {n} substitution words that do not change the meaning of the sentence. "
    "Keep the same part of speech and form (plural stays plural).",
    "antonym": "For each word below, give {n} opposite words if it has any (for a noun or a colour, give {n} "
    "clearly different things of the same kind).",
}
MAX_ANSWER_BYTES = 1_000_000


@dataclass
class LLMConfig:
    url: str  # base URL ("http://host:8000", ".../v1") or the full ".../v1/chat/completions"
    model: str
    key: str = field(default="", repr=False)
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry; doubles each time

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def config_from(url: str | None, model: str | None, key_file: str | Path | None = None, **kw) -> LLMConfig:
    """Settings from CLI options: the key from `key_file`, else from $OPENAI_API_KEY, else none (local servers)."""
    if not url or not model:
        raise UsageError("The llm source needs --llm-url (an OpenAI-compatible server) and --llm-model (the model name it serves).")
    if not re.match(r"^https?://", url):
        raise UsageError(f"--llm-url must start with http:// or https://, got {url!r}.")
    key = ""
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UsageError(f"Cannot read the API key file {key_file} ({e.strerror}).") from None
    else:
        key = os.environ.get("OPENAI_API_KEY", "").strip()
    return LLMConfig(url, model, key, **kw)


def ask(config: LLMConfig, text: str) -> str:
    """One chat completion; retries with backoff on network errors and 5xx/429, fails at once on other 4xx."""
    body = json.dumps(
        {"model": config.model, "messages": [{"role": "user", "content": text}], "temperature": 0}
    ).encode()
    headers = {"Content-Type": "application/json"}
    if config.key:
        headers["Authorization"] = f"Bearer {config.key}"
    last = ""
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(config.endpoint, data=body, headers=headers, method="POST")
        try:
            with _opener(config.endpoint).open(request, timeout=config.timeout) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if e.code in (429,) or e.code >= 500:
                continue
            hint = " (check the API key: --llm-key-file or $OPENAI_API_KEY)" if e.code in (401, 403) else ""
            raise UsageError(f"The LLM endpoint {config.endpoint} refused the request: {last}{hint}.") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = str(getattr(e, "reason", e))
            continue
        if len(raw) > MAX_ANSWER_BYTES:
            raise UsageError(f"The LLM endpoint {config.endpoint} answered more than {MAX_ANSWER_BYTES} bytes; is it a chat-completions endpoint?")
        try:
            return json.loads(raw)["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise UsageError(
                f"The LLM endpoint {config.endpoint} did not answer like an OpenAI chat-completions server "
                "(expected JSON with choices[0].message.content). Check --llm-url."
            ) from None
    raise UsageError(
        f"The LLM endpoint {config.endpoint} could not be reached after {config.retries + 1} tries (last error: {last}). "
        "Check that the server is running and --llm-url is right, or use an offline --source."
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    """A local server is reached directly, whatever proxy the environment names."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def question(prompt: str, words: list[str], kind: str, n: int) -> str:
    listed = "\n".join(words)
    return (
        f"{INSTRUCTIONS[kind].format(n=n)} Use the format A -> B, C, D with one line per word and nothing else.\n"
        f"Sentence: {prompt}\nWords:\n{listed}"
    )


_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-z][.)](?=\s))\s*")
_ARROW = re.compile(r"\s*(?:->|→|=>|—>|–>|:)\s*")
_EMPTY = {"none", "n/a", "na", "-", "no antonym", "no antonyms", "no opposite", "no opposites", "nothing"}


def _clean(item: str) -> str:
    item = re.sub(r"\*\*|__|`", "", item)
    item = re.sub(r"\s*\([^)]*\)\s*$", "", item)  # trailing notes: "cold (temperature)"
    item = item.strip().strip("\"'“”‘’").strip().rstrip(".!;").strip().strip("\"'“”‘’")
    return " ".join(item.split())


def parse_answer(answer: str, words: list[str]) -> dict[str, list[str]]:
    """Map each asked word (case-insensitively) to the substitutes the answer gives it, in order."""
    wanted = {w.lower(): w for w in words}
    out: dict[str, list[str]] = {w: [] for w in words}
    current: str | None = None
    for raw_line in answer.splitlines():
        line = _BULLET.sub("", re.sub(r"\*\*|__|`", "", raw_line)).strip()
        if not line:
            continue
        parts = _ARROW.split(line, maxsplit=1)
        head = _clean(parts[0]).lower()
        if len(parts) == 2 and head in wanted:
            current = wanted[head]
            items = parts[1]
        elif len(parts) == 1 and head in wanted:
            current = wanted[head]  # the word alone on a line; its substitutes follow
            continue
        elif current is not None and _BULLET.match(raw_line) and len(parts) == 1:
            items = line
        else:
            current = None if len(parts) == 2 else current
            continue
        for item in re.split(r"\s*(?:,|;|/|\|)\s*|\s+or\s+|\s+\d+[.)]\s+", items):
            item = _clean(re.sub(r"^\d+[.)]\s*", "", item))
            if item and item.lower() not in _EMPTY and item.lower() != current.lower() and len(item) <= 40:
                out[current].append(item)
    return {w: list(dict.fromkeys(subs)) for w, subs in out.items()}


def substitutes(config: LLMConfig, prompt: str, words: list[str], kind: str, n: int) -> dict[str, list[str]]:
    """Ask once for all words; a reply that gives no word a substitute is an error, not an empty space."""
    answer = ask(config, question(prompt, words, kind, n))
    parsed = parse_answer(answer, words)
    if not any(parsed.values()):
        shown = " ".join(answer.split())[:160]
        raise UsageError(
            f"The LLM at {config.endpoint} answered, but with no 'word -> substitutes' line for any of {words} "
            f"(it said: {shown!r}). Try another --llm-model, or an offline --source."
        )
    return parsed
