"""GPO: gradient prompt optimisation over a relaxed (Gumbel-softmax) distribution of candidates.

Each gene has logits over its choices; its first choice (the original word, or the empty slot)
starts at logit 1 and the others at 0. Each iteration draws Gumbel-softmax weights, asks the
white-box objective for a differentiable loss, and takes an RMSprop step with momentum on the
logits (gradients clipped by value, logits clipped to a range). What GPO learns is a
distribution; `DistributionSampler` then proposes discrete candidates from it (argmax first),
and the hybrid optimiser seeds EPO's first population with it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from dpodiff.optimizers.base import Candidate, Optimizer, Sampler


@dataclass
class GPOSettings:
    """The paper's settings; the `t` schedule is in fractions of the sampling steps (15..24 of 50)."""

    iterations: int = 20
    lr: float = 0.1
    momentum: float = 0.5
    grad_clip: float = 0.025
    logit_min: float = 0.0
    logit_max: float = 3.0
    t_start: float = 15 / 50  # first gradient step, as a fraction of the sampling steps
    t_advance: float = 1 / 50  # how far t moves ...
    t_every: int = 2  # ... every this many iterations
    temperature: float = 1.0  # of the Gumbel-softmax
    seeds_per_iteration: str = "all"  # "all": the loss averaged over every seed each iteration (the paper's); "one": one seed in turn
    checkpointing: str = "auto"  # gradient checkpointing in the UNet's and VAE's blocks: "on", "off", "auto" (on a GPU): the
    # same gradient; on a mid-size UNet 0.60x the memory a step adds for 1.15x its time (benchmarks/shortcut_gradient.py)

    def checkpoints(self, device: torch.device) -> bool:
        if self.checkpointing not in ("on", "off", "auto"):
            raise ValueError(f"GPOSettings.checkpointing {self.checkpointing!r}: use on, off or auto")
        return self.checkpointing == "on" or (self.checkpointing == "auto" and torch.device(device).type == "cuda")

    def t_index(self, iteration: int, steps: int) -> int:
        return min(steps - 1, round(steps * (self.t_start + (iteration // self.t_every) * self.t_advance)))


@dataclass
class GPOTrace:
    """What GPO did: loss and `t` per iteration, the learned probabilities, its cost in images."""

    losses: list[float] = field(default_factory=list)
    t: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)
    # cost in plain images (one candidate x one seed): the sampling steps run, counted as fractions of an
    # image (what the paper counts), and the seconds spent over the measured seconds of one plain image
    equivalent_images_formula: float = 0.0
    equivalent_images_measured: float | None = None
    seconds_per_image: float | None = None
    settings: dict = field(default_factory=dict)


def initial_logits(sizes: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """All genes' logits in one flat tensor (one optimiser state, one host copy per iteration)."""
    flat = torch.cat([torch.tensor([1.0] + [0.0] * (k - 1)) for k in sizes])
    return flat.to(device).requires_grad_()


def gumbel_weights(logits: torch.Tensor, sizes: list[int], generator: torch.Generator, temperature: float) -> list[torch.Tensor]:
    """Relaxed one-hot samples: softmax((logits + Gumbel noise) / temperature) per gene.

    The uniform noise is drawn on the CPU (the same on every device) and moved in one copy.
    """
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float32).clamp(1e-10, 1 - 1e-10).to(logits.device)
    noisy = (logits - torch.log(-torch.log(u))) / temperature
    return [torch.softmax(z, dim=0) for z in noisy.split(sizes)]


def learn_logits(
    loss: Callable[[list[torch.Tensor], int, int], torch.Tensor],
    sizes: list[int],
    settings: GPOSettings,
    seed: int = 0,
    on_iteration: Callable[[int, float], None] | None = None,
    device: torch.device | str = "cpu",
    parts: int = 1,
) -> tuple[list[torch.Tensor], GPOTrace]:
    """Minimise E[mean over parts of loss(weights, iteration, part)] over the logits; returns them (detached,
    on the CPU) and a trace.

    One Gumbel sample per iteration serves every part (e.g. every seed); each part's gradient is accumulated
    by its own backward pass, so memory does not grow with the number of parts. Everything stays on
    `device`; the loss crosses to the host once per part, for the trace.
    """
    logits = initial_logits(sizes, device)
    optimizer = torch.optim.RMSprop([logits], lr=settings.lr, momentum=settings.momentum)
    generator = torch.Generator().manual_seed(seed)
    trace = GPOTrace(settings=asdict(settings))
    for i in range(settings.iterations):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        weights = gumbel_weights(logits, sizes, generator, settings.temperature)
        value = 0.0
        for part in range(parts):
            part_loss = loss(weights, i, part) / parts
            part_loss.backward(retain_graph=part < parts - 1)  # the weights' small graph serves the next part
            value += part_loss.item()
        with torch.no_grad():
            logits.grad.clamp_(-settings.grad_clip, settings.grad_clip)
        optimizer.step()
        with torch.no_grad():
            logits.clamp_(settings.logit_min, settings.logit_max)
        trace.losses.append(value)
        trace.seconds.append(time.perf_counter() - t0)
        if on_iteration:
            on_iteration(i, trace.losses[-1])
    learned = [z.detach().cpu().double() for z in logits.split(sizes)]
    trace.probabilities = [torch.softmax(z, 0).tolist() for z in learned]
    return learned, trace


def categorical_sampler(logits: list[torch.Tensor]) -> Sampler:
    """Draw each gene from softmax(logits) independently."""
    probabilities = [torch.softmax(z, 0).tolist() for z in logits]

    def draw(rng: random.Random) -> Candidate:
        return tuple(rng.choices(range(len(p)), weights=p)[0] for p in probabilities)

    return draw


class DistributionSampler(Optimizer):
    """GPO's discrete phase: the argmax candidate first, then samples from the learned distribution."""

    name = "gpo"

    def __init__(self, sizes: list[int], logits: list[torch.Tensor], seed: int = 0, batch: int = 10):
        super().__init__(sizes, seed)
        self.argmax = tuple(int(z.argmax()) for z in logits)
        self.draw = categorical_sampler(logits)
        self.batch = batch

    @classmethod
    def build(cls, sizes: list[int], seed: int, logits, sampling: str, argmax_first: bool) -> "DistributionSampler":
        return cls(sizes, logits, seed=seed)

    def ask(self) -> list[Candidate]:
        first = [self.argmax] if self.argmax not in self.told else []
        batch = first + self.novel(lambda: self.draw(self.rng), self.batch - len(first), exclude=first)
        # a peaked distribution runs dry: fill up uniformly
        return batch + self.novel(lambda: self.uniform(self.rng), self.batch - len(batch), exclude=batch)

    def settings(self) -> dict:
        return {"batch": self.batch, "argmax": list(self.argmax)}
