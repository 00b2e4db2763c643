"""Fixtures: the tiny real models of dpodiff.testing, saved once per session and loaded back."""

from pathlib import Path

import pytest
import torch

from dpodiff.testing import build_tiny_pipeline, build_tiny_scorer

# Tiny tensors gain nothing from threads, and spinning threads suffer most on a busy 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_scorer_dir(tmp_path_factory) -> Path:
    return build_tiny_scorer(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir):
    from dpodiff.models import load_pipeline

    return load_pipeline(str(tiny_model_dir), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="session")
def tiny_scorer(tiny_scorer_dir):
    from dpodiff.objectives.clip_loss import ClipScorer

    return ClipScorer.from_pretrained(str(tiny_scorer_dir))


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory) -> Path:
    from dpodiff.testing import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_sd3_dir(tmp_path_factory) -> Path:
    from dpodiff.testing import build_tiny_sd3

    return build_tiny_sd3(tmp_path_factory.mktemp("tiny-sd3"))


@pytest.fixture(scope="session")
def tiny_flux_dir(tmp_path_factory) -> Path:
    from dpodiff.testing import build_tiny_flux

    return build_tiny_flux(tmp_path_factory.mktemp("tiny-flux"))
