"""`dpodiff bench`: run many prompts x algorithms, store each run in SQLite as it finishes, then summarise.

Rerunning the same command resumes: finished runs are skipped, interrupted or failed ones are redone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dpodiff.cli_options import (
    BatchSize, Budget, MaxMemory, Device, Dtype, Guidance, Decompose, Model, NegativeMode, NoValidate, PerWord, Protocol, SelectScorer, Scheduler, Scorer, SearchSeed, Seed, Seeds, Size, SpaceKind, SpaceSource,
    Steps, Threads, TrueCfg, Vae, Validate, Sampling,
)
from dpodiff.defaults import DEFAULT_MIN_SIMILARITY, DEFAULT_SENTENCE_MODEL, DEFAULT_VALIDATE, MAX_IMAGES
from dpodiff.display import terminal
from dpodiff.errors import UsageError
from dpodiff.registry import EXECUTORS, OPTIMIZERS

console = Console(stderr=True)
PAPER_THRESHOLD = 0.85  # the paper's "hard prompt" cut: loss >= 0.85 to improve, <= 0.85 to attack


def bench(
    prompts: Annotated[Path, typer.Argument(help="Prompt file: one prompt a line, or JSON/JSONL (strings or objects with a \"prompt\" field). Lines starting with # are skipped.")],
    task: Annotated[str, typer.Option(help="improve or attack.")] = "improve",
    algos: Annotated[str, typer.Option(help=f"Comma list of algorithms: {', '.join(OPTIMIZERS)}.")] = "random,epo",
    seeds: Seeds = None, seed: Seed = None, budget: Budget = 40, search_seed: SearchSeed = 0, sampling: Sampling = "sparse",
    validate: Validate = ",".join(map(str, DEFAULT_VALIDATE)), no_validate: NoValidate = False, protocol: Protocol = "dpodiff",
    decompose: Decompose = False, select_scorer: SelectScorer = None,
    eval_seeds: Annotated[int, typer.Option(help="Judge the original and the chosen prompt on this many seeds that neither the search nor the validation saw (summary columns *_eval); 0: none.")] = 0,
    db: Annotated[Optional[Path], typer.Option(help="SQLite database of results; rerunning with the same one resumes. Default: OUT/results.sqlite.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for summary.csv, summary.md, report.html and each run's images.")] = Path("runs/bench"),
    select: Annotated[bool, typer.Option("--select", help="Keep only the hard prompts: score each prompt's own images first and keep those past --select-threshold.")] = False,
    select_threshold: Annotated[float, typer.Option(help="With --select: keep prompts with loss >= this (improve) or <= this (attack).")] = PAPER_THRESHOLD,
    positive: Annotated[bool, typer.Option("--positive", help="improve: also substitute synonyms in the positive prompt.")] = False,
    min_similarity: Annotated[float, typer.Option(help="attack: least sentence-embedding similarity of a rewording.")] = DEFAULT_MIN_SIMILARITY,
    similarity_model: Annotated[str, typer.Option(help="attack: sentence-transformers model for the constraint.")] = DEFAULT_SENTENCE_MODEL,
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space JSON for the prompts: the DPO-Diff reference format may hold every prompt. Default: built from each prompt.")] = None,
    space_source: SpaceSource = "auto", per_word: PerWord = 5, space_kind: SpaceKind = "both",
    model: Model = None, scorer: Scorer = None, vae: Vae = None, device: Device = "auto", dtype: Dtype = "auto", threads: Threads = None,
    steps: Steps = None, guidance: Guidance = None, true_cfg: TrueCfg = None, height: Size = None, width: Size = None, batch_size: BatchSize = None, max_memory: MaxMemory = None,
    scheduler: Scheduler = None, negative_mode: NegativeMode = "cfg",
    equal_cost: Annotated[bool, typer.Option("--equal-cost", help="Charge gpo/hybrid their measured GPO cost (in candidates) against --budget, so every algorithm spends the same compute.")] = False,
    executor: Annotated[str, typer.Option(help=f"Where the runs go: {EXECUTORS.listing()}.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="With --executor ray: the cluster (host:port or ray://host:port). Default: start a local cluster.")] = None,
    backend: Annotated[Optional[str], typer.Option(hidden=True, help="The old name of --executor.")] = None,
):
    """Benchmark algorithms on many prompts; resumable (SQLite), with summary tables and an HTML report."""
    from dpodiff.bench.config import BenchConfig
    from dpodiff.bench.prompts import read_prompts
    from dpodiff.config import ModelSpec, RunConfig, generation_options
    from dpodiff.inputs import check_output_dir, pick_seeds

    # 1. check every input before loading anything
    algorithms = _algorithms(algos)
    run = RunConfig(task=task, algorithm=algorithms[0], seeds=pick_seeds(seeds, seed), budget=budget, search_seed=search_seed,
                    sampling=sampling, validate=None if no_validate else validate, protocol=protocol, decompose=decompose,
                    select_scorer=select_scorer, positive=positive, min_similarity=min_similarity, similarity_model=similarity_model,
                    space_source=space_source, per_word=per_word, space_kind=space_kind, charge_gpo=equal_cost,
                    **generation_options(steps, guidance, true_cfg, height, width, batch_size, max_memory, scheduler, negative_mode))
    models = ModelSpec(model, scorer, vae, device, dtype, threads)
    if not 0 <= eval_seeds <= MAX_IMAGES:
        raise UsageError(f"--eval-seeds {eval_seeds}: give 0 (none) to {MAX_IMAGES}; 8 is enough to see a change of a few images in ten.")
    run = _checked_run(run, models, space)
    if not math.isfinite(select_threshold):
        raise UsageError(f"--select-threshold {select_threshold} is not a finite number; the paper's is {PAPER_THRESHOLD}.")
    executor = _executor(executor, backend, ray_address)
    if space is not None and not space.is_file():
        raise UsageError(f"The search space file {str(space)!r} does not exist.")
    listed = read_prompts(prompts)
    if listed.duplicates:
        console.print(f"[yellow]{len(listed.duplicates)} prompt(s) appear more than once in {prompts}; each is run once: "
                      + "; ".join(terminal(p) for p in listed.duplicates[:5]) + (" ..." if len(listed.duplicates) > 5 else ""))
    out = check_output_dir(out)
    config = BenchConfig(run=run, out=str(out.resolve()), models=models, space=str(space) if space else None, eval_seeds=eval_seeds)
    _bench(config, out, db or out / "results.sqlite", listed.prompts, algorithms, executor, ray_address, select_threshold if select else None)


def _algorithms(algos: str) -> list[str]:
    algorithms = [a.strip() for a in algos.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in OPTIMIZERS]
    if not algorithms or unknown:
        raise UsageError(f"--algos {algos!r}: {', '.join(map(repr, unknown)) or 'no algorithm'} is not one of {', '.join(OPTIMIZERS)}; give a comma list, e.g. random,epo.")
    return list(dict.fromkeys(algorithms))


def _checked_run(run, models, space: Path | None):
    """The run's settings resolved as the model recommends (read without loading it), refused where bench cannot run them."""
    from dpodiff.models import family_of

    if run.space_source == "llm" and space is None:
        raise UsageError("--space-source llm: bench calls no LLM endpoint (its runs may go to Ray workers); build the spaces with "
                         "`dpodiff space PROMPT --source llm --llm-url ... --out FILE` and give them with --space, or choose "
                         "auto, wordnet, thesaurus or embedding.")
    family = family_of(models.model)
    run = _resolved(run, models.model, family)  # before the fingerprint: a resumed database compares the settings actually used
    run.check_guided(bool(family and family.distilled_guidance))
    return run


def _executor(executor: str, backend: str | None, ray_address: str | None) -> str:
    if backend is not None:
        console.print(f"[yellow]--backend is deprecated: it is now --executor (--executor {backend}).")
        executor = backend
    EXECUTORS.check(executor)
    if ray_address and executor != "ray":
        raise UsageError("--ray-address needs --executor ray.")
    return executor


def _bench(config, out: Path, db: Path, prompts: list[str], algorithms: list[str], executor: str, ray_address: str | None,
           select_threshold: float | None) -> None:
    """Steps 2 to 4: start the executor, run what the database lacks, write the outputs from the database."""
    from dpodiff.bench import storage
    from dpodiff.bench.lock import BenchLock
    from dpodiff.bench.report import write_outputs

    settings = config.settings()
    with BenchLock(db):  # one bench per database: a second exits at once (see bench/lock.py)
        conn = storage.open_db(db, settings)
        # 2. the executor: the models loaded here, or a Ray cluster
        with console.status(f"starting the {executor} executor ({config.models.model or 'the shapes world'})"):
            runner = EXECUTORS.load(executor)(config, ray_address)
        try:
            # 3. --select: the hard prompts only (original scores are stored, so a rerun does not score them again)
            if select_threshold is not None:
                prompts = _select(conn, config, prompts, select_threshold, runner.score)
            _run(conn, config, settings, prompts, algorithms, runner.run)
        finally:
            runner.close()
        # 4. outputs, from the database
        _print_summary(write_outputs(conn, config, prompts, algorithms, db))
        failed = conn.execute("SELECT prompt, algorithm, error FROM runs WHERE task = ? AND status = 'failed'", (config.task,)).fetchall()
        failed = [f for f in failed if f[0] in prompts and f[1] in algorithms]
        conn.close()
    console.print(f"Results: {db}; {out / 'summary.csv'}, {out / 'summary.md'}, {out / 'report.html'}")
    if failed:
        for p, a, e in failed:
            console.print(f"[red]failed[/red] {a} on {terminal(p)}: {terminal(e, 500)}")
        console.print(f"[red]{len(failed)} run(s) failed; rerun the same command to retry them.")
        raise typer.Exit(1)


def _resolved(run, model: str | None, family):
    """`run` with the settings left to the model taken from its folder's dpodiff.json, else its family's defaults
    (read without loading the model)."""
    from dpodiff.model_folder import recommended_note
    from dpodiff.models import recommended_before_loading

    recommended = recommended_before_loading(model, family)
    if note := recommended_note(run.from_model(recommended)):
        console.print(f"[dim]{note}[/dim]", soft_wrap=True)
    return run.resolved(recommended)


def _select(conn, config, prompts: list[str], threshold: float, score) -> list[str]:
    from dpodiff.bench import storage

    known = storage.stored_baselines(conn)
    missing = [p for p in prompts if p not in known]
    if missing:
        with console.status(f"scoring the original images of {len(missing)} prompt(s) for --select"):
            storage.store_baselines(conn, score(config, missing))
        known = storage.stored_baselines(conn)
    task = config.run.task_spec
    hard = [p for p in prompts if task.is_hard(known[p], threshold)]
    sign = task.hard_prompt
    console.print(f"--select: {len(hard)} of {len(prompts)} prompts have loss {sign} {threshold} and are kept.")
    if not hard:
        console.print("[yellow]No prompt passes the threshold; nothing to run. Lower (improve) or raise (attack) --select-threshold.")
    return hard


def _run(conn, config, settings: dict, prompts: list[str], algorithms: list[str], run_jobs) -> None:
    from dpodiff.bench import storage
    from dpodiff.bench.jobs import Job

    done = storage.done_runs(conn, config.task)
    wanted = [(p, a) for p in prompts for a in algorithms]
    todo = [(p, a) for p, a in wanted if (p, a) not in done]
    if len(todo) < len(wanted):
        console.print(f"{len(wanted) - len(todo)} of {len(wanted)} runs are already in the database; skipping them.")
    if not todo:
        return
    jobs = [Job(storage.claim(conn, p, config.task, a, list(config.seeds), settings), p, a) for p, a in todo]
    progress = Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[current]}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
    bar = progress.add_task("runs", total=len(wanted), completed=len(wanted) - len(todo), current="")

    def on_start(job):
        progress.update(bar, current=f"{job.algorithm}: {terminal(job.prompt, 50)}")

    def on_done(job, record, error):
        if record is None:
            storage.fail(conn, job.run_id, error)
            progress.console.print(f"[red]failed[/red] {job.algorithm} on {terminal(job.prompt)}: {terminal(error, 500)}")
        else:
            storage.finish(conn, job.run_id, record)
        progress.update(bar, advance=1, current=f"done {job.algorithm}: {terminal(job.prompt, 50)}")

    with progress:
        run_jobs(config, jobs, on_start, on_done)


def _print_summary(summary) -> None:
    table = Table(title="benchmark summary")
    held_out = any(s.judge_before_eval is not None for s in summary)
    columns = ["task", "algorithm", "prompts", "baseline loss", "best loss", "judge (search)"]
    columns += ["judge (eval seeds)", "repaired / broken (eval)"] if held_out else []
    for column in columns + ["evals/prompt", "s/prompt"]:
        table.add_column(column)
    for s in summary:
        judge = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        evaluated = [f"{judge(s.judge_before_eval)} → {judge(s.judge_after_eval)}", f"{judge(s.repaired_eval)} / {judge(s.broken_eval)}"]
        table.add_row(s.task, s.algorithm, str(s.n_prompts), f"{s.baseline_loss_mean:.4f} ± {s.baseline_loss_std:.4f}",
                      f"{s.best_loss_mean:.4f} ± {s.best_loss_std:.4f}", f"{judge(s.judge_before)} → {judge(s.judge_after)}",
                      *(evaluated if held_out else []), f"{s.evaluations_per_prompt:.1f}", f"{s.seconds_per_prompt:.1f}")
    console.print(table)
