"""The one exception type that means "the user gave us something we cannot use"."""


class UsageError(Exception):
    """Bad input: the CLI prints the message (no traceback) and exits with status 2.

    The message says what is wrong and how to fix it.
    """

