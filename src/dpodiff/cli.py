"""The `dpodiff` command: improve, attack, generate (and space).

Every command checks its input first, then loads models, then works; bad input
exits with status 2 and a message (add --debug for the traceback).
"""

from __future__ import annotations

import os

# Library chatter (loading bars, the torchvision notice) would bury our own progress and errors;
# it must be silenced before transformers is first imported.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import sys  # noqa: E402
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dpodiff.cli_options import (
    Algo, BatchSize, Budget, Device, Dtype, Guidance, LlmKeyFile, LlmModel, LlmRetries, LlmTimeout, LlmUrl, MaxMemory, Model, NegativeMode, Out, PerWord, Scorer,
    Decompose, NoValidate, Overwrite, Resume, Protocol, SelectScorer, Scheduler, SearchSeed, Seed, Seeds, Size, SpaceFile, SpaceKind, SpaceSource, Steps, Threads, TrueCfg, Vae, Validate, Sampling,
)
from dpodiff.display import terminal
from dpodiff.errors import UsageError
from dpodiff.defaults import DEFAULT_MIN_SIMILARITY, DEFAULT_SENTENCE_MODEL, DEFAULT_VALIDATE, WHITE_BOX
from dpodiff.spaces.command import space as space_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Discrete prompt optimisation for text-to-image diffusion models (DPO-Diff).")
console = Console(stderr=True)
GENERATE_SETTINGS = ("seeds", "steps", "guidance", "true_cfg", "height", "width", "scheduler", "batch_size", "negative_mode")  # what generate uses


def _print_version(value: bool) -> None:
    if value:
        from dpodiff import __version__

        print(f"dpodiff {__version__}")
        raise typer.Exit()


@app.callback()
def _common(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print dpodiff's version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, also print the full traceback (for a bug report); "
                                        "may be given anywhere on the line.")] = False,
) -> None:
    """Discrete prompt optimisation for text-to-image diffusion models (DPO-Diff)."""

@app.command()
def improve(
    prompt: Annotated[str, typer.Argument(help="The prompt whose images should match it better.")],
    positive: Annotated[bool, typer.Option("--positive", help="Also substitute synonyms in the positive prompt.")] = False,
    space: SpaceFile = None, space_source: SpaceSource = "auto", per_word: PerWord = 5, space_kind: SpaceKind = "both",
    llm_url: LlmUrl = None, llm_model: LlmModel = None, llm_key_file: LlmKeyFile = None, llm_timeout: LlmTimeout = None, llm_retries: LlmRetries = None,
    algo: Algo = "epo", budget: Budget = 40, seeds: Seeds = None, seed: Seed = None, search_seed: SearchSeed = 0, sampling: Sampling = "sparse",
    validate: Validate = ",".join(map(str, DEFAULT_VALIDATE)), no_validate: NoValidate = False, protocol: Protocol = "dpodiff",
    decompose: Decompose = False, select_scorer: SelectScorer = None,
    model: Model = None, scorer: Scorer = None, vae: Vae = None, device: Device = "auto", dtype: Dtype = "auto", threads: Threads = None,
    steps: Steps = None, guidance: Guidance = None, true_cfg: TrueCfg = None, height: Size = None, width: Size = None, batch_size: BatchSize = None, max_memory: MaxMemory = None,
    scheduler: Scheduler = None, negative_mode: NegativeMode = "cfg", out: Out = Path("runs/improve"), overwrite: Overwrite = False,
    resume: Resume = False,
):
    """Find a negative prompt (and, with --positive, synonyms) that makes the images match the prompt better."""
    from dpodiff.config import ModelSpec, RunConfig, generation_options
    from dpodiff.inputs import pick_seeds

    config = RunConfig(task="improve", positive=positive, algorithm=algo, budget=budget, seeds=pick_seeds(seeds, seed), search_seed=search_seed,
                       sampling=sampling, validate=None if no_validate else validate, protocol=protocol, decompose=decompose,
                       select_scorer=select_scorer, space_source=space_source, per_word=per_word, space_kind=space_kind,
                       **generation_options(steps, guidance, true_cfg, height, width, batch_size, max_memory, scheduler, negative_mode))
    llm = _llm(config, space, llm_url, llm_model, llm_key_file, llm_timeout, llm_retries)
    _optimize_command(prompt, config, ModelSpec(model, scorer, vae, device, dtype, threads), space, llm, out, overwrite, resume)


@app.command()
def attack(
    prompt: Annotated[str, typer.Argument(help="The prompt to reword so that the model fails on it.")],
    min_similarity: Annotated[float, typer.Option(help="Least sentence-embedding cosine similarity to the prompt a rewording may have.")] = DEFAULT_MIN_SIMILARITY,
    similarity_model: Annotated[str, typer.Option(help="sentence-transformers model for the constraint.")] = DEFAULT_SENTENCE_MODEL,
    space: SpaceFile = None, space_source: SpaceSource = "auto", per_word: PerWord = 5,
    llm_url: LlmUrl = None, llm_model: LlmModel = None, llm_key_file: LlmKeyFile = None, llm_timeout: LlmTimeout = None, llm_retries: LlmRetries = None,
    algo: Algo = "epo", budget: Budget = 40, seeds: Seeds = None, seed: Seed = None, search_seed: SearchSeed = 0, sampling: Sampling = "sparse",
    validate: Validate = ",".join(map(str, DEFAULT_VALIDATE)), no_validate: NoValidate = False, protocol: Protocol = "dpodiff",
    decompose: Decompose = False, select_scorer: SelectScorer = None,
    model: Model = None, scorer: Scorer = None, vae: Vae = None, device: Device = "auto", dtype: Dtype = "auto", threads: Threads = None,
    steps: Steps = None, guidance: Guidance = None, true_cfg: TrueCfg = None, height: Size = None, width: Size = None, batch_size: BatchSize = None, max_memory: MaxMemory = None,
    scheduler: Scheduler = None, negative_mode: NegativeMode = "cfg", out: Out = Path("runs/attack"), overwrite: Overwrite = False,
    resume: Resume = False,
):
    """Find a rewording with the same meaning whose images match the prompt worse (red teaming)."""
    from dpodiff.config import ModelSpec, RunConfig, generation_options
    from dpodiff.inputs import pick_seeds

    config = RunConfig(task="attack", min_similarity=min_similarity, similarity_model=similarity_model, algorithm=algo, budget=budget,
                       seeds=pick_seeds(seeds, seed), search_seed=search_seed, sampling=sampling, validate=None if no_validate else validate,
                       protocol=protocol, decompose=decompose, select_scorer=select_scorer, space_source=space_source, per_word=per_word,
                       **generation_options(steps, guidance, true_cfg, height, width, batch_size, max_memory, scheduler, negative_mode))
    llm = _llm(config, space, llm_url, llm_model, llm_key_file, llm_timeout, llm_retries)
    _optimize_command(prompt, config, ModelSpec(model, scorer, vae, device, dtype, threads), space, llm, out, overwrite, resume)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="Positive prompt.")],
    negative_prompt: Annotated[str, typer.Option(help="Negative prompt.")] = "",
    loss_prompt: Annotated[Optional[str], typer.Option(help="Score the images against this prompt instead (e.g. the original of an attack).")] = None,
    seeds: Seeds = None, seed: Seed = None,
    model: Model = None, scorer: Scorer = None, vae: Vae = None, device: Device = "auto", dtype: Dtype = "auto", threads: Threads = None,
    steps: Steps = None, guidance: Guidance = None, true_cfg: TrueCfg = None, height: Size = None, width: Size = None, batch_size: BatchSize = None, max_memory: MaxMemory = None,
    scheduler: Scheduler = None, negative_mode: NegativeMode = "cfg", out: Out = Path("runs/generate"), overwrite: Overwrite = False,
):
    """Generate images for a prompt and negative prompt, and report their loss (and the judge's verdict)."""
    from dpodiff.config import ModelSpec, RunConfig, generation_options
    from dpodiff.inputs import check_output_dir, check_prompt, pick_seeds

    # every option checked before anything heavy is imported
    config = RunConfig(seeds=pick_seeds(seeds, seed), **generation_options(steps, guidance, true_cfg, height, width, batch_size, max_memory,
                                                                          scheduler, negative_mode))
    out = check_output_dir(out, overwrite)
    import torch

    from dpodiff.evaluator import Evaluator
    from dpodiff.files import save_all, save_image, write_json
    from dpodiff.objectives.judge import find_judge
    from dpodiff.optimization import generation_settings
    from dpodiff.report.grid import image_grid

    backend, clip, model_name = _load_models(ModelSpec(model, scorer, vae, device, dtype, threads))
    recommended_used = _note_recommended(config, backend)
    config = config.resolved(backend.recommended)
    prompt = check_prompt(prompt, backend.tokenizer)
    backend.check_window([negative_prompt], "negative prompt")
    if negative_prompt and config.guidance <= 1 and config.negative_mode == "cfg" and not backend.distilled_guidance:
        console.print(f"[yellow]warning:[/yellow] at --guidance {config.guidance:g} classifier-free guidance is off: the negative prompt has no effect.")
    target = check_prompt(loss_prompt or prompt, clip.tokenizer, "scorer's text encoder")
    judge = find_judge(model_name) if Path(model_name).is_dir() else None
    seed_list = list(config.seeds)
    settings = generation_settings(backend, config)
    scored = Evaluator(backend, clip, settings, target, judge).score([(prompt, negative_prompt)], seed_list)[0]
    images, losses, verdicts = scored.images, scored.losses, scored.verdicts
    records = [{"seed": seed, "file": f"seed{seed}.png", "loss": loss, "judge": verdicts[i] if verdicts else None}
               for i, (seed, loss) in enumerate(zip(seed_list, losses))]
    result = {"prompt": prompt, "negative_prompt": negative_prompt, "loss_prompt": target, "model": model_name, "scorer": clip.name,
              "generation": {**backend.describe(settings), "steps": config.steps, "guidance": config.guidance,
                             "negative_mode": config.negative_mode, "recommended_used": recommended_used},
              "config": {k: v for k, v in config.to_dict().items() if k in GENERATE_SETTINGS}, "seeds": seed_list, "loss": scored.loss,
              "images": records, "seconds": scored.seconds, "cpu_threads": torch.get_num_threads()}
    grid = image_grid([images], col_labels=[f"seed {s}  {l:.3f}" for s, l in zip(seed_list, losses)])
    save_all(out, [("result.json", lambda p: write_json(p, result))]
             + [(r["file"], lambda p, im=image, r=r: save_image(p, im, _generated_info(result, r, im))) for r, image in zip(records, images)]
             + [("grid.png", lambda p: save_image(p, grid))])
    table = Table(title=terminal(prompt) + (f"  (negative: {terminal(negative_prompt)})" if negative_prompt else ""))
    for column in ("seed", "loss", "judge"):
        table.add_column(column)
    for r in records:
        table.add_row(str(r["seed"]), f"{r['loss']:.4f}", _verdict(r["judge"]))
    console.print(table)
    no_verdict = "; no judge verdict for this prompt (outside the judge's grammar)" if judge and not verdicts else ""
    console.print(f"mean loss {result['loss']:.4f}; images and result.json in {out}{no_verdict}")


@app.command("inspect")
def inspect_image(
    image: Annotated[Path, typer.Argument(help="A PNG written by dpodiff (or by A1111, ComfyUI: their 'parameters' text is read too).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object (file, text, parameters, dpodiff) for scripts.")] = False,
):
    """Show the settings a PNG carries: the A1111 parameters text and dpodiff's own record (prompt, seed, loss, run settings)."""
    import json

    from rich.highlighter import JSONHighlighter

    from dpodiff.files import to_json
    from dpodiff.report.metadata import parse_parameters, read_metadata

    text, data = read_metadata(image)
    if text is None and data is None:
        raise UsageError(f"{image} carries no generation settings (no 'parameters' or 'dpodiff' text chunk); "
                         "images that dpodiff improve, attack, generate and bench write have them.")
    parameters = parse_parameters(text) if text is not None else None
    if json_output:
        sys.stdout.write(to_json({"file": str(image), "text": text, "parameters": parameters, "dpodiff": data}))
        return
    out = Console()
    if text is not None:  # unwrapped, to copy into A1111's "read generation parameters"
        out.rule("parameters (A1111)", align="left")
        out.print("\n".join(terminal(line, limit=10_000) for line in text.split("\n")), soft_wrap=True, highlight=False)
    if data is not None:  # characters that could rewrite the terminal shown as JSON escapes
        printable = "".join(c if c.isprintable() or c in "\n " else json.dumps(c)[1:-1] for c in to_json(data))
        out.rule("dpodiff", align="left")
        out.print(JSONHighlighter()(printable))  # as text: rich's JSON() would parse the escapes back


app.command("space")(space_command)


@app.command("ui")
def ui(
    port: Annotated[int, typer.Option(help="Port to serve the page on.")] = 7860,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 serves other machines too.")] = "127.0.0.1",
    model: Model = None,
    scorer: Annotated[Optional[list[str]], typer.Option(help=(
        "A scorer visitors may choose (--scorer forms of improve; repeat it for several, the first is the default). "
        "Visitors choose only among these. Default: the shapes-world scorer with the shapes model, else the paper's CLIP."))] = None,
    max_budget: Annotated[int, typer.Option(min=1, help="The largest budget one run may ask for (the model serves one run at a time).")] = 200,
    max_seeds: Annotated[int, typer.Option(min=1, help="The most seeds one run may ask for.")] = 8,
    vae: Vae = None, device: Device = "auto", dtype: Dtype = "auto", threads: Threads = None,
):
    """Serve a web page (Gradio) to run improve and attack searches on one model, loaded once."""
    from dpodiff.config import ModelSpec
    from dpodiff.inputs import check_port
    from dpodiff.objectives.scorers import check_scorer, load_scorer
    from dpodiff.ui import Models, require_gradio, serve

    check_port(host, port)  # before the models load: a port in use or out of range is told at once
    require_gradio()
    first, *more = scorer or [None]
    for spec in more:
        check_scorer(spec)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/yellow] serving on {host}: every machine that can reach it may run searches on this model.")
    backend, clip, model_name = _load_models(ModelSpec(model, first, vae, device, dtype, threads))
    others = [load_scorer(spec, backend.device, backend.dtype) for spec in more]
    serve(Models(backend, clip, model_name, shapes_world=model is None, others=others, max_budget=max_budget, max_seeds=max_seeds), host, port)


from dpodiff.bench.command import bench  # noqa: E402
app.command("bench")(bench)


def _generated_info(result: dict, record: dict, image):
    """What a PNG of `generate` says about how it was made (dpodiff.report.metadata)."""
    from dpodiff.report.metadata import dpodiff_image

    return dpodiff_image(result["prompt"], result["negative_prompt"], record["seed"], image, model=result["model"], scorer=result["scorer"],
                         loss=record["loss"], role="generated", generation=result["generation"], config=result["config"],
                         loss_prompt=result["loss_prompt"])


def _verdict(verdict: dict | None) -> str:
    return "-" if verdict is None else ("pass" if verdict["pass"] else "fail")


def _load_models(models):
    from dpodiff.threads import use_threads

    use_threads(models.threads)
    try:
        with console.status(f"loading {models.model or 'the shapes world'}"):
            return models.load()
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted while loading the models; nothing was computed or written.")
        raise typer.Exit(130) from None


def _note_recommended(config, backend) -> dict:
    """The settings the model's recommendation decides for `config` (one dim line says which)."""
    from dpodiff.model_folder import recommended_note

    used = config.from_model(backend.recommended)
    if note := recommended_note(used):
        console.print(f"[dim]{note}[/dim]", soft_wrap=True)
    return used


def _llm(config, space: Path | None, url: str | None, model: str | None, key_file: Path | None, timeout: float | None,
         retries: int | None):
    """The LLM endpoint's settings where the space is built by the llm source, else None."""
    if config.space_source != "llm" or space is not None:
        return None
    from dpodiff.spaces.llm import config_from

    return config_from(url, model, key_file, timeout, retries)


class SearchProgress:
    """The terminal's progress bars of a search: GPO's iterations, the candidates scored, the validation."""

    def __init__(self, config):
        from dpodiff.optimizers import GPOSettings

        self.bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("best {task.fields[best]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        self.search = self.bars.add_task(config.task, total=config.search_budget, best="-")
        self.gpo = self.bars.add_task("gpo", total=GPOSettings().iterations, best="-", visible=config.algorithm in WHITE_BOX)
        up_to = "up to " if config.validate and len(config.validate) > 2 else ""
        self.validation = self.bars.add_task(f"validate on {up_to}{config.validate[-1]} new seeds" if config.validate else "", total=1,
                                             best="-", visible=False)

    def on_gpo_iteration(self, iteration: int, loss: float) -> None:
        self.bars.start()
        self.bars.update(self.gpo, completed=iteration + 1, best=f"{loss:.4f}")

    def on_evaluation(self, evaluation, result) -> None:
        self.bars.start()  # only once the inputs passed their checks and the first candidate is scored
        self.bars.update(self.search, completed=len(result.history), best=f"{result.best.loss:.4f}")

    def on_validation(self, done: int, total: int) -> None:
        self.bars.update(self.validation, completed=done, total=total, visible=True)


def _optimize_command(prompt: str, config, models, space: Path | None, llm, out: Path, overwrite: bool, resume: bool) -> None:
    from dpodiff.inputs import check_output_dir, check_prompt
    from dpodiff.models import family_of

    if not prompt.strip():
        check_prompt(prompt, tokenizer=None)  # refuse an empty prompt before any model is loaded
    family = family_of(models.model)
    config.check_guided(bool(family and family.distilled_guidance))  # before the model loads (optimize() checks the recommendation too)
    out = check_output_dir(out, overwrite, resume)
    from dpodiff.journal import JOURNAL
    from dpodiff.optimization import optimize

    backend, clip, model_name = _load_models(models)
    _note_recommended(config, backend)  # optimize() resolves the config the same way and records it
    progress = SearchProgress(config)
    try:
        result = optimize(prompt, pipeline=backend, scorer=clip, config=config, space=space, llm=llm, model_name=model_name,
                          on_evaluation=progress.on_evaluation, on_gpo_iteration=progress.on_gpo_iteration,
                          on_validation=progress.on_validation, journal=out / JOURNAL, resume=resume)
    finally:
        progress.bars.stop()
    try:
        result.save(out)
    except UsageError:
        _print_summary(result, out)  # the results, even where the files could not be written
        console.print(f"[yellow]Every scored candidate is in the journal {out / JOURNAL}; once the folder is writable, "
                      "rerun the same command with --resume to write the files without scoring them again.[/yellow]")
        raise
    _print_summary(result, out)
    if result.stop_reason.startswith("not validated"):
        console.print(f"[red]{terminal(result.stop_reason, 400)}[/red] The search's results are saved in {out}.")
        raise typer.Exit(1)
    if result.stop_reason == "interrupted":
        scored = f"{result.evaluations} candidate{'s' if result.evaluations != 1 else ''} scored"  # all of them, the batch in flight's too
        console.print(f"[yellow]Interrupted: {scored}, saved in {out}.")
        raise typer.Exit(130)


def _print_summary(result, out: Path) -> None:
    seeds = f"{len(result.seeds)} search seeds" + (f" + {len(result.selection.seeds)} new" if result.selection else "")
    table = Table(title=f"{result.task}: {terminal(result.prompt)}")
    for column in ("", "prompt", "negative prompt", "loss (search seeds)", "loss (all seeds)", f"judge ({seeds})"):
        table.add_column(column)
    judge = result.judge or {}
    for role, e in (("original", result.original), ("best", result.best)):
        verdicts = judge.get(role)
        passed = f"{sum(v['pass'] for v in verdicts)}/{len(verdicts)}" if verdicts else "-"
        losses = [v for v in result.seed_losses(e) if v is not None]
        table.add_row(role, terminal(e.prompt), terminal(e.negative_prompt), f"{e.loss:.4f}", f"{sum(losses) / len(losses):.4f}", passed)
    console.print(table)
    if result.selection:
        colour = "yellow" if result.selection.kept_original else "green"
        console.print(f"[{colour}]{terminal(result.selection.summary(), 400)}.[/{colour}]")
    else:
        why = "interrupted before the validation" if result.stop_reason == "interrupted" and (result.config or {}).get("validate") else "not validated"
        console.print(f"[yellow]{why}: the lowest loss on the search seeds was chosen, unchecked on other seeds.[/yellow]")
    by_reader = sum(r.reason != "similarity" for r in result.rejections)  # "meaning" (another scene) or "unreadable"
    rejected = f", {len(result.rejections) - by_reader} rejected by the constraint" if result.constraint else ""
    rejected += f", {by_reader} refused by the model's grammar (another scene, or words it cannot read)" if by_reader else ""
    if result.best.meaning == "verified" and result.best.index != result.original.index:
        console.print("[green]The model's grammar reads the rewording as the same scene: its meaning is verified.[/green]")
    elif result.best.meaning is None and result.best.index != result.original.index and result.constraint:
        console.print("[yellow]No reader of this model verified the rewording's meaning: only the similarity constraint kept it.[/yellow]")
    for dropped in (result.fit or {}).get("dropped", []):
        console.print(f"[yellow]token window:[/yellow] dropped {dropped['part']} {dropped['name']!r} ({dropped['reason']})")
    validated = f"; validation {result.selection.images} images" if result.selection else ""
    console.print(f"{result.evaluations} candidates scored x {len(result.seeds)} seeds{rejected} ({result.stop_reason}){validated}; "
                  f"{result.timings['seconds_per_evaluation']:.2f} s per candidate. Results in {out}")


def main() -> None:
    import traceback

    from rich.markup import escape

    from dpodiff.secrets import scrub

    def print_traceback(e: BaseException) -> None:
        """Printed by us, not Python, so that no secret (the LLM key) in an exception's text reaches the terminal."""
        sys.stderr.write(scrub("".join(traceback.format_exception(e))))

    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except UsageError as e:
        if debug:
            print_traceback(e)
        console.print("[red]error:[/red]", escape(scrub(str(e))))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001  a bug: the traceback is for the report, always printed, secrets blanked out
        print_traceback(e)
        sys.exit(1)


if __name__ == "__main__":
    main()
