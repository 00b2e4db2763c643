"""A run's search in a worker thread, and what it reports to the page.

The Run event is a generator that must keep yielding news while `optimize()` works, so the search runs in a
thread of its own and writes a Progress the event reads. The thread waits for the model's lock (one search
on the model at a time), and stops between pipeline calls when Stop was pressed or the page stopped asking.
"""

import threading
import time
import traceback
from dataclasses import dataclass, field

from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.results import OptimizationResult
from dpodiff.spaces import SearchSpace
from dpodiff.ui.server import Models

POLL_SECONDS = 0.25  # how often the page is refreshed while a run works
ABANDONED_AFTER = 30.0  # a run whose page stopped asking for news this long ago (browser closed) is stopped


@dataclass
class Progress:
    """What the worker thread reports and the page shows; written by the worker, read by the page."""

    budget: int
    gpo_iterations: int = 0
    gpo_done: int = 0
    gpo_loss: float | None = None
    result: OptimizationResult | None = None  # the live result, its history growing
    polled: float = field(default_factory=time.monotonic)  # when the page last asked for news
    waiting: bool = True  # for the model, behind another run
    outcome: OptimizationResult | None = None
    error: str | None = None
    done: bool = False


@dataclass
class SearchThread:
    """One run's `optimize()` on the shared models, in a daemon thread that reports to `progress`."""

    models: Models
    config: RunConfig
    space: SearchSpace
    scorer_name: str | None  # one of the server's scorers; empty: the default
    stop_flag: threading.Event  # set by Stop, or when the Run event ends
    progress: Progress

    def start(self) -> threading.Thread:
        """Start the search; a daemon, so a server stopped mid-run does not wait for it."""
        worker = threading.Thread(target=self.work, name="dpodiff-ui-run", daemon=True)
        worker.start()
        return worker

    def work(self) -> None:
        """The search, once the model is free; any failure ends as a message for the page, a bug's traceback in the log."""
        from dpodiff.optimization import optimize

        progress = self.progress
        try:
            with self.models.lock:
                progress.waiting = False
                progress.outcome = optimize(self.space.prompt, pipeline=self.models.backend, scorer=self.models.scorer_for(self.scorer_name),
                                            config=self.config, space=self.space, model_name=self.models.name,
                                            on_evaluation=self.on_evaluation, on_gpo_iteration=self.on_gpo_iteration,
                                            should_stop=self.should_stop)
        except UsageError as e:
            progress.error = str(e)
        except KeyboardInterrupt:
            progress.error = "Stopped before anything was scored."
        except Exception as e:  # noqa: BLE001  a bug: its traceback goes to the server's log, its message to the page
            traceback.print_exc()
            progress.error = f"{type(e).__name__}: {e}"
        finally:
            progress.done = True

    def on_evaluation(self, evaluation, result) -> None:
        """Each scored candidate: the page shows the live result (its best so far and loss curve)."""
        self.progress.result = result

    def on_gpo_iteration(self, iteration: int, loss: float) -> None:
        """Each step of the gradient phase, which scores no candidate: the page counts these instead."""
        self.progress.gpo_done, self.progress.gpo_loss = iteration + 1, loss

    def should_stop(self) -> bool:
        """Stop was pressed, or nobody has looked for a while (the browser was closed): the model is free for others."""
        return self.stop_flag.is_set() or time.monotonic() - self.progress.polled > ABANDONED_AFTER
