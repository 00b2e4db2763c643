"""Fixtures: the tiny real models of dpodiff.testing, saved once per session and loaded back; and what
keeps tests apart from the machine and from each other: no network, a space cache of their own, sys.argv
and sys.path as they were."""

import os
import socket
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub (it reads these once), and inherited by every CLI subprocess: a
# test behaves the same on a machine with a network as on one without.
os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Never the user's ~/.cache/dpodiff/spaces (a test that needs its own sets it again).
os.environ["DPODIFF_CACHE"] = tempfile.mkdtemp(prefix="dpodiff-test-cache-")

import pytest  # noqa: E402
import torch  # noqa: E402

from dpodiff.testing import build_tiny_pipeline, build_tiny_scorer  # noqa: E402

# Tiny tensors gain nothing from threads, and spinning threads suffer most on a busy 2-core machine.
torch.set_num_threads(1)

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


def _local_only(connect):
    def guarded(self, address):
        if isinstance(address, tuple) and address[0] not in LOCAL_HOSTS:
            raise ConnectionRefusedError(f"tests do not reach the network (a connection to {address[0]}:{address[1]})")
        return connect(self, address)

    return guarded


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Connections to other hosts fail as they would offline (dpodiff.loading then says the hub cannot be reached)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _local_only(socket.socket.connect))
        mp.setattr(socket.socket, "connect_ex", _local_only(socket.socket.connect_ex))
        yield


@pytest.fixture(autouse=True)
def argv_and_path_restored():
    argv, path = sys.argv[:], sys.path[:]
    yield
    sys.argv[:], sys.path[:] = argv, path


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
