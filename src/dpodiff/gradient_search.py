"""GPO on a diffusers pipeline: the relaxed prompt, the shortcut loss, and the learned distribution.

Glue between the white-box backend (backends/relaxed.py, backends/shortcut.py) and the
optimiser (optimizers/gradient.py), which never sees a model.
"""

from __future__ import annotations

import torch

from dpodiff.backends.relaxed import encode_relaxed, negative_layout, positive_layout
from dpodiff.backends.shortcut import shortcut_loss
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers.gradient import GPOSettings, GPOTrace, learn_logits
from dpodiff.spaces import SearchSpace
from dpodiff.tasks import Task


def freeze(pipe, scorer: ClipScorer) -> None:
    """Gradients flow to the logits only: no weight may require or receive one."""
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, scorer.model):
        module.requires_grad_(False)


def run_gpo(
    pipe,
    scorer: ClipScorer,
    space: SearchSpace,
    task: Task,
    seeds: list[int],
    steps: int,
    guidance: float,
    settings: GPOSettings | None = None,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    on_iteration=None,
) -> tuple[list[torch.Tensor], GPOTrace]:
    """Learn logits over the searched genes (positive spans first, then negative slots)."""
    settings = settings or GPOSettings()
    freeze(pipe, scorer)
    unsearched = SearchSpace(space.prompt)
    pos_layout = positive_layout(space if task.search_positive else unsearched, pipe.tokenizer)
    neg_layout = negative_layout(space if task.search_negative else unsearched, pipe.tokenizer)
    n_pos = len(pos_layout.choices)
    target = scorer.embed_text([space.prompt])

    def loss(weights: list[torch.Tensor], iteration: int) -> torch.Tensor:
        positive = encode_relaxed(pipe.text_encoder, pos_layout, weights[:n_pos])
        negative = encode_relaxed(pipe.text_encoder, neg_layout, weights[n_pos:])
        value = shortcut_loss(pipe, scorer, negative, positive, target, seeds[iteration % len(seeds)],
                              settings.t_index(iteration, steps), steps, guidance, height, width)
        return task.sign * value

    sizes = space.sizes(task.search_positive, task.search_negative)
    with torch.enable_grad():
        logits, trace = learn_logits(loss, sizes, settings, seed, on_iteration)
    trace.t = [settings.t_index(i, steps) for i in range(settings.iterations)]
    trace.losses = [task.sign * v for v in trace.losses]  # report the loss itself, not the minimised sign
    # each iteration samples t steps and runs one more with gradient: about (t + 1) / steps of an image
    trace.equivalent_image_evaluations = sum((t + 1) / steps for t in trace.t)
    return logits, trace
