"""Running `dpodiff` in the test's own process, as a user types it (the package itself never imports its CLI for tests)."""

import contextlib
import io
import sys


def run_cli(*args) -> tuple[int, str]:
    """Run `dpodiff ARGS` in this process, as a user would type it; (exit status, stderr)."""
    from dpodiff.cli import main

    sys.argv = ["dpodiff", *map(str, args)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code or 0
    return code, err.getvalue()
