"""One description of a run: `RunConfig`, built once by the CLI, bench (and the UI), passed to `optimize()`,
saved in result.json and in bench's settings fingerprint.

Every RunConfig is checked where it is built (`__post_init__`): a bad field is a UsageError with a message that
says how to fix it, before any model is loaded; seeds and --validate given as text are parsed there, once, so
everything inward holds typed values and checks nothing again.
Steps, guidance and scheduler may be None, "the model's recommendation": `resolved()` fills them in once the
model is loaded (its dpodiff.json, see model_folder.py), and dpodiff's defaults where the model recommends nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from dpodiff.defaults import (
    DEFAULT_GUIDANCE, MAX_GUIDANCE, DEFAULT_MIN_SIMILARITY, DEFAULT_SENTENCE_MODEL, DEFAULT_STEPS, DEFAULT_VALIDATE, MAX_IMAGES, MAX_STEPS,
    PAPER_GPO_SAMPLES, PROTOCOLS, SAMPLINGS, SPACE_KINDS, check_negative_mode, check_scheduler_name,
)
from dpodiff.errors import UsageError
from dpodiff.inputs import check_budget, parse_seeds
from dpodiff.model_folder import Recommended
from dpodiff.registry import OPTIMIZERS, SPACE_SOURCES
from dpodiff.tasks import Task, make_task


@dataclass(frozen=True)
class RunConfig:
    task: str = "improve"
    algorithm: str = "epo"
    budget: int = 40  # candidates scored, the original included
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None  # None: the model's recommendation, else DEFAULT_STEPS (see resolved())
    guidance: float | None = None  # None: the model's recommendation, else DEFAULT_GUIDANCE (Flux: the embedded guidance)
    true_cfg: float | None = None  # guidance-distilled families (Flux): true CFG's scale; None: the family's default
    height: int | None = None  # None: the model's native size
    width: int | None = None
    scheduler: str | None = None  # None: the model's recommendation, else the model's own scheduler
    batch_size: int | None = None  # images per pipeline call; None: whole candidates up to 16 at 512x512 (backends/memory.py)
    max_memory: float | None = None  # GiB of GPU memory the run may hold (weights included); None: what is free
    positive: bool = False  # improve: also substitute synonyms in the prompt
    space_source: str = "auto"
    per_word: int = 5
    space_kind: str = "both"  # improve's negative slots: the words' opposites ("antonym"), the library ("library"), or both
    min_similarity: float = DEFAULT_MIN_SIMILARITY  # attack's constraint
    similarity_model: str = DEFAULT_SENTENCE_MODEL
    search_seed: int = 0
    sampling: str = "sparse"  # how random search and EPO draw fresh candidates: sparse, or the paper's uniform
    charge_gpo: bool = False  # gpo/hybrid: GPO's measured cost, in candidates, comes out of the budget (equal-cost comparisons)
    validate: tuple[int, ...] | None = DEFAULT_VALIDATE  # (K, V) or (K, V1, V2, ...): selection.py; None: arg-min
    select_scorer: str | None = None  # a --scorer spec that re-ranks the validated shortlist with the search's scorer
    decompose: bool = False  # the loss averaged over the whole prompt and each of its noun phrases (objectives/decomposed.py)
    negative_mode: str = "cfg"  # how the negative prompt steers sampling: cfg, or perp (Perp-Neg), backends/guidance.py
    protocol: str = "dpodiff"  # "paper": uniform sampling, plain arg-min, the original outside the budget, GPO's 32 samples, argmax first

    @classmethod
    def from_options(cls, **options) -> "RunConfig":
        """A config from keyword options (optimize()'s keywords, a script's); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})

    def __post_init__(self) -> None:
        for name, value in self._checked().items():
            object.__setattr__(self, name, value)

    def _checked(self) -> dict:
        """The parsed seeds, --validate and what --protocol and the task imply, or a UsageError naming the bad setting."""
        make_task(self.task)
        OPTIMIZERS.check(self.algorithm)
        check_budget(self.budget)
        seeds = self.seeds if isinstance(self.seeds, (str, int)) else list(self.seeds)
        if self.steps is not None and not 1 <= self.steps <= MAX_STEPS:
            raise UsageError(f"--steps {self.steps} is out of range; give 1 to {MAX_STEPS} (25-50 is usual).")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: a pipeline call makes at least 1 image.")
        if self.max_memory is not None and not 0 < self.max_memory < math.inf:  # NaN fails this too
            raise UsageError(f"--max-memory {self.max_memory:g}: give the GiB of GPU memory the run may hold, e.g. 20 on a 24 GB card.")
        if self.guidance is not None and not math.isfinite(self.guidance):
            raise UsageError(f"--guidance {self.guidance} is not a finite number; SD models use about 3 to 12.")
        if self.guidance is not None and not 0 <= self.guidance <= MAX_GUIDANCE:
            raise UsageError(f"--guidance {self.guidance:g} is outside 0 to {MAX_GUIDANCE}; SD models use about 3 to 12 "
                             "(larger values burn the images out).")
        if self.true_cfg is not None and not 1 <= self.true_cfg <= MAX_GUIDANCE:  # NaN fails this too
            raise UsageError(f"--true-cfg {self.true_cfg:g} is outside 1 to {MAX_GUIDANCE}; 1 turns true CFG off, Flux users take about 2 to 6.")
        if not -1 <= self.min_similarity <= 1:  # NaN fails this too
            raise UsageError(f"--min-similarity {self.min_similarity} is not a cosine similarity; give a number in [-1, 1] (default 0.85).")
        for option, side in (("--height", self.height), ("--width", self.width)):
            if side is not None and (side < 8 or side % 8):  # the VAE's factor for every supported family
                raise UsageError(f"{option} {side} is not a positive multiple of 8; the VAE draws in 8-pixel blocks (e.g. 512).")
        check_scheduler_name(self.scheduler)
        check_negative_mode(self.negative_mode)
        SPACE_SOURCES.check(self.space_source)
        if self.space_kind not in SPACE_KINDS:
            raise UsageError(f"--space-kind {self.space_kind!r} is not known; use one of {', '.join(SPACE_KINDS)}.")
        if self.sampling not in SAMPLINGS:
            raise UsageError(f"--sampling {self.sampling!r} is not known; use sparse (the default) or uniform (the paper's).")
        if self.protocol not in PROTOCOLS:
            raise UsageError(f"--protocol {self.protocol!r} is not known; use dpodiff (the default) or paper (the reference's choices).")
        paper = {"sampling": "uniform", "validate": None} if self.protocol == "paper" else {"validate": parse_validate(self.validate)}
        return {"seeds": tuple(parse_seeds(seeds)), "positive": self.positive and self.task_spec.search_negative, **paper}

    @property
    def search_budget(self) -> int:
        """Candidates the search scores, the original included: --protocol paper leaves the original outside the budget
        and scores GPO's 32 samples whatever the budget."""
        if self.protocol != "paper":
            return self.budget
        return 1 + (PAPER_GPO_SAMPLES if self.algorithm == "gpo" else self.budget)

    @property
    def task_spec(self) -> Task:
        return make_task(self.task, self.positive)

    def resolved(self, recommended: Recommended | None = None) -> "RunConfig":
        """This config with every generation setting left to the model (None) taken from its recommendation,
        else dpodiff's default (50 steps, guidance 7.5, the model's own scheduler)."""
        r = recommended or Recommended()
        return replace(self, steps=_first(self.steps, r.steps, DEFAULT_STEPS), guidance=_first(self.guidance, r.guidance, DEFAULT_GUIDANCE),
                       scheduler=_first(self.scheduler, r.scheduler))

    def check_guided(self, distilled: bool = False) -> None:
        """A search needs classifier-free guidance: at or below 1 diffusers turns it off (of a resolved config). A family
        with distilled guidance (Flux) guides negatives by --true-cfg instead, and any --guidance is fine there."""
        if distilled or self.true_cfg is not None:
            if self.true_cfg is not None and self.true_cfg <= 1:
                raise UsageError(f"--true-cfg {self.true_cfg:g}: at 1 true classifier-free guidance is off, so a negative prompt has no "
                                 "effect on the images; give more than 1 (about 2 to 6), or leave it out (4).")
            return
        if self.guidance is not None and self.guidance <= 1:
            raise UsageError(f"--guidance {self.guidance:g}: at 1 or below classifier-free guidance is off, so a negative prompt has "
                             "no effect on the images and GPO's gradient would follow other images than the pipeline draws; "
                             "give more than 1 (SD models: about 3 to 12).")

    def from_model(self, recommended: Recommended | None) -> dict:
        """The settings `resolved(recommended)` takes from the model: left to it here and recommended there."""
        r = recommended or Recommended()
        return {name: getattr(r, name) for name in ("steps", "guidance", "scheduler") if getattr(self, name) is None and getattr(r, name) is not None}

    def generation(self, batch_size: int | None = None):
        """Generation settings of a resolved config; `batch_size` is the default when the config names none."""
        from dpodiff.backends import GenerationSettings

        if self.steps is None or self.guidance is None:
            raise ValueError("RunConfig.generation() needs concrete steps and guidance: call resolved(backend.recommended) first")
        return GenerationSettings(self.steps, self.guidance, self.height, self.width, self.batch_size or batch_size, self.negative_mode,
                                  self.scheduler, self.true_cfg)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["validate"] = list(self.validate) if self.validate else None
        return data

    def fingerprint(self) -> dict:
        """What decides the numbers of a run, so that two bench databases with equal ones are comparable
        (of a resolved config, so that a setting the model recommended counts as what it is).

        The algorithm (a bench runs several), the batch size and the memory cap (speed, not results) are
        left out, and the constraint where the task has none.
        """
        data = self.to_dict()
        del data["algorithm"], data["batch_size"], data["max_memory"]
        if not self.task_spec.constrained:
            del data["min_similarity"], data["similarity_model"]
        for name in ("decompose", "select_scorer"):  # added later: databases made before them stay comparable
            if not data[name]:
                del data[name]
        if self.negative_mode == "cfg":
            del data["negative_mode"]
        if self.true_cfg is None:
            del data["true_cfg"]
        return data


@dataclass(frozen=True)
class ModelSpec:
    """The loading half of a run's settings: which pipeline and scorer (hub ids, folders, or None for the shapes world
    and its scorer), an optional VAE, the device, the precision and the CPU threads."""

    model: str | None = None
    scorer: str | None = None
    vae: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None

    def load(self):
        """(backend, scorer, model name). `threads` is the process's to set (dpodiff.threads.use_threads): a Ray
        worker gives its own CPUs."""
        from dpodiff.models import load_models

        return load_models(self.model, self.scorer, self.device, self.dtype, self.vae)


def generation_options(steps: int | None, guidance: float | None, true_cfg: float | None, height: int | None, width: int | None,
                       batch_size: int | None, max_memory: float | None, scheduler: str | None, negative_mode: str) -> dict:
    """The generation fields of a RunConfig, as every command takes them from its options."""
    return {"steps": steps, "guidance": guidance, "true_cfg": true_cfg, "height": height, "width": width, "batch_size": batch_size,
            "max_memory": max_memory, "scheduler": scheduler, "negative_mode": negative_mode}


def parse_validate(value: str | tuple[int, ...] | list[int] | None) -> tuple[int, ...] | None:
    """--validate "K,V" (or a tuple): K >= 1 candidates besides the original, on V >= 2 fresh seeds; "K,V1,V2,...":
    adaptive, looks after V1, V2, ... seeds (increasing), each look rendering only the candidates still
    undecided (selection.py); None: no validation."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        k, *looks = (int(p) for p in parts)
    except (TypeError, ValueError):
        looks = []
    if not looks:
        raise UsageError(f"--validate {value!r} is not K,V; give whole numbers, e.g. 4,4 (the 4 best candidates and the original on "
                         "4 new seeds) or 4,4,8 (adaptive: 4 new seeds, then 4 more for the candidates still undecided).")
    if k < 1 or looks[0] < 2 or looks[-1] > MAX_IMAGES or any(a >= b for a, b in zip(looks, looks[1:])):
        raise UsageError(f"--validate {value!r}: K must be at least 1, and the seed counts increasing from at least 2 (a paired test "
                         f"needs 2 seeds) to at most {MAX_IMAGES}; or give --no-validate for the plain arg-min.")
    return (k, *looks)


def _first(*values):
    return next((v for v in values if v is not None), None)
