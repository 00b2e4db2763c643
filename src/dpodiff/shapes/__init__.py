"""The shapes world: a miniature Stable Diffusion trained on synthetic shapes, and its judge.

``PIPELINE_DIR`` holds a diffusers ``StableDiffusionPipeline`` folder and
``SCORER_DIR`` a separate transformers ``CLIPModel`` used to score images (as
SD 1.x is conditioned on one CLIP and evaluated with another).
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
PIPELINE_DIR = WEIGHTS_DIR / "pipeline"
SCORER_DIR = WEIGHTS_DIR / "scorer"
RELEASE, SCORER_RELEASE = "3", "2.1"  # of the shipped generator and scorer (weights/README.md)

__all__ = ["WEIGHTS_DIR", "PIPELINE_DIR", "SCORER_DIR"]
