"""What the page shows, made from a run: the search space as an editable table, pictures, progress and result text.

Plain functions of dpodiff's types (no Gradio), so they can be tested without a browser.
"""

import re
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.report.curves import loss_plot
from dpodiff.results import Evaluation, OptimizationResult
from dpodiff.spaces import SearchSpace, Slot, Span, find_word
from dpodiff.ui.server import Models
from dpodiff.ui.worker import Progress

MODEL_OWN = "model's own"  # the scheduler choice that keeps the model's own sampler
SPACE_HEADERS = ["part", "slot", "choices (comma-separated)"]
TOP_HEADERS = ["rank", "loss", "prompt", "negative prompt", "similarity", "scored as #"]


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


# -- progress and results -------------------------------------------------------------------------

def progress_html(done: int, total: int, text: str) -> str:
    """The status box: a bar `done` of `total` full and the line below it (#progress-text, which browser tests read)."""
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
    """A candidate as Markdown: its loss (beside the original's), its prompts shown verbatim, its similarity if measured."""
    lines = [f"**loss {evaluation.loss:.4f}**" + (f" (original {original.loss:.4f})" if original is not None else ""),
             f"- prompt: {code(evaluation.prompt)}",
             f"- negative prompt: {code(evaluation.negative_prompt) if evaluation.negative_prompt else '(none)'}"]
    if evaluation.similarity is not None:
        lines.append(f"- similarity to the prompt: {evaluation.similarity:.3f}")
    return "\n".join(lines)


def judge_markdown(result: OptimizationResult) -> str:
    """The judge's verdicts per seed for the original and the best prompt: whether the images show what was asked."""
    if not result.judge:
        return "No judge verdict (the model has no judge, or the prompt is outside its grammar)."
    lines = ["**Judge** (pass = the image shows what the prompt says):"]
    for role in ("original", "best"):
        verdicts = result.judge.get(role) or []
        seeds = ", ".join(f"seed {s} {'pass' if v['pass'] else 'fail'}" for s, v in zip(result.image_seeds, verdicts))
        lines.append(f"- {role}: {sum(v['pass'] for v in verdicts)}/{len(verdicts)} pass ({seeds})")
    return "\n".join(lines)


def top_rows(result: OptimizationResult, n: int = 10) -> list[list]:
    """The table of the `n` best candidates, rounded for reading."""
    return [[rank, round(e.loss, 4), e.prompt, e.negative_prompt, "" if e.similarity is None else round(e.similarity, 3), e.index + 1]
            for rank, e in enumerate(result.top(n), 1)]


def outcome_text(result: OptimizationResult) -> str:
    """The status line at the end of a run: how far it went and why it ended, the loss gained, and whether it was validated."""
    stopped = "Stopped" if result.stop_reason == "interrupted" else "Done"
    dropped = len((result.fit or {}).get("dropped", []))
    note = f"; {dropped} slot(s) dropped to fit the token window" if dropped else ""
    return (f"{stopped}: {result.evaluations} of {result.budget} candidates scored ({result.stop_reason}), "
            f"loss {result.original.loss:.4f} -> {result.best.loss:.4f} in {result.timings['total_seconds']:.1f} s{note}. "
            + (result.selection.summary()[0].upper() + result.selection.summary()[1:] + "." if result.selection else
               "Not validated on new seeds."))


def save_zip(result: OptimizationResult, root: str) -> str:
    """The CLI's output folder (result.save) for this run, zipped; returns the zip's path."""
    folder = tempfile.mkdtemp(prefix=f"{result.task}-", dir=root)
    result.save(folder)
    return shutil.make_archive(folder, "zip", folder)
