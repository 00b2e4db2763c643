"""Model families behind one protocol (see base.py), one file each, listed in dpodiff.registry.FAMILIES.
What else a new family touches: docs/extending.md."""

from __future__ import annotations

from dpodiff.backends.base import Backend, Conditioning, Encoded, GenerationSettings, Request, seed_generator
from dpodiff.errors import UsageError
from dpodiff import registry

FAMILIES: tuple[type[Backend], ...] = tuple(entry.load() for entry in registry.FAMILIES.values())


def family_for(pipeline_class: str) -> type[Backend]:
    """The backend for a diffusers pipeline class name (as model_index.json's `_class_name` says)."""
    for family in FAMILIES:
        if family.pipeline_class == pipeline_class:
            return family
    supported = ", ".join(f.pipeline_class for f in FAMILIES)
    raise UsageError(f"The model is a {pipeline_class}, which dpodiff does not support yet; supported pipelines: {supported}.")


def as_backend(model) -> Backend:
    """A Backend for a backend or a diffusers pipeline object a user already holds."""
    return model if isinstance(model, Backend) else backend_of(model)


def backend_of(pipe, family: type[Backend] | None = None) -> Backend:
    """The backend of a loaded pipeline, with what its folder (if it came from a local one) says about the model."""
    from dpodiff.model_folder import pipeline_folder, read_recommended
    from dpodiff.spaces.nplib import model_library

    folder = pipeline_folder(pipe)
    family = family or family_for(type(pipe).__name__)
    return family(pipe, read_recommended(folder), model_library(folder))


__all__ = ["FAMILIES", "Backend", "Conditioning", "Encoded", "GenerationSettings", "Request", "as_backend", "backend_of", "family_for",
           "seed_generator"]
