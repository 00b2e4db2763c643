"""`dpodiff ui`: a Gradio page for improve and attack runs, on one model loaded once per server.

The page builds a RunConfig from its fields, lets the user edit the search space as a table, and
runs `optimize()` in a worker thread while the Run event (a generator) shows the progress, the best
candidate so far and the loss curve. Stop ends the search between pipeline calls and keeps what was
found. The end shows original and best images per seed, the judge's verdicts, the top candidates and
a zip of the folder the CLI writes. Gradio's queue serves users in turn, each with their own run;
a lock keeps a second search off the model even if a browser left a run behind.

The code: `server.py` (Gradio, and the models every run shares), `layout.py` (the page's components and
which handler each event runs), `handlers.py` (what the events do), `worker.py` (the search in a thread
and the progress it reports), `views.py` (the tables, text and pictures the page shows).
"""

import signal
import sys

from dpodiff.ui.layout import build_app
from dpodiff.ui.server import DEFAULT_MAX_BUDGET, DEFAULT_MAX_SEEDS, Models, require_gradio
from dpodiff.ui.views import (MODEL_OWN, SPACE_HEADERS, TOP_HEADERS, before_after, build_space, code, describe, judge_markdown, loss_curve,
                              outcome_text, progress_html, save_zip, space_from_rows, space_rows, status_text, top_rows)
from dpodiff.ui.worker import ABANDONED_AFTER, POLL_SECONDS, Progress

__all__ = ["ABANDONED_AFTER", "DEFAULT_MAX_BUDGET", "DEFAULT_MAX_SEEDS", "MODEL_OWN", "POLL_SECONDS", "SPACE_HEADERS", "TOP_HEADERS",
           "Models", "Progress", "before_after", "build_app", "build_space", "code", "describe", "judge_markdown", "loss_curve",
           "outcome_text", "progress_html", "require_gradio", "save_zip", "serve", "space_from_rows", "space_rows", "status_text",
           "top_rows"]


def serve(models: Models, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until Ctrl-C."""
    demo = build_app(models)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a service stop cleans up as Ctrl-C does: atexit removes the runs
    demo.launch(server_name=host, server_port=port, show_error=True, ssr_mode=False, footer_links=[])
