"""`dpodiff ui`: a Gradio page for improve and attack runs, on one model loaded once per server.

The page builds a RunConfig from its fields, lets the user edit the search space as a table, and
runs `optimize()` in a worker thread while the Run event (a generator) shows the progress, the best
candidate so far and the loss curve. Stop ends the search between pipeline calls and keeps what was
found. The end shows original and best images per seed, the judge's verdicts, the top candidates and
a zip of the folder the CLI writes. Gradio's queue serves users in turn, each with their own run;
a lock keeps a second search off the model even if a browser left a run behind.
"""

import atexit
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from dpodiff.config import RunConfig
from dpodiff.defaults import NEGATIVE_MODES
from dpodiff.registry import OPTIMIZERS, SCHEDULERS, SPACE_SOURCES
from dpodiff.errors import UsageError
from dpodiff.report.curves import loss_plot
from dpodiff.report.metadata import model_label as short_name
from dpodiff.results import Evaluation, OptimizationResult
from dpodiff.spaces import SearchSpace, Slot, Span, find_word
from dpodiff.tasks import TASKS

SPACE_HEADERS = ["part", "slot", "choices (comma-separated)"]
TOP_HEADERS = ["rank", "loss", "prompt", "negative prompt", "similarity", "scored as #"]
POLL_SECONDS = 0.25  # how often the page is refreshed while a run works
ABANDONED_AFTER = 30.0  # a run whose page stopped asking for news this long ago (browser closed) is stopped
MODEL_OWN = "model's own"
DEFAULT_MAX_BUDGET, DEFAULT_MAX_SEEDS = 200, 8  # per run on a shared server: ui --max-budget / --max-seeds


def require_gradio():
    """The gradio module, or a UsageError saying how to install it (it is the optional extra `ui`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine
    try:
        import gradio
    except ImportError:
        raise UsageError("The UI needs Gradio, which is not installed: pip install 'dpodiff[ui]'.") from None
    return gradio


@dataclass
class Models:
    """What a server loads once and every run shares."""

    backend: object
    scorer: object  # the default scorer
    name: str
    shapes_world: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # one search on the model at a time
    others: list = field(default_factory=list)  # more scorers the server was started with (`ui --scorer` repeated)
    max_budget: int = DEFAULT_MAX_BUDGET  # what one visitor's run may take of the shared model
    max_seeds: int = DEFAULT_MAX_SEEDS

    @property
    def scorers(self) -> dict:
        """The scorers a visitor may choose, by name, the default first: only those the server was started with."""
        return {s.name: s for s in [self.scorer, *self.others]}

    def scorer_for(self, name: str | None):
        """The scorer of that name (empty: the default); a visitor never makes the server load anything."""
        name = (name or "").strip()
        if name and name not in self.scorers:
            raise UsageError(f"{name!r} is not one of this server's scorers ({', '.join(self.scorers)}); "
                             "whoever starts the server adds scorers with `dpodiff ui --scorer` (repeatable).")
        return self.scorers[name] if name else self.scorer

    def check_bounds(self, config: RunConfig) -> None:
        """One visitor may not hold the shared model for longer than the server allows."""
        if config.budget > self.max_budget:
            raise UsageError(f"Budget {config.budget} is more than this server allows per run ({self.max_budget}).")
        if len(config.seeds) > self.max_seeds:
            raise UsageError(f"{len(config.seeds)} seeds are more than this server allows per run ({self.max_seeds}).")


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


# -- the search space as a table --------------------------------------------------------------------

def space_rows(space: SearchSpace) -> list[list[str]]:
    """One row per searched place: positive spans (the original word) and negative slots, choices after the original/empty one."""
    rows = [["positive", span.original, ", ".join(span.choices[1:])] for span in space.positive]
    return rows + [["negative", slot.name, ", ".join(slot.choices[1:])] for slot in space.negative]


def space_from_rows(prompt: str, rows) -> SearchSpace:
    """The SearchSpace a (possibly edited) table describes; a positive row's word is found in the prompt, left to right."""
    positive, negative, cursor = [], [], 0
    for row in rows or []:
        part, slot, choices = (str(cell or "").strip() for cell in (list(row) + ["", "", ""])[:3])
        if not slot and not choices:
            continue  # an empty row the table editor added
        words = [c.strip() for c in choices.split(",") if c.strip()]
        if part == "negative":
            negative.append(Slot(slot or (words[0] if words else "slot"), words, "ui"))
        elif part == "positive":
            found = find_word(prompt, slot, cursor)
            if found is None:
                raise UsageError(f"Search space table: the positive row {slot!r} is not a word of the prompt (after the rows above it); "
                                 "fix the word or delete the row.")
            cursor = found[1]
            positive.append(Span(found[0], found[1], [prompt[found[0]:found[1]]] + words, "ui"))
        else:
            raise UsageError(f"Search space table: part {part!r} must be 'positive' (a word of the prompt) or 'negative' (a negative-prompt slot).")
    return SearchSpace(prompt, positive, negative)


def build_space(models: Models, prompt: str, config: RunConfig) -> SearchSpace:
    """The space a run of `config` searches for `prompt`, as `optimize()` would build it (the model's own text encoder)."""
    from dpodiff.inputs import check_prompt
    from dpodiff.objectives.judge import find_wordings
    from dpodiff.spaces.build import build_task_space

    prompt = check_prompt(prompt, models.backend.tokenizer)
    wordings = find_wordings(models.name) if config.task_spec.search_positive and Path(str(models.name)).is_dir() else None
    return build_task_space(prompt, config.task_spec, source=config.space_source, per_word=config.per_word, space_kind=config.space_kind,
                            tokenizer=models.backend.tokenizer, text_encoder=models.backend.text_encoders[0],
                            negative_library=models.backend.negative_library, wordings=wordings)


# -- pictures ---------------------------------------------------------------------------------------

def loss_curve(losses: list[float], sign: int = 1) -> Image.Image:
    """Each evaluation's loss (dots) and the best so far (line), below the label Gradio lays over the image."""
    return loss_plot({"loss": losses}, sign, width=480, height=240, top=34)


def before_after(result: OptimizationResult) -> Image.Image:
    """One row per seed: the original prompt's image beside the best candidate's, with their losses."""
    from dpodiff.report.grid import image_grid

    original, best = result.images.get("original", []), result.images.get("best", [])
    rows = [[o, b] for o, b in zip(original, best)]
    new = lambda s: " (new)" if s not in result.seeds else ""  # noqa: E731  a validation seed
    labels = [f"seed {s}{new(s)}: {lo:.3f} -> {lb:.3f}"
              for s, lo, lb in zip(result.image_seeds, result.seed_losses(result.original), result.seed_losses(result.best))]
    return image_grid(rows, row_labels=labels, col_labels=["original", "best"])


def progress_html(done: int, total: int, text: str) -> str:
    share = 0 if total <= 0 else min(100, round(100 * done / total))
    from html import escape

    return (f'<div style="border:1px solid #d0d7de;border-radius:6px;height:14px;overflow:hidden">'
            f'<div style="background:#1f6feb;height:100%;width:{share}%"></div></div>'
            f'<div id="progress-text" style="margin-top:6px">{escape(text)}</div>')


def status_text(progress: Progress) -> tuple[int, int, str]:
    """(done, total, line) for the progress bar."""
    if progress.waiting:
        return 0, progress.budget, "Waiting for the model (another run is using it)..."
    result = progress.result
    if result is None or not result.history:
        if progress.gpo_iterations and progress.gpo_done:
            loss = f", shortcut loss {progress.gpo_loss:.4f}" if progress.gpo_loss is not None else ""
            return progress.gpo_done, progress.gpo_iterations, f"Gradient phase (GPO): iteration {progress.gpo_done} of {progress.gpo_iterations}{loss}"
        return 0, progress.budget, "Preparing the search (space, original prompt)..."
    scored, budget = len(result.history), result.budget
    per_candidate = sum(e.seconds for e in result.history) / scored
    eta = per_candidate * max(0, budget - scored)
    return scored, budget, f"{scored} of {budget} candidates scored · best loss {result.best.loss:.4f} · about {eta:.0f} s left"


def code(text: str) -> str:
    """Text as a Markdown code span, shown as it is: escaped once (by Markdown), with a fence longer than any backticks in it."""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def describe(evaluation: Evaluation, original: Evaluation | None = None) -> str:
    lines = [f"**loss {evaluation.loss:.4f}**" + (f" (original {original.loss:.4f})" if original is not None else ""),
             f"- prompt: {code(evaluation.prompt)}",
             f"- negative prompt: {code(evaluation.negative_prompt) if evaluation.negative_prompt else '(none)'}"]
    if evaluation.similarity is not None:
        lines.append(f"- similarity to the prompt: {evaluation.similarity:.3f}")
    return "\n".join(lines)


def judge_markdown(result: OptimizationResult) -> str:
    if not result.judge:
        return "No judge verdict (the model has no judge, or the prompt is outside its grammar)."
    lines = ["**Judge** (pass = the image shows what the prompt says):"]
    for role in ("original", "best"):
        verdicts = result.judge.get(role) or []
        seeds = ", ".join(f"seed {s} {'pass' if v['pass'] else 'fail'}" for s, v in zip(result.image_seeds, verdicts))
        lines.append(f"- {role}: {sum(v['pass'] for v in verdicts)}/{len(verdicts)} pass ({seeds})")
    return "\n".join(lines)


def top_rows(result: OptimizationResult, n: int = 10) -> list[list]:
    return [[rank, round(e.loss, 4), e.prompt, e.negative_prompt, "" if e.similarity is None else round(e.similarity, 3), e.index + 1]
            for rank, e in enumerate(result.top(n), 1)]


def save_zip(result: OptimizationResult, root: str) -> str:
    """The CLI's output folder (result.save) for this run, zipped; returns the zip's path."""
    folder = tempfile.mkdtemp(prefix=f"{result.task}-", dir=root)
    result.save(folder)
    return shutil.make_archive(folder, "zip", folder)


# -- the app ----------------------------------------------------------------------------------------

def build_app(models: Models):
    """The Gradio Blocks of the page, serving runs on `models`."""
    gr = require_gradio()
    from dpodiff.backends import GenerationSettings
    from dpodiff.optimization import optimize
    from dpodiff.optimizers import GPOSettings

    results_root = tempfile.mkdtemp(prefix="dpodiff-ui-")  # each run's folder and zip, until the server exits
    atexit.register(shutil.rmtree, results_root, True)
    stops: dict[str, threading.Event] = {}  # per browser session: set by Stop
    suggested = RunConfig().resolved(models.backend.recommended)  # the model's recommended settings, else dpodiff's defaults
    steps, guidance = suggested.steps, suggested.guidance
    distilled = models.backend.distilled_guidance  # Flux: --guidance is embedded, negatives steer through true CFG

    def session(request) -> str:
        return getattr(request, "session_hash", None) or "default"

    def make_config(task, algorithm, budget, seeds, steps, guidance, scheduler, source, per_word, negative_mode="cfg",
                    true_cfg=None) -> RunConfig:
        for name, value in (("Budget", budget), ("Steps", steps), ("Guidance", guidance), ("Choices per word", per_word),
                            ("True CFG", true_cfg if distilled else 0)):
            if value is None:
                raise UsageError(f"{name} is empty; give a number.")
        return RunConfig.from_options(task=task, algorithm=algorithm, budget=int(budget), seeds=str(seeds or "").strip(), steps=int(steps),
                                      guidance=float(guidance), scheduler=None if scheduler in (None, "", MODEL_OWN) else scheduler,
                                      space_source=source, per_word=int(per_word), negative_mode=negative_mode,
                                      true_cfg=float(true_cfg) if distilled else None)

    with gr.Blocks(title="dpodiff") as demo:
        model_label = "the shapes world (shipped with dpodiff)" if models.shapes_world else f"`{models.name}`, scorer `{models.scorer.name}`"
        gr.Markdown(f"# dpodiff: discrete prompt optimisation\nModel: {model_label}. "
                    "*improve* searches a negative prompt that makes the images match the prompt better; "
                    "*attack* rewords the prompt (same meaning) so that they match it worse.")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                    placeholder="a red circle above a blue square" if models.shapes_world else "a photo of a cat wearing a red hat")
                with gr.Row():
                    task = gr.Radio(list(TASKS), value="improve", label="Task", elem_id="task")
                    algorithm = gr.Dropdown(list(OPTIMIZERS), value="epo", label="Algorithm", elem_id="algorithm")
                    from dpodiff.backends.schedulers import is_flow_matching

                    samplers = [] if is_flow_matching(models.backend.own_scheduler) else list(SCHEDULERS)  # flow models keep their own
                    scheduler = gr.Dropdown([MODEL_OWN, *samplers], value=suggested.scheduler or MODEL_OWN, label="Scheduler", elem_id="scheduler")
                    negative_mode = gr.Dropdown(list(NEGATIVE_MODES), value="cfg", label="Negative guidance (perp: Perp-Neg)",
                                                elem_id="negative-mode")
                with gr.Row():
                    budget = gr.Number(min(20, models.max_budget), label=f"Budget (candidates, at most {models.max_budget})", precision=0,
                                       minimum=1, maximum=models.max_budget, elem_id="budget")
                    seeds = gr.Textbox("2", label="Seeds (N or 0,3,7)", elem_id="seeds")
                    steps_box = gr.Number(steps, label="Steps", precision=0, minimum=1, elem_id="steps")
                    guidance_box = gr.Number(guidance, label="Distilled guidance" if distilled else "Guidance", elem_id="guidance")
                    true_cfg_box = gr.Number(models.backend.guidance_scale(GenerationSettings()), visible=distilled, minimum=1,
                                             label="True CFG (the negative prompt steers through it; 1: off)", elem_id="true-cfg")
                scorer_box = gr.Dropdown([(short_name(name), name) for name in models.scorers], value=models.scorer.name,
                                         label="Scorer (those the server was started with)", elem_id="scorer")
                with gr.Accordion("Search space (optional: a run builds it from the prompt unless this table was built for its prompt and task)", open=False):
                    with gr.Row():
                        source = gr.Dropdown([e.name for e in SPACE_SOURCES.values() if e.in_ui], value="auto", label="Source of words")
                        per_word = gr.Number(5, label="Choices per word", precision=0, minimum=1)
                        build = gr.Button("Build space", elem_id="build-space")
                    space_table = gr.Dataframe(headers=SPACE_HEADERS, type="array", interactive=True, wrap=True,
                                               label="Slots and their choices (edit, add or delete rows)", elem_id="space-table")
                    space_for = gr.State(None)  # (prompt, task) the table was built for
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")
            with gr.Column(scale=2):
                status = gr.HTML(progress_html(0, 1, "Idle."), elem_id="status")
                best = gr.Markdown("", elem_id="best")
                curve = gr.Image(label="Loss per candidate (dots), best so far (line)", type="pil", format="png", interactive=False, elem_id="curve")
        with gr.Row():
            images = gr.Image(label="Original and best, per seed", type="pil", format="png", interactive=False, elem_id="result-images")
            with gr.Column():
                judge = gr.Markdown("", elem_id="judge")
                download = gr.File(label="Result folder (result.json, space.json, images) as a zip", elem_id="download")
        top = gr.Dataframe(headers=TOP_HEADERS, type="array", interactive=False, wrap=True, label="Top candidates", elem_id="top-candidates")

        def on_build(prompt_text, task_name, source_name, n_per_word):
            try:
                config = make_config(task_name, "epo", 1, "1", 1, 1.0, None, source_name, n_per_word)
                space = build_space(models, prompt_text, config)
            except UsageError as e:
                raise gr.Error(str(e)) from None
            return space_rows(space), (" ".join(prompt_text.split()), task_name)

        build.click(on_build, [prompt, task, source, per_word], [space_table, space_for], concurrency_limit=None)

        def arm(request: gr.Request):
            """At the click, before the run waits in the queue: a fresh stop flag, and the Stop button on."""
            stops[session(request)] = threading.Event()
            return (progress_html(0, 1, "Queued: the model serves one run at a time, yours starts when the runs ahead of it end..."),
                    gr.update(interactive=False), gr.update(interactive=True, value="Stop"))

        def on_stop(request: gr.Request):
            stops.setdefault(session(request), threading.Event()).set()
            return gr.update(interactive=False, value="Stopping...")

        def on_run(prompt_text, task_name, algo, n_budget, seed_text, n_steps, scale, scheduler_name, source_name, n_per_word,
                   rows, built_for, scorer_spec, mode, true_cfg, request: gr.Request):
            stop_flag = stops.setdefault(session(request), threading.Event())
            idle = {run: gr.update(interactive=True), stop: gr.update(interactive=False, value="Stop")}
            if stop_flag.is_set():
                yield {status: progress_html(0, 1, "Stopped before it started."), **idle}
                return
            yield {best: "", curve: None, images: None, judge: "", top: [], download: None}  # the last run's result goes
            try:
                config = make_config(task_name, algo, n_budget, seed_text, n_steps, scale, scheduler_name, source_name, n_per_word, mode,
                                     true_cfg)
                models.check_bounds(config)
                key = (" ".join(prompt_text.split()), task_name)
                if rows and any(any(str(c or "").strip() for c in row) for row in rows) and built_for and tuple(built_for) == key:
                    space = space_from_rows(key[0], rows)
                else:
                    yield {status: progress_html(0, config.budget, "Building the search space...")}
                    space = build_space(models, prompt_text, config)
                    yield {space_table: space_rows(space), space_for: key}
            except UsageError as e:
                yield {status: progress_html(0, 1, f"Error: {e}"), **idle}
                return

            progress = Progress(budget=config.budget, gpo_iterations=GPOSettings().iterations if OPTIMIZERS[algo].white_box else 0)

            def on_evaluation(evaluation, result):
                progress.result = result

            def on_gpo_iteration(iteration, loss):
                progress.gpo_done, progress.gpo_loss = iteration + 1, loss

            def should_stop() -> bool:
                return stop_flag.is_set() or time.monotonic() - progress.polled > ABANDONED_AFTER

            def work():
                try:
                    with models.lock:
                        progress.waiting = False
                        progress.outcome = optimize(space.prompt, pipeline=models.backend, scorer=models.scorer_for(scorer_spec), config=config, space=space,
                                                    model_name=models.name, on_evaluation=on_evaluation,
                                                    on_gpo_iteration=on_gpo_iteration, should_stop=should_stop)
                except UsageError as e:
                    progress.error = str(e)
                except KeyboardInterrupt:
                    progress.error = "Stopped before anything was scored."
                except Exception as e:  # noqa: BLE001  a bug: its traceback goes to the server's log, its message to the page
                    traceback.print_exc()
                    progress.error = f"{type(e).__name__}: {e}"
                finally:
                    progress.done = True

            worker = threading.Thread(target=work, name="dpodiff-ui-run", daemon=True)
            worker.start()
            shown = 0
            try:
                while not progress.done:
                    time.sleep(POLL_SECONDS)
                    progress.polled = time.monotonic()
                    done, total, text = status_text(progress)
                    if stop_flag.is_set():
                        text = "Stopping after the current pipeline call... " + text
                    update = {status: progress_html(done, total, text)}
                    result = progress.result
                    if result is not None and len(result.history) != shown:
                        shown = len(result.history)
                        update[best] = "**Best so far**, " + describe(result.best, result.original)
                        update[curve] = loss_curve([e.loss for e in result.history], result.sign)
                    yield update
            finally:
                stop_flag.set()  # the page went away (or the run ended): the worker stops at its next pipeline call
            worker.join()
            if progress.error is not None:
                yield {status: progress_html(0, 1, f"Error: {progress.error}"), **idle}
                return
            result = progress.outcome
            zip_path = save_zip(result, results_root)
            stopped = "Stopped" if result.stop_reason == "interrupted" else "Done"
            dropped = len((result.fit or {}).get("dropped", []))
            note = f"; {dropped} slot(s) dropped to fit the token window" if dropped else ""
            text = (f"{stopped}: {result.evaluations} of {result.budget} candidates scored ({result.stop_reason}), "
                    f"loss {result.original.loss:.4f} -> {result.best.loss:.4f} in {result.timings['total_seconds']:.1f} s{note}. "
                    + (result.selection.summary()[0].upper() + result.selection.summary()[1:] + "." if result.selection else
                       "Not validated on new seeds."))
            yield {
                status: progress_html(result.evaluations, result.budget, text),
                best: "**Best**, " + describe(result.best, result.original),
                curve: loss_curve([e.loss for e in result.history], result.sign),
                images: before_after(result),
                judge: judge_markdown(result),
                top: top_rows(result),
                download: zip_path,
                **idle,
            }

        inputs = [prompt, task, algorithm, budget, seeds, steps_box, guidance_box, scheduler, source, per_word, space_table, space_for, scorer_box,
                  negative_mode, true_cfg_box]
        outputs = [status, best, curve, images, judge, top, download, space_table, space_for, run, stop]
        run.click(arm, None, [status, run, stop], queue=False).then(on_run, inputs, outputs, concurrency_limit=1, concurrency_id="model",
                                                                show_progress="hidden")
        stop.click(on_stop, None, [stop], queue=False)
    demo.queue(default_concurrency_limit=1)
    return demo


def serve(models: Models, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until Ctrl-C."""
    demo = build_app(models)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a service stop cleans up as Ctrl-C does: atexit removes the runs
    demo.launch(server_name=host, server_port=port, show_error=True, ssr_mode=False, footer_links=[])
