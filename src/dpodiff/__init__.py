"""dpodiff: discrete prompt optimisation for text-to-image diffusion models (DPO-Diff)."""

__version__ = "0.1.0"

from dpodiff.errors import UsageError
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimize import optimize
from dpodiff.results import Evaluation, OptimizationResult
from dpodiff.spaces import SearchSpace, load_space

__all__ = ["ClipScorer", "Evaluation", "OptimizationResult", "SearchSpace", "UsageError", "load_space", "optimize"]
