"""What a run found, as data: every evaluation in order, the best candidates, images, timings.

`OptimizationResult.to_dict()` is exactly what `result.json` holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from dpodiff.files import save_all, save_image, write_json
from dpodiff.report.grid import image_grid
from dpodiff.report.metadata import ImageInfo, dpodiff_image
from dpodiff.selection import Selection
from dpodiff.tasks import make_task


@dataclass
class Evaluation:
    """One scored candidate: its prompts, the loss per seed and their mean."""

    index: int
    candidate: list[int]
    prompt: str
    negative_prompt: str
    loss: float
    losses: list[float]
    seconds: float
    similarity: float | None = None
    judged: list[bool] | None = None  # the judge's verdict on each seed's image (a model with a judge, e.g. the shapes world)
    meaning: str | None = None  # "verified": the model's reader reads the rewording as the prompt's scene; None: no reader read it


@dataclass
class Rejection:
    """A candidate turned away before any image was made: by the similarity constraint ("similarity"), or
    by the model's reader, which reads it as another scene ("meaning") or cannot read it ("unreadable")."""

    candidate: list[int]
    prompt: str
    similarity: float | None
    reason: str = "similarity"


@dataclass
class OptimizationResult:
    task: str
    prompt: str
    model: str
    scorer: str
    algorithm: str
    algorithm_settings: dict
    generation: dict
    seeds: list[int]
    budget: int
    original: Evaluation
    history: list[Evaluation]
    rejections: list[Rejection] = field(default_factory=list)
    stop_reason: str = ""
    constraint: dict | None = None
    config: dict | None = None  # the RunConfig
    space: dict | None = None
    fit: dict | None = None  # what fitting the space to the token window dropped (dpodiff.spaces.fit)
    timings: dict = field(default_factory=dict)
    gpo: dict | None = None  # GPO's trace (losses, t, learned probabilities, cost) for gpo and hybrid
    selection: Selection | None = None  # the shortlist on fresh seeds (selection.py); None: the plain arg-min (--no-validate)
    held_out: dict | None = None  # bench --eval-seeds: the original, the chosen and the shortlist judged on seeds nobody chose with
    judge: dict | None = None  # {"original": [verdict per image seed], "best": [...]} when the model has a judge
    resumed_from: int = 0  # candidates of the search answered from an earlier run's journal (--resume)
    images: dict[str, list[Image.Image]] = field(default_factory=dict, repr=False)  # "original"/"best" -> one per image seed

    @property
    def sign(self) -> int:
        return make_task(self.task).sign

    @property
    def best(self) -> Evaluation:
        """The chosen candidate: validated selection's winner, else (no validation, or during the search) the lowest loss."""
        return self.history[self.selection.winner] if self.selection else self.top(1)[0]

    @property
    def image_seeds(self) -> list[int]:
        """The seeds of the original's and the best's images: the search's, then the validation's."""
        return self.seeds + (self.selection.seeds if self.selection else [])

    def seed_losses(self, evaluation: Evaluation) -> list[float | None]:
        """The candidate's loss on each image seed (None on a validation seed it was not rendered on)."""
        if not self.selection:
            return list(evaluation.losses)
        finalist = self.selection.finalist(evaluation.index)
        validation = finalist.losses if finalist else []  # a finalist stopped early (adaptive) has fewer seeds
        return list(evaluation.losses) + validation + [None] * (len(self.selection.seeds) - len(validation))

    def top(self, n: int = 5) -> list[Evaluation]:
        """The n best evaluations (lowest loss for improve, highest for attack), ties to the earliest."""
        return sorted(self.history, key=lambda e: (self.sign * e.loss, e.index))[:n]

    @property
    def evaluations(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "prompt": self.prompt,
            "model": self.model,
            "scorer": self.scorer,
            "algorithm": self.algorithm,
            "algorithm_settings": self.algorithm_settings,
            "generation": self.generation,
            "seeds": self.seeds,
            "budget": self.budget,
            "evaluations": self.evaluations,
            "image_evaluations": self.evaluations * len(self.seeds),
            "validation_image_evaluations": self.selection.images if self.selection else 0,
            "rejected": len(self.rejections),
            "stop_reason": self.stop_reason,
            "config": self.config,
            "constraint": self.constraint,
            "original": asdict(self.original),
            "best": asdict(self.best),
            "top": [asdict(e) for e in self.top(5)],
            "improvement": self.sign * (self.original.loss - self.best.loss),  # on the search seeds
            "selection": {**asdict(self.selection), "summary": self.selection.summary()} if self.selection else None,
            "held_out": self.held_out,
            "resumed_from": self.resumed_from,
            "image_seeds": self.image_seeds,
            "judge": self.judge,
            "gpo": self.gpo,
            "history": [asdict(e) for e in self.history],
            "rejections": [asdict(r) for r in self.rejections],
            "timings": self.timings,
            "space": self.space,
            "fit": self.fit,
        }

    def image_info(self, role: str, index: int, image: Image.Image) -> ImageInfo:
        """What the PNG of seed `index` of the `role` ("original", "best") candidate says about how it was made."""
        evaluation = self.original if role == "original" else self.best if role == "best" else None
        loss = self.seed_losses(evaluation)[index] if evaluation is not None else None
        return dpodiff_image(evaluation.prompt if evaluation is not None else self.prompt,
                             evaluation.negative_prompt if evaluation is not None else "", self.image_seeds[index], image,
                             model=self.model, scorer=self.scorer, loss=loss, role=role, generation=self.generation or {},
                             config=self.config, task=self.task, algorithm=self.algorithm, original_prompt=self.prompt)

    def save(self, out_dir: str | Path) -> Path:
        """Write result.json first (the record that matters most), then the space searched (space.json),
        the original and best image of each seed (with their settings inside, dpodiff.report.metadata), and a
        grid (without: it holds several seeds); each file atomically (dpodiff.files)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        writes = [("result.json", lambda p: write_json(p, self.to_dict()))]
        if self.space is not None:
            writes.append(("space.json", lambda p: write_json(p, self.space)))
        for role, images in self.images.items():
            for i, (seed, image) in enumerate(zip(self.image_seeds, images)):
                info = self.image_info(role, i, image)
                writes.append((f"{role}_seed{seed}.png", lambda p, im=image, info=info: save_image(p, im, info)))
        if self.images.get("original") and self.images.get("best"):
            grid = image_grid(
                [self.images["original"], self.images["best"]],
                row_labels=[f"{role}  loss {_mean(self.seed_losses(e)):.3f}" for role, e in (("original", self.original), ("best", self.best))],
                col_labels=[f"seed {s}" + (" (new)" if s not in self.seeds else "") for s in self.image_seeds],
            )
            writes.append(("grid.png", lambda p: save_image(p, grid)))
        save_all(out, writes)
        return out


def _mean(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known)
