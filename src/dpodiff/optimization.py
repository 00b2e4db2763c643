"""`optimize()`: the whole improve/attack job for a user who already holds a pipeline and a scorer.

Steps: prepare (check the inputs, get the search space and fit it to the token window, learn GPO's
distribution), search (score the original prompt, then the optimiser's proposals within the budget),
select (the shortlist on fresh seeds, selection.py), report (the images and verdicts of the original and
the chosen candidate). Every image is made and scored by one Evaluator (evaluator.py).

Settings. A `scheduler` replaces the pipeline's own (built from its config, for this run only). Steps,
guidance and scheduler left None take the model folder's recommendation (its dpodiff.json), else 50, 7.5
and the pipeline's own; result.generation["recommended_used"] says which came from the model. A space left
None is built with `config.space_source` (negative slots from the model's own negative_prompts.json where it
has one, else the generic library).

Selection. `config.validate` (K, V) renders the original and the K best candidates on V fresh seeds and
keeps the original unless one beats it beyond noise (result.selection; None: the plain arg-min; (K, V1, V2,
...): adaptive, in looks). An original with a non-finite loss raises NonFiniteLoss in the search; in the
validation, the search's result comes back with stop_reason "not validated: ..." and no selection.

Stopping and resuming. Ctrl-C, or `should_stop()` turning true (asked after each candidate of the search; a
UI's Stop button), stops the search and returns what was found so far, with stop_reason "interrupted" and
no validation. `on_validation(done, total)` follows the validation's progress. `journal` (a file,
OUT/evaluations.jsonl for the CLI) receives every scored prompt pair as it is scored; with `resume` the
journal there answers what it holds (journal.py), and result.resumed_from counts the search's candidates it
answered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from dpodiff.backends import Backend, GenerationSettings, as_backend
from dpodiff.backends.memory import GIB, default_batch_size
from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.evaluator import Evaluator, Scored, fresh_seeds
from dpodiff.gradient_search import run_gpo
from dpodiff.inputs import check_prompt
from dpodiff.journal import Journal
from dpodiff.objectives.scorer import Scorer
from dpodiff.objectives.scorers import load_scorer
from dpodiff.objectives.decomposed import DecomposedScorer
from dpodiff.objectives.judge import Judge, Reader, find_judge, find_reader, find_wordings, same_meaning
from dpodiff.objectives.similarity import SimilarityConstraint
from dpodiff.optimizers import WHITE_BOX, Candidate, GPOSettings, make_optimizer
from dpodiff.results import Evaluation, OptimizationResult, Rejection
from dpodiff.search import BatchInterrupted, run_search
from dpodiff.selection import NonFiniteLoss, check_original, select
from dpodiff.spaces import SearchSpace
from dpodiff.spaces.fit import fit_space
from dpodiff.spaces.prefilter import prefilter
from dpodiff.tasks import Task

OnEvaluation = Callable[[Evaluation, OptimizationResult], None]


def optimize(
    prompt: str,
    *,
    pipeline,
    scorer: Scorer | str,
    config: RunConfig | None = None,
    space: SearchSpace | str | Path | None = None,
    llm=None,
    judge: Judge | None = None,
    model_name: str | None = None,
    on_evaluation: OnEvaluation | None = None,
    gpo_settings: GPOSettings | None = None,
    on_gpo_iteration: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_validation: Callable[[int, int], None] | None = None,
    journal: str | Path | None = None,
    resume: bool = False,
    **settings,
) -> OptimizationResult:
    """Search a better negative prompt (task="improve") or a meaning-preserving attack (task="attack").

    `pipeline` is a diffusers pipeline or a dpodiff backend; `scorer` a Scorer or a --scorer spec for
    objectives.scorers.load_scorer ("openai/clip-vit-base-patch32", "pickscore:yuvalkirstain/PickScore_v1");
    `config` a RunConfig, and any of its fields may also be given as keywords (e.g. `algorithm="hybrid",
    budget=40, seeds=4`). `space` is a SearchSpace, a space file, or None to build one. Returns the result with
    every evaluation, the chosen candidate (`result.best`) and the images of the original and the chosen
    candidate for each seed. The settings, the selection, the callbacks, Ctrl-C and the journal: the module's
    docstring.
    """
    started = time.perf_counter()
    setup = _setup(prompt, pipeline, scorer, config, settings, judge, model_name, journal, resume)
    config, task, backend = setup.config, setup.config.task_spec, setup.backend
    space, fit, check, prefiltered = _searched_space(setup, space, llm)
    sizes = task.sizes(space)
    logits, gpo_trace, budget = _learned_distribution(setup, space, gpo_settings, on_gpo_iteration)
    # score the original, then search
    optimizer = make_optimizer(config.algorithm, sizes, seed=config.search_seed, logits=logits, sampling=config.sampling,
                               argmax_first=config.protocol == "paper")
    result = _new_result(setup, optimizer, budget, space, fit, prefiltered, check, gpo_trace)
    evaluator = Evaluator(backend, setup.scorer, setup.generation, setup.prompt, setup.judge, setup.journal)
    shortlist_size = config.validate[0] if config.validate else 1
    scoring = CandidateScoring(evaluator, task, space, setup.seeds, result, shortlist_size, check, on_evaluation, should_stop)
    outcome = run_search(optimizer, tuple([0] * len(sizes)), scoring, budget, scoring.admissible if check.active else None)
    result.stop_reason = outcome.stop_reason
    result.resumed_from = scoring.from_journal
    if result.original is None:
        raise KeyboardInterrupt  # interrupted before even the original prompt was scored: nothing to save

    validation = _validated(result, setup, evaluator, on_validation)
    _report_images(result, scoring, evaluator, validation)
    result.timings = {
        "total_seconds": time.perf_counter() - started,
        "gpo_seconds": sum(gpo_trace.seconds) if gpo_trace else 0.0,
        "search_seconds": sum(e.seconds for e in result.history),
        "validation_seconds": sum(s.seconds for s in validation),
        "seconds_per_evaluation": sum(e.seconds for e in result.history) / len(result.history),
        "cpu_threads": torch.get_num_threads(),
    }
    return result


def _learned_distribution(setup: "Setup", space: SearchSpace, gpo_settings: GPOSettings | None, on_gpo_iteration):
    """(logits, GPO's trace, the search's budget): white-box optimisers first learn a distribution over the
    candidates with the shortcut gradient; with --equal-cost its measured cost comes off the budget."""
    config = setup.config
    if config.algorithm not in WHITE_BOX:
        return None, None, config.search_budget
    logits, trace = run_gpo(setup.backend, setup.scorer, space, config.task_spec, setup.seeds, setup.generation,
                            gpo_settings or GPOSettings(), config.search_seed, on_gpo_iteration)
    budget = config.search_budget
    if config.charge_gpo:  # GPO's measured cost, in candidates of len(seeds) images, is spent already
        budget = max(1, budget - math.ceil(trace.equivalent_images_measured / len(setup.seeds)))
    return logits, trace, budget


@dataclass
class Setup:
    """What the checks of a run decide before any image is made: the settings resolved with the model's
    recommendation, the models, and what the model's folder adds (judge, reader, wordings)."""

    prompt: str
    config: RunConfig
    backend: Backend
    scorer: Scorer
    second: Scorer | None  # --select-scorer
    generation: GenerationSettings
    model_name: str
    recommended_used: dict
    journal: Journal | None
    judge: Judge | None
    reader: Reader | None
    wordings: Callable | None

    @property
    def seeds(self) -> list[int]:
        return list(self.config.seeds)


def _setup(prompt: str, pipeline, scorer: Scorer | str, config: RunConfig | None, settings: dict, judge: Judge | None,
           model_name: str | None, journal: str | Path | None, resume: bool) -> Setup:
    """Step 1: check the inputs, resolve the settings, load scorers named by spec, open the journal."""
    unknown = sorted(set(settings) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise TypeError(f"optimize() got settings that are not RunConfig fields: {', '.join(unknown)}")
    config = replace(config or RunConfig(), **settings)  # checked as it is built (RunConfig.__post_init__)
    task = config.task_spec
    backend = as_backend(pipeline)
    recommended_used = config.from_model(backend.recommended)  # what the model's dpodiff.json decides: the settings left to it
    config = config.resolved(backend.recommended)
    config.check_guided(backend.distilled_guidance)
    prompt = check_prompt(prompt, backend.tokenizer)
    if isinstance(scorer, (str, Path)):
        scorer = load_scorer(str(scorer), backend.device)
    if config.decompose:
        scorer = DecomposedScorer(scorer)
    check_prompt(prompt, scorer.tokenizer, "scorer's text encoder")
    second = None
    if config.select_scorer and config.validate:
        second = load_scorer(config.select_scorer, backend.device)
        check_prompt(prompt, second.tokenizer, "--select-scorer's text encoder")
    generation = generation_settings(backend, config)
    model_name = model_name or str(getattr(backend.pipe, "name_or_path", "") or "")
    if journal is not None:  # before GPO and the search: a resume with other settings is refused at once
        journal = Journal.open(journal, journal_settings(prompt, model_name, scorer, backend, config), resume)
    folder = bool(model_name) and Path(model_name).is_dir()
    if judge is None and folder:
        judge = find_judge(model_name)
    rewords = task.search_positive and folder
    return Setup(prompt, config, backend, scorer, second, generation, model_name, recommended_used, journal, judge,
                 find_reader(model_name) if rewords else None, find_wordings(model_name) if rewords else None)


def _searched_space(setup: Setup, space, llm) -> tuple[SearchSpace, object, MeaningCheck, list[dict]]:
    """Step 2: the search space (built with the model's own wordings where it has them), fitted to the token
    window, with the meaning check and, where it is active, the one-word swaps that fail it taken out."""
    prompt, config, task, backend = setup.prompt, setup.config, setup.config.task_spec, setup.backend
    space = _resolve_space(space, prompt, config, backend, llm, setup.wordings)
    space, fit = fit_space(space, backend.tokenizer, backend.token_window, positive=task.search_positive, negative=task.search_negative)
    if not task.sizes(space) or space.size(task.search_positive, task.search_negative) < 2:
        raise UsageError(f"The search space for {prompt!r} has no {task.searched} with a choice to make, so there is nothing to search. Give a --space with some.")
    constraint = SimilarityConstraint(prompt, config.min_similarity, config.similarity_model) if task.constrained else None
    check = MeaningCheck(prompt, constraint, setup.reader)
    prefiltered: list[dict] = []
    if task.search_positive and check.active:
        space, prefiltered = prefilter(space, lambda text: check(text)[0])
        if space.size(task.search_positive, task.search_negative) < 2:
            raise UsageError(f"No synonym of {prompt!r} keeps its meaning on its own: all {len(prefiltered)} one-word swaps failed the "
                             f"meaning check (e.g. {prefiltered[0]['prompt']!r}). Give a --space with other words, or, where the model "
                             "has no reader that reads the prompt, a lower --min-similarity.")
    return space, fit, check, prefiltered


def _new_result(setup: Setup, optimizer, budget: int, space: SearchSpace, fit, prefiltered: list[dict], check: MeaningCheck,
                gpo_trace) -> OptimizationResult:
    """The result a search fills in, with every setting that made it."""
    config, backend, generation = setup.config, setup.backend, setup.generation
    return OptimizationResult(
        task=config.task_spec.name,
        prompt=setup.prompt,
        model=setup.model_name,
        scorer=setup.scorer.name,
        algorithm=config.algorithm,
        algorithm_settings={"search_seed": config.search_seed, **optimizer.settings()},
        generation={**backend.describe(generation), "steps": config.steps, "guidance": config.guidance, "negative_mode": config.negative_mode,
                    "height": config.height or backend.native_size,
                    "width": config.width or backend.native_size, "batch_size": generation.batch_size, "recommended_used": setup.recommended_used},
        seeds=setup.seeds,
        budget=budget,
        original=None,  # type: ignore[arg-type]  # set by the first evaluation
        history=[],
        config=config.to_dict(),
        constraint={"model": config.similarity_model, "min_similarity": config.min_similarity} if check.constraint else None,
        space=space.to_dict(),
        fit={**fit.to_dict(), "prefiltered": prefiltered},
        gpo=asdict(gpo_trace) if gpo_trace else None,
    )


def _validated(result: OptimizationResult, setup: Setup, evaluator: Evaluator, on_validation) -> list[Scored]:
    """Step 3, selection: the shortlist on fresh seeds, the original kept unless beaten beyond noise."""
    config = setup.config
    if not config.validate or result.stop_reason == "interrupted":
        return []
    k, *looks = config.validate
    try:
        result.selection, validation = select(result.history, config.task_spec.sign, evaluator, k, fresh_seeds(setup.seeds, looks[-1]),
                                              looks, on_finalist=on_validation, second=setup.second)
        return validation
    except KeyboardInterrupt:
        result.stop_reason = "interrupted"  # the search's results stand; the plain arg-min is reported
    except NonFiniteLoss as error:  # the search's results are saved; the CLI then exits with the message
        result.stop_reason = f"not validated: {error}"
    return []


def _report_images(result: OptimizationResult, scoring: "CandidateScoring", evaluator: Evaluator, validation: list[Scored]) -> None:
    """Step 4, report: the images and the judge's verdicts of the original and the chosen candidate, on every image seed."""
    for role, evaluation in (("original", result.original), ("best", result.best)):
        made = [scoring.kept[evaluation.index]]
        if result.selection:
            made += [s for f, s in zip(result.selection.finalists, validation) if f.index == evaluation.index]
        made = [evaluator.rendered(scored) for scored in made]  # answered from the journal: drawn again, not scored
        result.images[role] = [image for scored in made for image in scored.images]
        if all(scored.verdicts for scored in made):
            result.judge = {**(result.judge or {}), role: [v for scored in made for v in scored.verdicts]}


@dataclass
class CandidateScoring:
    """The search's objective: candidates -> prompt pairs -> the evaluator -> losses, each candidate recorded in
    `result.history` as soon as its images are scored, so Ctrl-C loses at most one pipeline call's work
    (BatchInterrupted tells the search what was scored). The images of the original and of the `keep` best
    other candidates so far (the shortlist of validated selection) are kept for the report."""

    evaluator: Evaluator
    task: Task
    space: SearchSpace
    seeds: list[int]
    result: OptimizationResult
    keep: int
    check: MeaningCheck
    on_evaluation: OnEvaluation | None = None
    should_stop: Callable[[], bool] | None = None
    kept: dict[int, Scored] = field(default_factory=dict)
    from_journal: int = 0  # candidates answered from an earlier run's journal (--resume)

    def __call__(self, candidates: list[Candidate]) -> list[float]:
        result, values = self.result, []
        pairs = [self.task.render(self.space, c) for c in candidates]
        try:
            for candidate, scored in zip(candidates, self.evaluator.evaluate(pairs, self.seeds)):
                evaluation = Evaluation(
                    index=len(result.history), candidate=list(candidate), prompt=scored.prompt, negative_prompt=scored.negative_prompt,
                    loss=scored.loss, losses=scored.losses, seconds=scored.seconds,
                    similarity=self.check.similarity(scored.prompt), judged=scored.passed, meaning=self.check.meaning(scored.prompt),
                )
                if result.original is None:  # every loss is compared with the original's: stop before the budget is spent
                    check_original(evaluation.losses, "search")
                result.history.append(evaluation)
                journal = self.evaluator.journal
                self.from_journal += journal is not None and journal.from_earlier_run(scored.prompt, scored.negative_prompt, scored.seeds)
                values.append(self.task.sign * evaluation.loss)  # before the callback, which may raise KeyboardInterrupt
                result.original = result.original or evaluation
                self.kept[evaluation.index] = scored
                shortlist = {e.index for e in result.top(self.keep + 1)} | {result.original.index}  # the original may rank among them
                self.kept = {i: s for i, s in self.kept.items() if i in shortlist}
                if self.on_evaluation:
                    self.on_evaluation(evaluation, result)
                if self.should_stop is not None and self.should_stop():
                    raise KeyboardInterrupt  # handled as Ctrl-C is: every candidate scored so far is kept
        except KeyboardInterrupt:
            raise BatchInterrupted(values) from None
        return values

    def admissible(self, candidate: Candidate) -> bool:
        text, _ = self.task.render(self.space, candidate)
        ok, reason = self.check(text)
        if not ok:
            self.result.rejections.append(Rejection(list(candidate), text, self.check.similarity(text), reason))
        return ok


@dataclass
class MeaningCheck:
    """Whether a rewording keeps the prompt's meaning. Where the model's reader can read the prompt, it
    decides: the same scene is accepted whatever its sentence similarity (the constraint is only a
    stand-in for a reader), another scene or words it cannot read are refused, so every rewording kept
    is verified. Otherwise the similarity constraint (attack) decides; with neither, everything passes."""

    prompt: str
    constraint: SimilarityConstraint | None = None
    reader: Reader | None = None

    @property
    def active(self) -> bool:
        return self.constraint is not None or self.reader is not None

    def meaning(self, text: str) -> str | None:
        return same_meaning(self.reader, self.prompt, text)

    def similarity(self, text: str) -> float | None:
        return self.constraint.similarity(text) if self.constraint else None

    def __call__(self, text: str) -> tuple[bool, str | None]:
        """(admissible, why not: "meaning" (another scene), "unreadable" or "similarity")."""
        meaning = self.meaning(text)
        if meaning is not None:  # the reader reads the prompt: it decides
            return (True, None) if meaning == "verified" else (False, "meaning" if meaning == "changed" else "unreadable")
        if self.constraint is None or self.constraint.accepts(text):
            return True, None
        return False, "similarity"


def journal_settings(prompt: str, model_name: str, scorer: Scorer, backend: Backend, config: RunConfig) -> dict:
    """What decides a prompt pair's loss on a seed: a journal answers a resumed run only where these are the same."""
    generation = {name: getattr(config, name) for name in ("steps", "guidance", "true_cfg", "height", "width", "scheduler", "negative_mode")}
    return {"prompt": prompt, "model": model_name, "scorer": scorer.name, "decompose": config.decompose,
            "generation": {**generation, "dtype": str(backend.dtype).removeprefix("torch.")}}


def generation_settings(backend: Backend, config: RunConfig):
    """The config's generation settings, with the default batch size for this image size (memory.py), and
    --max-memory given to the backend's memory budget (a GPU's; refused on other devices); sides the model
    cannot draw exactly are refused."""
    if config.max_memory is not None:
        if backend.device.type != "cuda":
            raise UsageError(f"--max-memory caps GPU memory, and this run is on the {backend.device.type}: "
                             "leave it out, or set --batch-size to make fewer images per call.")
        backend.memory.max_bytes = int(config.max_memory * GIB)
    backend.check_size(config.height, config.width)
    pixels = (config.height or backend.native_size) * (config.width or backend.native_size)
    return config.generation(default_batch_size(len(config.seeds), pixels))


def _resolve_space(space, prompt: str, config: RunConfig, backend: Backend, llm, wordings=None) -> SearchSpace:
    """The space given, loaded from a file, or built for the prompt (with the model's own text encoder)."""
    from dpodiff.spaces import load_space
    from dpodiff.spaces.build import build_task_space

    if isinstance(space, SearchSpace):
        if " ".join(space.prompt.split()) != " ".join(prompt.split()):
            raise UsageError(f"The search space was built for {space.prompt!r}, not {prompt!r}.")
        return space
    if space is not None:
        return load_space(space, prompt)
    return build_task_space(
        prompt, config.task_spec, source=config.space_source, per_word=config.per_word, space_kind=config.space_kind, llm=llm,
        tokenizer=backend.tokenizer, text_encoder=backend.text_encoders[0], negative_library=backend.negative_library, wordings=wordings,
    )
