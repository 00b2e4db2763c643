"""What the page's events run: Build space, Run (config, space, the search in a thread, its news, the results and
the zip) and Stop. The components they read and write are laid out in layout.py.

Gradio hands a handler the browser session only through a `gr.Request` annotation, so this module needs Gradio
when it is imported; only build_app imports it, once require_gradio has found it.
"""

import threading
import time
from typing import TYPE_CHECKING

from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.optimizers import GPOSettings
from dpodiff.registry import OPTIMIZERS
from dpodiff.results import OptimizationResult
from dpodiff.spaces import SearchSpace
from dpodiff.ui.server import Models, require_gradio
from dpodiff.ui.views import (MODEL_OWN, before_after, build_space, describe, judge_markdown, loss_curve, outcome_text, progress_html, save_zip,
                              space_from_rows, space_rows, status_text, top_rows)
from dpodiff.ui.worker import POLL_SECONDS, Progress, SearchThread

if TYPE_CHECKING:
    from dpodiff.ui.layout import Page

gr = require_gradio()


def session_of(request) -> str:
    """The browser session an event came from: each has its own stop flag."""
    return getattr(request, "session_hash", None) or "default"


class PageHandlers:
    """The events of one server's page. Every visitor shares the models, the folder of the runs' zips and the
    stop flags, one per browser session: set by Stop, read by that session's run."""

    def __init__(self, models: Models, page: "Page", results_root: str):
        self.models, self.page, self.results_root = models, page, results_root
        self.stops: dict[str, threading.Event] = {}
        self.distilled = models.backend.distilled_guidance  # Flux: negatives steer through true CFG

    def make_config(self, task, algorithm, budget, seeds, steps, guidance, scheduler, source, per_word, negative_mode="cfg",
                    true_cfg=None) -> RunConfig:
        """The RunConfig of the page's fields; an emptied number box is a UsageError, not a crash."""
        for name, value in (("Budget", budget), ("Steps", steps), ("Guidance", guidance), ("Choices per word", per_word),
                            ("True CFG", true_cfg if self.distilled else 0)):
            if value is None:
                raise UsageError(f"{name} is empty; give a number.")
        return RunConfig.from_options(task=task, algorithm=algorithm, budget=int(budget), seeds=str(seeds or "").strip(), steps=int(steps),
                                      guidance=float(guidance), scheduler=None if scheduler in (None, "", MODEL_OWN) else scheduler,
                                      space_source=source, per_word=int(per_word), negative_mode=negative_mode,
                                      true_cfg=float(true_cfg) if self.distilled else None)

    def on_build(self, prompt_text, task_name, source_name, n_per_word):
        """Build space: the space a run would search, as an editable table, remembered as built for this prompt and task."""
        try:
            config = self.make_config(task_name, "epo", 1, "1", 1, 1.0, None, source_name, n_per_word)
            space = build_space(self.models, prompt_text, config)
        except UsageError as e:
            raise gr.Error(str(e)) from None
        return space_rows(space), (" ".join(prompt_text.split()), task_name)

    def arm(self, request: gr.Request):
        """At the click, before the run waits in the queue: a fresh stop flag, and the Stop button on."""
        self.stops[session_of(request)] = threading.Event()
        return (progress_html(0, 1, "Queued: the model serves one run at a time, yours starts when the runs ahead of it end..."),
                gr.update(interactive=False), gr.update(interactive=True, value="Stop"))

    def on_stop(self, request: gr.Request):
        """Stop: the session's run ends at its next pipeline call and keeps what it found (or never starts, if queued)."""
        self.stops.setdefault(session_of(request), threading.Event()).set()
        return gr.update(interactive=False, value="Stopping...")

    def on_run(self, prompt_text, task_name, algo, n_budget, seed_text, n_steps, scale, scheduler_name, source_name, n_per_word,
               rows, built_for, scorer_spec, mode, true_cfg, request: gr.Request):
        """Run, a generator of page updates: the config and space, then the search's news while it works, then its results.
        A mistake in the fields ends as a message on the page; the buttons are set back for the next run at every end."""
        results = self.page.results
        stop_flag = self.stops.setdefault(session_of(request), threading.Event())
        if stop_flag.is_set():
            yield {results.status: progress_html(0, 1, "Stopped before it started."), **self._idle()}
            return
        yield {results.best: "", results.curve: None, results.images: None, results.judge: "", results.top: [],
               results.download: None}  # the last run's result goes
        try:
            config = self.make_config(task_name, algo, n_budget, seed_text, n_steps, scale, scheduler_name, source_name, n_per_word, mode,
                                      true_cfg)
            self.models.check_bounds(config)
            space = yield from self._space_to_search(prompt_text, task_name, rows, built_for, config)
        except UsageError as e:
            yield {results.status: progress_html(0, 1, f"Error: {e}"), **self._idle()}
            return
        progress = Progress(budget=config.budget, gpo_iterations=GPOSettings().iterations if OPTIMIZERS[algo].white_box else 0)
        worker = SearchThread(self.models, config, space, scorer_spec, stop_flag, progress).start()
        yield from self._news(progress, stop_flag)
        worker.join()
        yield self._finished(progress)

    def _idle(self) -> dict:
        """The buttons when no run is on: Run on, Stop off (and no longer "Stopping...")."""
        return {self.page.run: gr.update(interactive=True), self.page.stop: gr.update(interactive=False, value="Stop")}

    def _space_to_search(self, prompt_text: str, task_name: str, rows, built_for, config: RunConfig):
        """The table's space, edits kept, if it was built for this prompt and task; else a new one, shown in the table.
        A generator of page updates (building may take a while) that returns the space."""
        key = (" ".join(prompt_text.split()), task_name)
        if rows and any(any(str(c or "").strip() for c in row) for row in rows) and built_for and tuple(built_for) == key:
            return space_from_rows(key[0], rows)
        yield {self.page.results.status: progress_html(0, config.budget, "Building the search space...")}
        space: SearchSpace = build_space(self.models, prompt_text, config)
        yield {self.page.space.table: space_rows(space), self.page.space.built_for: key}
        return space

    def _news(self, progress: Progress, stop_flag: threading.Event):
        """The search's progress, and its best so far when a candidate was scored, until the worker is done. Each look
        tells the worker the page is still there; if the page goes away, the worker stops at its next pipeline call."""
        results = self.page.results
        shown = 0
        try:
            while not progress.done:
                time.sleep(POLL_SECONDS)
                progress.polled = time.monotonic()
                done, total, text = status_text(progress)
                if stop_flag.is_set():
                    text = "Stopping after the current pipeline call... " + text
                update = {results.status: progress_html(done, total, text)}
                result = progress.result
                if result is not None and len(result.history) != shown:
                    shown = len(result.history)
                    update[results.best] = "**Best so far**, " + describe(result.best, result.original)
                    update[results.curve] = loss_curve([e.loss for e in result.history], result.sign)
                yield update
        finally:
            stop_flag.set()  # the page went away (or the run ended): the worker stops at its next pipeline call

    def _finished(self, progress: Progress) -> dict:
        """The page at the end: the error, or the result (images, verdicts, top candidates, the zip of its folder)."""
        results = self.page.results
        if progress.error is not None:
            return {results.status: progress_html(0, 1, f"Error: {progress.error}"), **self._idle()}
        result: OptimizationResult = progress.outcome
        zip_path = save_zip(result, self.results_root)
        return {
            results.status: progress_html(result.evaluations, result.budget, outcome_text(result)),
            results.best: "**Best**, " + describe(result.best, result.original),
            results.curve: loss_curve([e.loss for e in result.history], result.sign),
            results.images: before_after(result),
            results.judge: judge_markdown(result),
            results.top: top_rows(result),
            results.download: zip_path,
            **self._idle(),
        }
