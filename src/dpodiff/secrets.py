"""The secrets this process holds (the LLM API key), kept in one place so every error path can blank them out.

Whatever reads a secret registers it with `remember`; whatever prints an exception's text or a traceback
passes it through `scrub` first, so a library error that quotes a request header cannot leak the key.
"""

from __future__ import annotations

_KNOWN: set[str] = set()


def remember(secret: str) -> None:
    if secret:
        _KNOWN.add(secret)


def scrub(text: str) -> str:
    """`text` with every known secret replaced by ***."""
    for secret in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
