"""dpodiff: discrete prompt optimisation for text-to-image diffusion models (DPO-Diff).

The public names load on first use, so that `import dpodiff.cli` (and `dpodiff --help`) does not
import torch.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "ClipScorer": "dpodiff.objectives.clip_loss",
    "Evaluation": "dpodiff.results",
    "OptimizationResult": "dpodiff.results",
    "RunConfig": "dpodiff.config",
    "SearchSpace": "dpodiff.spaces",
    "UsageError": "dpodiff.errors",
    "load_space": "dpodiff.spaces",
    "optimize": "dpodiff.optimization",
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'dpodiff' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)


__all__ = sorted(_PUBLIC)
