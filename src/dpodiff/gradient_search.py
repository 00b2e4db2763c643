"""GPO on a backend: the relaxed prompt, the shortcut loss, and the learned distribution.

Glue between the white-box backend (backends/) and the optimiser (optimizers/gradient.py), which
never sees a model. Each seed's initial noise is drawn once and stays on the device.
"""

from __future__ import annotations

import time

import torch

from dpodiff.backends import Backend, GenerationSettings, Request
from dpodiff.backends.shortcut import shortcut_loss
from dpodiff.objectives.scorer import Scorer
from dpodiff.optimizers.gradient import GPOSettings, GPOTrace, learn_logits
from dpodiff.spaces import SearchSpace
from dpodiff.tasks import Task


def freeze(backend: Backend, scorer: Scorer) -> None:
    """Gradients flow to the logits only: no weight may require or receive one (the scorer's modules are
    itself or its torch.nn.Module attributes: a CLIP model, a reward head, ...)."""
    for module in (*backend.modules, *_modules(scorer)):
        module.requires_grad_(False)


def _modules(scorer) -> list[torch.nn.Module]:
    """The scorer itself, or its module attributes, and those of a scorer it wraps (objectives/decomposed.py)."""
    if isinstance(scorer, torch.nn.Module):
        return [scorer]
    found = []
    for value in getattr(scorer, "__dict__", {}).values():
        if isinstance(value, torch.nn.Module):
            found.append(value)
        elif isinstance(value, Scorer):
            found += _modules(value)
    return found


def run_gpo(
    backend: Backend,
    scorer: Scorer,
    space: SearchSpace,
    task: Task,
    seeds: list[int],
    generation: GenerationSettings,
    settings: GPOSettings | None = None,
    seed: int = 0,
    on_iteration=None,
) -> tuple[list[torch.Tensor], GPOTrace]:
    """Learn logits over the searched genes (in SearchSpace.split order), each iteration on every seed
    (`settings.seeds_per_iteration` "all", the paper's) or on one seed in turn ("one")."""
    settings = settings or GPOSettings()
    steps = generation.steps
    freeze(backend, scorer)
    relaxed = backend.relaxed_encoders(space, task.search_positive, task.search_negative, generation.negative_mode)
    target = scorer.target(space.prompt)
    noise = {s: backend.initial_noise(s, generation.height, generation.width) for s in seeds}

    every_seed = settings.seeds_per_iteration == "all"

    def loss(weights: list[torch.Tensor], iteration: int, part: int) -> torch.Tensor:
        s = seeds[part] if every_seed else seeds[iteration % len(seeds)]
        value = shortcut_loss(backend, scorer, relaxed(weights), target, noise[s], s, settings.t_index(iteration, steps), generation)
        return task.sign * value

    with torch.enable_grad(), backend.checkpointed(settings.checkpoints(backend.device)):
        logits, trace = learn_logits(loss, task.sizes(space), settings, seed, on_iteration, backend.device,
                                     parts=len(seeds) if every_seed else 1)
    trace.t = [settings.t_index(i, steps) for i in range(settings.iterations)]
    trace.losses = [task.sign * v for v in trace.losses]  # report the loss itself, not the minimised sign
    trace.equivalent_images_formula = sum((t + 1) / steps for t in trace.t) * (len(seeds) if every_seed else 1)
    trace.seconds_per_image = seconds_per_image(backend, scorer, space.prompt, seeds[0], generation)
    trace.equivalent_images_measured = sum(trace.seconds) / trace.seconds_per_image
    return logits, trace


def seconds_per_image(backend: Backend, scorer: Scorer, prompt: str, seed: int, generation: GenerationSettings) -> float:
    """Seconds to generate and score one plain image at these settings (the faster of two tries, the
    first warms up): GPO's cost is measured in these units, not assumed."""
    target = scorer.target(prompt)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.inference_mode():
            scorer.loss(backend.generate([Request(prompt, "", seed)], generation), target).tolist()
        times.append(time.perf_counter() - t0)
    return min(times)
