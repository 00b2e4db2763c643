"""Names and defaults the CLI needs before anything heavy is imported (torch, transformers, diffusers).

`dpodiff --help` and every argument error answer from here, in well under a second; the modules that
use these values re-export them.
"""

from __future__ import annotations

from dpodiff.errors import UsageError
from dpodiff.registry import OPTIMIZERS, SCHEDULERS, SPACE_SOURCES

DEFAULT_HUB_SCORER = "openai/clip-vit-base-patch32"  # the paper's scorer, CLIP ViT-B/32
DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MIN_SIMILARITY = 0.85  # measured on real synonym swaps: benchmarks/similarity_threshold.py, docs/method.md
ALGORITHMS = OPTIMIZERS.names
SAMPLINGS = ("sparse", "uniform")  # how random search and EPO draw fresh candidates (optimizers/base.py)
WHITE_BOX = tuple(e.name for e in OPTIMIZERS.values() if e.white_box)  # need GPO's learned logits before the discrete search
KINDS = ("synonym", "antonym")
SOURCES = SPACE_SOURCES.names
SPACE_KINDS = ("both", "antonym", "library")  # improve's negative space: opposites, the negative-prompt library, or both
MAX_STEPS = 1000  # diffusion models are trained on 1000 noise levels
DEFAULT_STEPS = 50  # generation settings when neither the user nor the model (its dpodiff.json) gives them
DEFAULT_GUIDANCE = 7.5
MAX_GUIDANCE = 50  # far above any model's useful range (SD: 3 to 12); larger values only burn the images out
PROTOCOLS = ("dpodiff", "paper")  # "paper": the DPO-Diff reference's choices where they are not bugs (docs/method.md, departures)
PAPER_GPO_SAMPLES = 32  # candidates the reference samples from GPO's distribution, the original not counted
DEFAULT_VALIDATE = (4, 4)  # the shortlist's size K and the fresh seeds V of validated selection (selection.py)
MAX_IMAGES = 10_000  # seeds a run may ask for: each is an image per candidate



def check_scheduler_name(name: str | None) -> str | None:
    if name is not None and name not in SCHEDULERS:
        raise UsageError(f"--scheduler {name!r} is not known; choose one of {', '.join(SCHEDULERS)} (or leave it out for the model's own).")
    return name


NEGATIVE_MODES = ("cfg", "perp")  # how a negative prompt steers sampling (backends/guidance.py)


def check_negative_mode(mode: str) -> str:
    if mode not in NEGATIVE_MODES:
        raise UsageError(f"--negative-mode {mode!r} is not known; use cfg (SD's negative prompt, the default) "
                         "or perp (Perp-Neg: only what the negative adds beyond the prompt is pushed away).")
    return mode
