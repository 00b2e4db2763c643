import math

import numpy as np
import pytest
import torch
from PIL import Image

from dpodiff.report.images import from_pil, to_pil

from dpodiff.backends import GenerationSettings, Request
from dpodiff.backends.memory import BATCH_TOLERANCE
from dpodiff.objectives.clip_loss import spherical_distance
from dpodiff.objectives.similarity import SimilarityConstraint


def test_spherical_distance_matches_hand_computation():
    x = torch.tensor([[3.0, 4.0]])  # normalises to (0.6, 0.8)
    y = torch.tensor([[1.0, 0.0]])
    chord = math.sqrt((0.6 - 1) ** 2 + 0.8**2)  # |x^ - y^| = sqrt(0.8)
    expected = 2 * math.asin(chord / 2) ** 2
    assert spherical_distance(x, y).item() == pytest.approx(expected, rel=1e-6)
    # same direction -> 0; opposite -> 2 * (pi/2)^2
    assert spherical_distance(y, 5 * y).item() == pytest.approx(0.0, abs=1e-6)
    assert spherical_distance(y, -y).item() == pytest.approx(math.pi**2 / 2, rel=1e-6)


def test_loss_is_distance_between_clip_embeddings(tiny_scorer):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    pixels = from_pil([image])
    y = tiny_scorer.embed_text(["a red circle"])[0]
    loss = tiny_scorer.loss(pixels, y[None])[0].item()
    x = tiny_scorer.embed_pixels(pixels)[0]
    cos = float(torch.nn.functional.cosine_similarity(x, y, dim=0))
    assert loss == pytest.approx(2 * math.asin(math.sqrt(2 - 2 * cos) / 2) ** 2, rel=1e-5)
    assert to_pil(pixels)[0].tobytes() == image.tobytes()  # PIL -> tensor -> PIL is lossless


def test_loss_is_differentiable_on_the_same_path(tiny_scorer):
    pixels = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(0), requires_grad=True)
    target = tiny_scorer.embed_text(["a red circle"])
    tiny_scorer.loss(pixels, target).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_same_seed_same_image_bit_for_bit(tiny_pipe):
    settings = GenerationSettings(steps=3)
    a = tiny_pipe.generate([Request("a red circle", "blurry", 0), Request("a red circle", "blurry", 1)], settings)
    b = tiny_pipe.generate([Request("a red circle", "blurry", 0)], settings)
    assert a.shape == (2, 3, tiny_pipe.native_size, tiny_pipe.native_size) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, tiny_pipe.generate([Request("a red circle", "blurry", 0), Request("a red circle", "blurry", 1)], settings))
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)  # another batch shape: equal within float tolerance
    assert not torch.equal(a[0], a[1])  # another seed, another image


def test_batched_generation_matches_one_at_a_time(tiny_pipe):
    requests = [Request("a red circle", "", 0), Request("a blue square", "green", 3), Request("a red circle", "", 5)]
    one = tiny_pipe.generate(requests, GenerationSettings(steps=3, batch_size=1))
    batched = tiny_pipe.generate(requests, GenerationSettings(steps=3, batch_size=3))
    torch.testing.assert_close(one, batched, atol=BATCH_TOLERANCE["pixel"], rtol=0)


def test_a_text_longer_than_the_window_is_refused_not_cut(tiny_pipe):
    from dpodiff.errors import UsageError

    with pytest.raises(UsageError, match="tokens long"):
        tiny_pipe.generate([Request("a red circle", "blurry, " * 60, 0)], GenerationSettings(steps=1))


def test_similarity_constraint_keeps_synonyms_and_rejects_other_meanings():
    constraint = SimilarityConstraint("a photo of a large dog running on the beach", threshold=0.8)
    assert constraint.similarity("a photo of a large dog running on the beach") == pytest.approx(1.0, abs=1e-5)
    assert constraint.accepts("a photo of a big dog running on the beach")
    assert not constraint.accepts("a photo of a small cat sleeping on the sofa")
    assert not constraint.accepts("a bowl of soup")
