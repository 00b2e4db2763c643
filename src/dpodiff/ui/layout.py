"""The page's layout: its components, with the elem_ids and labels that browser tests (and people) find them by,
and which handler each event runs. What the handlers do is in handlers.py.

Gradio is imported only when a page is built (it is the optional extra `ui`), so the components are typed
`Component` here.
"""

import atexit
import shutil
import tempfile
from dataclasses import dataclass

from dpodiff.config import RunConfig
from dpodiff.defaults import NEGATIVE_MODES
from dpodiff.registry import OPTIMIZERS, SCHEDULERS, SPACE_SOURCES
from dpodiff.report.metadata import model_label as short_name
from dpodiff.tasks import TASKS
from dpodiff.ui.server import Models, require_gradio
from dpodiff.ui.views import MODEL_OWN, SPACE_HEADERS, TOP_HEADERS, progress_html

Component = object  # a Gradio component


@dataclass
class RunSettings:
    """The prompt and the settings of a run."""

    prompt: Component
    task: Component
    algorithm: Component
    scheduler: Component
    negative_mode: Component
    budget: Component
    seeds: Component
    steps: Component
    guidance: Component
    true_cfg: Component  # shown only for a guidance-distilled model (Flux)
    scorer: Component


@dataclass
class SpaceEditor:
    """The search space as a table the user may build from the prompt and edit before a run."""

    source: Component
    per_word: Component
    build: Component
    table: Component
    built_for: Component  # state: (prompt, task) the table was built for


@dataclass
class Results:
    """What a run shows: its progress, the best so far and, at the end, its images, verdicts, top candidates and zip."""

    status: Component
    best: Component
    curve: Component
    images: Component
    judge: Component
    download: Component
    top: Component


@dataclass
class Page:
    """Every component a handler reads or writes."""

    settings: RunSettings
    space: SpaceEditor
    run: Component
    stop: Component
    results: Results


def build_app(models: Models):
    """The Gradio Blocks of the page, serving runs on `models`."""
    gr = require_gradio()
    from dpodiff.ui.handlers import PageHandlers  # it needs Gradio at import

    results_root = tempfile.mkdtemp(prefix="dpodiff-ui-")  # each run's folder and zip, until the server exits
    atexit.register(shutil.rmtree, results_root, True)
    with gr.Blocks(title="dpodiff") as demo:
        page = _page(gr, models)
        _wire(page, PageHandlers(models, page, results_root))
    demo.queue(default_concurrency_limit=1)
    return demo


def _page(gr, models: Models) -> Page:
    """The components, in page order: settings and the space table left of the live progress, the results below."""
    model_label = "the shapes world (shipped with dpodiff)" if models.shapes_world else f"`{models.name}`, scorer `{models.scorer.name}`"
    gr.Markdown(f"# dpodiff: discrete prompt optimisation\nModel: {model_label}. "
                "*improve* searches a negative prompt that makes the images match the prompt better; "
                "*attack* rewords the prompt (same meaning) so that they match it worse.")
    with gr.Row():
        with gr.Column(scale=3):
            settings = _run_settings(gr, models)
            space = _space_editor(gr)
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
    return Page(settings, space, run, stop, Results(status, best, curve, images, judge, download, top))


def _run_settings(gr, models: Models) -> RunSettings:
    """The prompt and the run's settings, first set to the model's recommended ones (else dpodiff's defaults)."""
    from dpodiff.backends import GenerationSettings
    from dpodiff.backends.schedulers import is_flow_matching

    suggested = RunConfig().resolved(models.backend.recommended)
    distilled = models.backend.distilled_guidance  # Flux: --guidance is embedded, negatives steer through true CFG
    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                        placeholder="a red circle above a blue square" if models.shapes_world else "a photo of a cat wearing a red hat")
    with gr.Row():
        task = gr.Radio(list(TASKS), value="improve", label="Task", elem_id="task")
        algorithm = gr.Dropdown(list(OPTIMIZERS), value="epo", label="Algorithm", elem_id="algorithm")
        samplers = [] if is_flow_matching(models.backend.own_scheduler) else list(SCHEDULERS)  # flow models keep their own
        scheduler = gr.Dropdown([MODEL_OWN, *samplers], value=suggested.scheduler or MODEL_OWN, label="Scheduler", elem_id="scheduler")
        negative_mode = gr.Dropdown(list(NEGATIVE_MODES), value="cfg", label="Negative guidance (perp: Perp-Neg)", elem_id="negative-mode")
    with gr.Row():
        budget = gr.Number(min(20, models.max_budget), label=f"Budget (candidates, at most {models.max_budget})", precision=0,
                           minimum=1, maximum=models.max_budget, elem_id="budget")
        seeds = gr.Textbox("2", label="Seeds (N or 0,3,7)", elem_id="seeds")
        steps = gr.Number(suggested.steps, label="Steps", precision=0, minimum=1, elem_id="steps")
        guidance = gr.Number(suggested.guidance, label="Distilled guidance" if distilled else "Guidance", elem_id="guidance")
        true_cfg = gr.Number(models.backend.guidance_scale(GenerationSettings()), visible=distilled, minimum=1,
                             label="True CFG (the negative prompt steers through it; 1: off)", elem_id="true-cfg")
    scorer = gr.Dropdown([(short_name(name), name) for name in models.scorers], value=models.scorer.name,
                         label="Scorer (those the server was started with)", elem_id="scorer")
    return RunSettings(prompt, task, algorithm, scheduler, negative_mode, budget, seeds, steps, guidance, true_cfg, scorer)


def _space_editor(gr) -> SpaceEditor:
    """The search space, folded away: a run builds its own unless the table was built for its prompt and task."""
    with gr.Accordion("Search space (optional: a run builds it from the prompt unless this table was built for its prompt and task)", open=False):
        with gr.Row():
            source = gr.Dropdown([e.name for e in SPACE_SOURCES.values() if e.in_ui], value="auto", label="Source of words")
            per_word = gr.Number(5, label="Choices per word", precision=0, minimum=1)
            build = gr.Button("Build space", elem_id="build-space")
        table = gr.Dataframe(headers=SPACE_HEADERS, type="array", interactive=True, wrap=True,
                             label="Slots and their choices (edit, add or delete rows)", elem_id="space-table")
        built_for = gr.State(None)
    return SpaceEditor(source, per_word, build, table, built_for)


def _wire(page: Page, handlers) -> None:
    """The events. Run first arms the page outside the queue (Stop on at once), then waits in the model's queue;
    the order of `inputs` is the order of PageHandlers.on_run's parameters (and of the page's API)."""
    settings, space, results = page.settings, page.space, page.results
    space.build.click(handlers.on_build, [settings.prompt, settings.task, space.source, space.per_word], [space.table, space.built_for],
                      concurrency_limit=None)
    inputs = [settings.prompt, settings.task, settings.algorithm, settings.budget, settings.seeds, settings.steps, settings.guidance,
              settings.scheduler, space.source, space.per_word, space.table, space.built_for, settings.scorer, settings.negative_mode,
              settings.true_cfg]
    outputs = [results.status, results.best, results.curve, results.images, results.judge, results.top, results.download, space.table,
               space.built_for, page.run, page.stop]
    page.run.click(handlers.arm, None, [results.status, page.run, page.stop], queue=False).then(
        handlers.on_run, inputs, outputs, concurrency_limit=1, concurrency_id="model", show_progress="hidden")
    page.stop.click(handlers.on_stop, None, [page.stop], queue=False)
