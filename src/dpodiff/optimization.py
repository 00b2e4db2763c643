"""`optimize()`: the whole improve/attack job for a user who already holds a pipeline and a scorer.

Steps: check the inputs, get the search space and fit it to the token window, score the original
prompt, let the optimiser search within the budget, then judge and keep the images of the
original and the best candidate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from dpodiff.backends import Backend, Request, as_backend
from dpodiff.backends.schedulers import set_scheduler
from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.gradient_search import run_gpo
from dpodiff.inputs import check_prompt
from dpodiff.objectives.scorer import Scorer
from dpodiff.objectives.scorers import load_scorer
from dpodiff.objectives.judge import Judge, find_judge, judge_images
from dpodiff.objectives.similarity import SimilarityConstraint
from dpodiff.optimizers import WHITE_BOX, GPOSettings, make_optimizer
from dpodiff.report.images import to_pil
from dpodiff.results import Evaluation, OptimizationResult, Rejection
from dpodiff.search import BatchInterrupted, run_search
from dpodiff.spaces import SearchSpace
from dpodiff.spaces.fit import fit_space

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
    **settings,
) -> OptimizationResult:
    """Search a better negative prompt (task="improve") or a meaning-preserving attack (task="attack").

    `pipeline` is a diffusers pipeline or a dpodiff backend; `scorer` a Scorer or a --scorer spec for
    objectives.scorers.load_scorer ("openai/clip-vit-base-patch32", "pickscore:yuvalkirstain/PickScore_v1");
    `config` a RunConfig, and any of its fields may also be given as keywords (e.g. `algorithm="hybrid",
    budget=40, seeds=4`); a `scheduler` replaces the pipeline's own (built from its config). Steps, guidance
    and scheduler left None take the model folder's recommendation (its dpodiff.json), else 50, 7.5 and the
    pipeline's own; result.generation["recommended_used"] says which came from the model. `space` is a
    SearchSpace, a space file, or None to build one with `config.space_source` (negative slots from the
    model's own negative_prompts.json where it has one, else the generic library). Returns the result with
    every evaluation, the best candidates and the images of the original and the best candidate for
    each seed. Ctrl-C, or `should_stop()` turning true (asked after each pipeline call of the search; a UI's
    Stop button), stops the search and returns what was found so far, with stop_reason "interrupted".
    """
    started = time.perf_counter()
    # 1. check inputs
    config = RunConfig.from_options(**{**(config.to_dict() if config else {}), **settings})
    task = config.task_spec
    backend = as_backend(pipeline)
    recommended_used = config.from_model(backend.recommended)  # what the model's dpodiff.json decides: the settings left to it
    config = config.resolved(backend.recommended)
    set_scheduler(backend.pipe, config.scheduler)  # None keeps the pipeline's own
    prompt = check_prompt(prompt, backend.tokenizer)
    if isinstance(scorer, (str, Path)):
        scorer = load_scorer(str(scorer), backend.device)
    check_prompt(prompt, scorer.tokenizer, "scorer's text encoder")
    seeds = list(config.seeds)
    generation = generation_settings(backend, config)
    model_name = model_name or str(getattr(backend.pipe, "name_or_path", "") or "")
    if judge is None and model_name and Path(model_name).is_dir():
        judge = find_judge(model_name)

    # 2. the search space, fitted to the token window
    space = _resolve_space(space, prompt, config, backend, llm)
    space, fit = fit_space(space, backend.tokenizer, backend.token_window,
                           positive=task.search_positive, negative=task.search_negative)
    sizes = task.sizes(space)
    if not sizes or space.size(task.search_positive, task.search_negative) < 2:
        raise UsageError(f"The search space for {prompt!r} has no {task.searched} with a choice to make, so there is nothing to search. Give a --space with some.")
    constraint = SimilarityConstraint(prompt, config.min_similarity, config.similarity_model) if task.constrained else None

    # 3. white-box optimisers first learn a distribution over candidates with the shortcut gradient
    logits, gpo_trace = None, None
    if config.algorithm in WHITE_BOX:
        logits, gpo_trace = run_gpo(backend, scorer, space, task, seeds, generation, gpo_settings or GPOSettings(),
                                    config.search_seed, on_gpo_iteration)

    budget = config.budget
    if gpo_trace and config.charge_gpo:  # GPO's measured cost, in candidates of len(seeds) images, is spent already
        budget = max(1, budget - math.ceil(gpo_trace.equivalent_images_measured / len(seeds)))

    # 4. score the original, then search
    optimizer = make_optimizer(config.algorithm, sizes, seed=config.search_seed, logits=logits, sampling=config.sampling)
    target = scorer.target(prompt)
    result = OptimizationResult(
        task=task.name,
        prompt=prompt,
        model=model_name,
        scorer=scorer.name,
        algorithm=config.algorithm,
        algorithm_settings={"search_seed": config.search_seed, **optimizer.settings()},
        generation={**backend.describe(), "steps": config.steps, "guidance": config.guidance, "height": config.height or backend.native_size,
                    "width": config.width or backend.native_size, "batch_size": config.batch_size, "recommended_used": recommended_used},
        seeds=seeds,
        budget=budget,
        original=None,  # type: ignore[arg-type]  # set by the first evaluation
        history=[],
        config=config.to_dict(),
        constraint={"model": config.similarity_model, "min_similarity": config.min_similarity} if constraint else None,
        space=space.to_dict(),
        fit=fit.to_dict(),
        gpo=asdict(gpo_trace) if gpo_trace else None,
    )

    def objective(candidates) -> list[float]:
        """Score candidates: their images (candidates x seeds) are made one pipeline call (`generation.batch_size`
        images) at a time, and each candidate is recorded as soon as all its images are scored, so Ctrl-C loses at
        most one pipeline call's work (BatchInterrupted tells the search what was scored)."""
        n = len(seeds)
        prompts = [task.render(space, c) for c in candidates]
        requests = [Request(text, negative, s) for text, negative in prompts for s in seeds]
        step = generation.batch_size or len(requests)
        values: list[float] = []
        pending = None  # images made whose candidate still waits for some of its seeds
        try:
            t0 = time.perf_counter()
            for start in range(0, len(requests), step):
                made = backend.generate(requests[start : start + step], generation)
                pending = made if pending is None else torch.cat([pending, made])
                ready = min(start + step, len(requests)) // n - len(values)  # candidates whose images are all made
                if ready == 0:
                    continue
                images, pending = pending[: ready * n], (pending[ready * n :] if len(pending) > ready * n else None)
                all_losses = scorer.loss(images, target).tolist()  # one host sync per pipeline call
                seconds = (time.perf_counter() - t0) / ready
                for i in range(ready):
                    candidate, (text, negative) = candidates[len(values)], prompts[len(values)]
                    losses = all_losses[i * n : (i + 1) * n]
                    pictures = to_pil(images[i * n : (i + 1) * n]) if judge else None
                    verdicts = judge_images(judge, prompt, pictures)  # every candidate's: what the space could reach
                    evaluation = Evaluation(
                        index=len(result.history), candidate=list(candidate), prompt=text, negative_prompt=negative,
                        loss=sum(losses) / len(losses), losses=losses, seconds=seconds,
                        similarity=constraint.similarity(text) if constraint else None,
                        judged=[v["pass"] for v in verdicts] if verdicts else None,
                    )
                    result.history.append(evaluation)
                    values.append(task.sign * evaluation.loss)  # before the callback, which may raise KeyboardInterrupt
                    if result.original is None:
                        result.original = evaluation
                        result.images["original"] = pictures or to_pil(images[i * n : (i + 1) * n])
                    if result.best is evaluation:
                        result.images["best"] = pictures or to_pil(images[i * n : (i + 1) * n])
                    if on_evaluation:
                        on_evaluation(evaluation, result)
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt  # handled as Ctrl-C is: every candidate scored so far is kept
                t0 = time.perf_counter()
        except KeyboardInterrupt:
            raise BatchInterrupted(values) from None
        return values

    def admissible(candidate) -> bool:
        text, _ = task.render(space, candidate)
        if constraint.accepts(text):
            return True
        result.rejections.append(Rejection(list(candidate), text, constraint.similarity(text)))
        return False

    original = tuple([0] * len(sizes))
    with torch.inference_mode():
        outcome = run_search(optimizer, original, objective, budget, admissible if constraint else None)
    result.stop_reason = outcome.stop_reason
    if result.original is None:
        raise KeyboardInterrupt  # interrupted before even the original prompt was scored: nothing to save

    # 5. judge the images of the original and of the best candidate
    verdicts = {role: judge_images(judge, prompt, images) for role, images in result.images.items()}
    result.judge = verdicts if any(v is not None for v in verdicts.values()) else None
    elapsed = time.perf_counter() - started
    result.timings = {
        "total_seconds": elapsed,
        "gpo_seconds": sum(gpo_trace.seconds) if gpo_trace else 0.0,
        "search_seconds": sum(e.seconds for e in result.history),
        "seconds_per_evaluation": sum(e.seconds for e in result.history) / len(result.history),
        "cpu_threads": torch.get_num_threads(),
    }
    return result


def generation_settings(backend: Backend, config: RunConfig):
    """The config's generation settings, with the default batch size for this device and image size."""
    pixels = (config.height or backend.native_size) * (config.width or backend.native_size)
    return config.generation(default_batch_size(backend.device, len(config.seeds), pixels))


def default_batch_size(device, n_seeds: int, pixels: int = 512 * 512) -> int:
    """Images per pipeline call: one candidate's seeds on the CPU (where batching gains little and
    keeps each candidate's images bit-identical whatever else is scored); on a GPU, whole candidates
    up to 16 images, fewer above 512x512 (the same pixel count: 4 at SDXL's 1024x1024, whose
    float32 VAE decode would not fit 16)."""
    if torch.device(device).type == "cpu":
        return n_seeds
    images = max(1, min(16, 16 * 512 * 512 // pixels))
    return max(n_seeds, images // n_seeds * n_seeds)


def _resolve_space(space, prompt: str, config: RunConfig, backend: Backend, llm) -> SearchSpace:
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
        prompt, config.task_spec, source=config.space_source, per_word=config.per_word, llm=llm,
        tokenizer=backend.tokenizer, text_encoder=backend.text_encoders[0], negative_library=backend.negative_library,
    )
