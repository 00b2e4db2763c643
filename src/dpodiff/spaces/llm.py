"""Substitutes from a large language model behind an OpenAI-compatible chat endpoint.

This is how the paper built its spaces ("For each word, give 5 substitution
words ... Use the format A -> B"). The answer is free text, so the parser
accepts the shapes models actually produce: bullets, numbering, bold, quotes,
"A -> B, C", "A: B; C", or the word on one line and its substitutes below.
The API key is sent in the Authorization header only, and only to the --llm-url
server: never printed, logged, cached or put in an error message.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dpodiff import secrets
from dpodiff.errors import UsageError

INSTRUCTIONS = {
    "synonym": "For each word below, give {n} substitution words that do not change the meaning of the sentence. "
    "Keep the same part of speech and form (plural stays plural).",
    "antonym": "For each word below, give {n} opposite words if it has any (for a noun or a colour, give {n} "
    "clearly different things of the same kind).",
}
MAX_ANSWER_BYTES = 1_000_000
# A dead or hung endpoint fails within about 30 s: 3 tries of 10 s, 0.5 s and 1 s apart.
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2


@dataclass
class LLMConfig:
    url: str  # base URL ("http://host:8000", ".../v1") or the full ".../v1/chat/completions"
    model: str
    key: str = field(default="", repr=False)
    timeout: float = DEFAULT_TIMEOUT  # seconds per request
    retries: int = DEFAULT_RETRIES
    backoff: float = 0.5  # seconds before the first retry; doubles each time

    def __post_init__(self):
        check_key(self.key, "LLMConfig.key")  # library users build configs directly too

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def check_key(key: str, where: str) -> None:
    """The key goes into an HTTP header: anything but printable ASCII would crash the request with the key
    in the traceback, so it is refused here, by a message that does not quote it."""
    secrets.remember(key)
    bad = next((i for i, c in enumerate(key) if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        raise UsageError(
            f"The API key from {where} has a character that cannot be sent in an HTTP header (character {bad + 1} "
            f"of {len(key)}; a key is printable ASCII without spaces). A key file is read for its first non-empty "
            "line: check for a stray quote, space, comment or non-ASCII letter on it."
        )


def config_from(url: str | None, model: str | None, key_file: str | Path | None = None,
                timeout: float | None = None, retries: int | None = None) -> LLMConfig:
    """Settings from CLI options: the key from `key_file`, else from $OPENAI_API_KEY, else none (local servers);
    a timeout or retries of None means the default."""
    if not url or not model:
        raise UsageError("The llm source needs --llm-url (an OpenAI-compatible server) and --llm-model (the model name it serves).")
    if not re.match(r"^https?://", url):
        raise UsageError(f"--llm-url must start with http:// or https://, got {url!r}.")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    retries = DEFAULT_RETRIES if retries is None else retries
    if not 0 < timeout < float("inf") or retries < 0:
        raise UsageError(f"--llm-timeout must be a positive number of seconds and --llm-retries at least 0 (got {timeout:g}, {retries}).")
    if key_file:
        try:
            text = Path(key_file).read_bytes().decode("utf-8", "replace").lstrip("\ufeff")
        except OSError as e:
            raise UsageError(f"Cannot read the API key file {key_file} ({e.strerror}).") from None
        key = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if not key:
            raise UsageError(f"The API key file {key_file} is empty.")
        check_key(key, f"the file {key_file}")
    else:
        key = os.environ.get("OPENAI_API_KEY", "").strip()
        check_key(key, "$OPENAI_API_KEY")
    return LLMConfig(url, model, key, timeout=timeout, retries=retries)


def ask(config: LLMConfig, text: str) -> str:
    """One chat completion; retries with backoff on network errors, timeouts and 5xx/429, fails at once on other 4xx."""
    body = json.dumps(
        {"model": config.model, "messages": [{"role": "user", "content": text}], "temperature": 0}
    ).encode()
    headers = {"Content-Type": "application/json"}
    if config.key:
        headers["Authorization"] = f"Bearer {config.key}"
    last, timed_out = "", False
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(config.endpoint, data=body, headers=headers, method="POST")
        timed_out = False
        try:
            with _opener(config.endpoint).open(request, timeout=config.timeout) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if e.code in (429,) or e.code >= 500:
                continue
            hint = " (check the API key: --llm-key-file or $OPENAI_API_KEY)" if e.code in (401, 403) else ""
            raise UsageError(f"The LLM endpoint {config.endpoint} refused the request: {last}{hint}.") from None
        except (OSError, http.client.HTTPException) as e:  # OSError covers URLError, timeouts, refused connections
            reason = getattr(e, "reason", e)
            timed_out = isinstance(reason, TimeoutError)
            last = f"no answer within {config.timeout:g} s" if timed_out else str(reason) or type(reason).__name__
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
    if timed_out:
        advice = (f"A slow model may need more time: raise --llm-timeout (now {config.timeout:g} s per request) "
                  "or --llm-retries, or use an offline --source.")
    else:
        advice = "Check that the server is running and --llm-url is right, or use an offline --source."
    raise UsageError(
        f"The LLM endpoint {config.endpoint} could not be reached after {config.retries + 1} tries (last error: {last}). {advice}"
    )


def _origin(url: str) -> str:
    """scheme://host:port, the default port written out, so that equal origins compare equal."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number: never equal to a good one
        port = "?"
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """The Authorization header must reach no server but the one named by --llm-url: a redirect to another
    origin (scheme, host, port) is refused; one on the same server is followed with the same request."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = _origin(req.full_url), _origin(newurl)
        if old != new:
            fp.close()
            raise UsageError(
                f"The LLM endpoint at {old} redirected to another server, {new} (HTTP {code}); dpodiff does not send "
                f"the API key there. If that server is the right one, give it as --llm-url."
            )
        return urllib.request.Request(newurl, data=req.data, headers=req.headers, method=req.get_method())


def _opener(url: str) -> urllib.request.OpenerDirector:
    """A local server is reached directly, whatever proxy the environment names."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameOriginRedirects)
    return urllib.request.build_opener(_SameOriginRedirects)


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
