"""User text in messages and on the terminal: a prompt may hold escape codes, rich markup or 10,000 characters."""

from __future__ import annotations


def shown(text: str, limit: int = 80) -> str:
    """`text` safe to print in a message: control characters (escape codes that could rewrite the
    user's terminal) written as escapes, and cut to `limit` characters."""
    safe = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def terminal(text: str, limit: int = 200) -> str:
    """`shown(text)` for a rich console, where [brackets] would otherwise be read as markup."""
    from rich.markup import escape

    return escape(shown(text, limit))
