"""One benchmark run (a prompt with an algorithm) and the scoring of original prompts for --select.

Both backends call these: the local one in this process, the Ray one in its workers.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path

import torch

from dpodiff.bench.config import BenchConfig
from dpodiff.config import ModelSpec
from dpodiff.bench.records import RunRecord


@lru_cache(maxsize=2)
def loaded(models: ModelSpec):
    """(backend, scorer, model name), loaded once per process and reused by every run in it."""
    return models.load()


def bench_models(config: BenchConfig):
    return loaded(config.models)


def run_dir_name(prompt: str, algorithm: str) -> str:
    """runs/<prompt slug>-<hash>/<algorithm>: readable, unique, and the same whatever the prompt's line number."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "prompt"
    return f"runs/{slug}-{hashlib.sha1(prompt.encode()).hexdigest()[:8]}/{algorithm}"


def run_one(config: BenchConfig, prompt: str, algorithm: str, on_evaluation=None) -> RunRecord:
    """Optimise `prompt` with `algorithm`, save its images under the output folder, and return what to store."""
    from dpodiff.bench.held_out import judge_held_out, pass_changes
    from dpodiff.evaluator import Evaluator
    from dpodiff.objectives.judge import find_judge
    from dpodiff.optimization import generation_settings, optimize

    backend, clip, model_name = bench_models(config)
    started = time.perf_counter()
    run = replace(config.run, algorithm=algorithm).resolved(backend.recommended)
    result = optimize(prompt, pipeline=backend, scorer=clip, config=run, space=config.space, model_name=model_name, on_evaluation=on_evaluation)
    wall = time.perf_counter() - started
    if result.stop_reason == "interrupted":
        raise KeyboardInterrupt
    changes = {}
    if config.eval_seeds:
        evaluator = Evaluator(backend, clip, generation_settings(backend, run), result.prompt, find_judge(model_name))
        held_out = judge_held_out(result, evaluator, config.eval_seeds)
        result.held_out = held_out.to_dict()
        changes = pass_changes(held_out.of("original").judged, held_out.of("chosen").judged)
    relative = run_dir_name(prompt, algorithm)
    result.save(Path(config.out) / relative)
    data = result.to_dict()
    judge = result.judge or {}
    return RunRecord(
        prompt=prompt, algorithm=algorithm, baseline_loss=result.original.loss, best_loss=result.best.loss,
        best_prompt=result.best.prompt, best_negative_prompt=result.best.negative_prompt, top=data["top"],
        evaluations=result.evaluations, wall_seconds=wall, judge_before=_pass_share(judge.get("original")),
        judge_after=_pass_share(judge.get("best")), run_dir=relative, history=[asdict(e) for e in result.history], **changes,
    )


def _pass_share(verdicts: list[dict] | None) -> float | None:
    return sum(bool(v["pass"]) for v in verdicts) / len(verdicts) if verdicts else None


def score_prompts(config: BenchConfig, prompts: list[str]) -> dict[str, list[float]]:
    """Loss of each seed's image of each prompt as it is (no negative prompt): what --select compares to the threshold."""
    from dpodiff.backends import Request
    from dpodiff.optimization import generation_settings

    backend, clip, _ = bench_models(config)
    settings = generation_settings(backend, config.run.resolved(backend.recommended))  # the command resolved it already; a BenchConfig made in Python may not be
    requests = [Request(prompt, "", s) for prompt in prompts for s in config.seeds]
    with torch.inference_mode():
        images = backend.generate(requests, settings)  # every prompt's images, batch_size of them per pipeline call
        n = len(config.seeds)
        return {prompt: clip.loss(images[i * n : (i + 1) * n], clip.target(prompt)).tolist() for i, prompt in enumerate(prompts)}
