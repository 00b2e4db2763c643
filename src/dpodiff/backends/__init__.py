"""Model families behind one protocol (see base.py), one file each, listed in FAMILIES. What else a new family touches: docs/extending.md."""

from __future__ import annotations

from dpodiff.backends.base import Backend, Conditioning, Encoded, GenerationSettings, Request, seed_generator
from dpodiff.backends.flux import FluxBackend
from dpodiff.backends.sd3 import StableDiffusion3Backend
from dpodiff.backends.sdxl import StableDiffusionXLBackend
from dpodiff.backends.stable_diffusion import StableDiffusionBackend
from dpodiff.errors import UsageError

FAMILIES: tuple[type[Backend], ...] = (StableDiffusionBackend, StableDiffusionXLBackend, StableDiffusion3Backend, FluxBackend)


def family_for(pipeline_class: str) -> type[Backend]:
    """The backend for a diffusers pipeline class name (as model_index.json's `_class_name` says)."""
    for family in FAMILIES:
        if family.pipeline_class == pipeline_class:
            return family
    supported = ", ".join(f.pipeline_class for f in FAMILIES)
    raise UsageError(f"The model is a {pipeline_class}, which dpodiff does not support yet; supported pipelines: {supported}.")


def as_backend(model) -> Backend:
    """A Backend for a backend or a diffusers pipeline object a user already holds."""
    if isinstance(model, Backend):
        return model
    from dpodiff.models import backend_of

    return backend_of(model)


__all__ = ["FAMILIES", "Backend", "Conditioning", "Encoded", "GenerationSettings", "Request", "as_backend", "family_for", "seed_generator"]
