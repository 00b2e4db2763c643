"""`optimize()`: the whole improve/attack job for a user who already holds a pipeline and a scorer.

Steps: check the inputs, get the search space, score the original prompt, let
the optimiser search within the budget, then judge and keep the images of the
original and the best candidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from dpodiff.backends.stable_diffusion import GenerationSettings, Request, generate, native_size
from dpodiff.errors import UsageError
from dpodiff.inputs import check_budget, check_prompt, parse_seeds
from dpodiff.objectives.clip_loss import ClipScorer, spherical_distance
from dpodiff.objectives.judge import Judge, find_judge, judge_images
from dpodiff.objectives.similarity import DEFAULT_MIN_SIMILARITY, DEFAULT_SENTENCE_MODEL, SimilarityConstraint
from dpodiff.gradient_search import run_gpo
from dpodiff.optimizers import WHITE_BOX, GPOSettings, make_optimizer
from dpodiff.results import Evaluation, OptimizationResult, Rejection
from dpodiff.search import run_search
from dpodiff.spaces import SearchSpace
from dpodiff.tasks import make_task

OnEvaluation = Callable[[Evaluation, OptimizationResult], None]


def optimize(
    prompt: str,
    *,
    pipeline,
    scorer: ClipScorer | str,
    task: str = "improve",
    space: SearchSpace | str | Path | None = None,
    algorithm: str = "epo",
    budget: int = 40,
    seeds: list[int] | int | str = (0,),
    steps: int = 50,
    guidance: float = 7.5,
    height: int | None = None,
    width: int | None = None,
    positive: bool = False,
    space_source: str = "auto",
    per_word: int = 5,
    llm=None,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    similarity_model: str = DEFAULT_SENTENCE_MODEL,
    search_seed: int = 0,
    batch_size: int | None = None,
    judge: Judge | None = None,
    model_name: str | None = None,
    on_evaluation: OnEvaluation | None = None,
    gpo_settings: GPOSettings | None = None,
    on_gpo_iteration: Callable[[int, float], None] | None = None,
) -> OptimizationResult:
    """Search a better negative prompt (task="improve") or a meaning-preserving attack (task="attack").

    `space` is a SearchSpace, a space file, or None to build one with `space_source` (see dpodiff.spaces.build).
    Returns the result with every evaluation, the best candidates and the images of the original and
    the best candidate for each seed. Ctrl-C stops the search and returns what was found so far.
    """
    started = time.perf_counter()
    # 1. check inputs
    the_task = make_task(task, positive)
    prompt = check_prompt(prompt, pipeline.tokenizer)
    seeds = parse_seeds(list(seeds) if isinstance(seeds, tuple) else seeds)
    budget = check_budget(budget)
    if isinstance(scorer, (str, Path)):
        scorer = ClipScorer.from_pretrained(str(scorer), pipeline.device)
    check_prompt(prompt, scorer.tokenizer, "scorer's text encoder")
    settings = GenerationSettings(steps, guidance, height, width, batch_size or default_batch_size(pipeline.device, len(seeds)))
    if steps < 1 or (batch_size is not None and batch_size < 1):
        raise UsageError("--steps and --batch-size must be at least 1.")
    model_name = model_name or str(getattr(pipeline, "name_or_path", "") or "")
    if judge is None and model_name and Path(model_name).is_dir():
        judge = find_judge(model_name)

    # 2. the search space
    space = _resolve_space(space, prompt, the_task.name, positive, pipeline, space_source, per_word, llm)
    sizes = space.sizes(the_task.search_positive, the_task.search_negative)
    if not sizes or space.size(the_task.search_positive, the_task.search_negative) < 2:
        part = "synonym spans (positive part)" if the_task.search_positive and not the_task.search_negative else "negative slots"
        raise UsageError(f"The search space for {prompt!r} has no {part} with a choice to make, so there is nothing to search. Give a --space with some.")
    constraint = SimilarityConstraint(prompt, min_similarity, similarity_model) if the_task.constrained else None

    # 3. white-box optimisers first learn a distribution over candidates with the shortcut gradient
    logits, gpo_trace = None, None
    if algorithm in WHITE_BOX:
        with torch.enable_grad():
            logits, gpo_trace = run_gpo(pipeline, scorer, space, the_task, seeds, steps, guidance, gpo_settings or GPOSettings(),
                                        search_seed, height, width, on_gpo_iteration)

    # 4. score the original, then search
    optimizer = make_optimizer(algorithm, sizes, seed=search_seed, logits=logits)
    text_embedding = scorer.embed_text([prompt])
    result = OptimizationResult(
        task=the_task.name,
        prompt=prompt,
        model=model_name,
        scorer=scorer.name,
        algorithm=algorithm,
        algorithm_settings={"search_seed": search_seed, **optimizer.settings()},
        generation={"steps": steps, "guidance": guidance, "height": height or native_size(pipeline), "width": width or native_size(pipeline), "batch_size": batch_size, "dtype": str(pipeline.unet.dtype).removeprefix("torch.")},
        seeds=seeds,
        budget=budget,
        original=None,  # type: ignore[arg-type]  # set by the first evaluation
        history=[],
        constraint={"model": similarity_model, "min_similarity": min_similarity} if constraint else None,
        space=space.to_dict(),
        gpo=asdict(gpo_trace) if gpo_trace else None,
    )

    def render(candidate):
        return space.render(candidate, the_task.search_positive, the_task.search_negative)

    def objective(candidates) -> list[float]:
        """Score candidates: all their images (candidates x seeds) generated in batches of settings.batch_size."""
        t0 = time.perf_counter()
        prompts = [render(c) for c in candidates]
        images = generate(pipeline, [Request(text, negative, s) for text, negative in prompts for s in seeds], settings)
        all_losses = spherical_distance(scorer.embed_images(images), text_embedding).tolist()
        seconds = (time.perf_counter() - t0) / len(candidates)
        values = []
        for i, (candidate, (text, negative)) in enumerate(zip(candidates, prompts)):
            losses = all_losses[i * len(seeds) : (i + 1) * len(seeds)]
            own_images = images[i * len(seeds) : (i + 1) * len(seeds)]
            evaluation = Evaluation(
                index=len(result.history), candidate=list(candidate), prompt=text, negative_prompt=negative,
                loss=sum(losses) / len(losses), losses=losses, seconds=seconds,
                similarity=constraint.similarity(text) if constraint else None,
            )
            result.history.append(evaluation)
            if result.original is None:
                result.original = evaluation
                result.images["original"] = own_images
            if result.best is evaluation:
                result.images["best"] = own_images
            if on_evaluation:
                on_evaluation(evaluation, result)
            values.append(the_task.sign * evaluation.loss)
        return values

    def admissible(candidate) -> bool:
        text, _ = render(candidate)
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
    }
    return result


def default_batch_size(device, n_seeds: int) -> int:
    """Images per pipeline call: one candidate's seeds on the CPU (where batching gains little and
    keeps each candidate's images bit-identical whatever else is scored); whole candidates up to
    16 images on a GPU."""
    if torch.device(device).type == "cpu":
        return n_seeds
    return max(n_seeds, 16 // n_seeds * n_seeds)


def _resolve_space(space, prompt: str, task: str, positive: bool, pipeline, source: str, per_word: int, llm) -> SearchSpace:
    """The space given, loaded from a file, or built for the prompt (with the pipeline's own text encoder)."""
    from dpodiff.spaces import load_space
    from dpodiff.spaces.build import build_task_space

    if isinstance(space, SearchSpace):
        if " ".join(space.prompt.split()) != " ".join(prompt.split()):
            raise UsageError(f"The search space was built for {space.prompt!r}, not {prompt!r}.")
        return space
    if space is not None:
        return load_space(space, prompt)
    return build_task_space(
        prompt, task, with_positive=positive, source=source, per_word=per_word, llm=llm,
        tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder,
    )
