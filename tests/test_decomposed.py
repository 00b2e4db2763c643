"""Decomposed scoring: the noun phrases of a prompt, and a loss that is the mean of the parts' losses."""

import pytest
import torch

from dpodiff.objectives.decomposed import DecomposedScorer, noun_phrases


@pytest.mark.parametrize("prompt, phrases", [
    ("a purple triangle above a red circle", ["a purple triangle", "a red circle"]),
    ("a white square and a black circle", ["a white square", "a black circle"]),
    ("a photo of a cat wearing a red hat", ["a photo", "a cat", "a red hat"]),
    ("a red car next to a fire hydrant", ["a red car", "a fire hydrant"]),
    ("a small blue square on a yellow background", ["a small blue square", "a yellow background"]),
    ("a huge black circle", ["a huge black circle"]),
    ("two red circles", ["two red circles"]),
])
def test_noun_phrases(prompt, phrases):
    assert noun_phrases(prompt) == phrases


def test_the_loss_is_the_mean_over_the_prompt_and_its_phrases(tiny_scorer):
    decomposed = DecomposedScorer(tiny_scorer)
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prompt = "a purple triangle above a red circle"
    parts = [prompt, "a purple triangle", "a red circle"]
    assert decomposed.parts(prompt) == parts
    expected = torch.stack([tiny_scorer.loss(pixels, tiny_scorer.target(p)) for p in parts]).mean(0)
    assert torch.allclose(decomposed.loss(pixels, decomposed.target(prompt)), expected)
    # one noun phrase: the plain loss
    single = "a huge black circle"
    assert torch.allclose(decomposed.loss(pixels, decomposed.target(single)), tiny_scorer.loss(pixels, tiny_scorer.target(single)))
    assert decomposed.name == f"decomposed:{tiny_scorer.name}" and decomposed.tokenizer is tiny_scorer.tokenizer


def test_gpo_with_a_decomposed_scorer_freezes_the_wrapped_weights(tiny_pipe, tiny_scorer):
    import dpodiff
    from dpodiff.optimizers import GPOSettings
    from dpodiff.spaces import SearchSpace, Slot

    prompt = "a purple triangle above a red circle"
    space = SearchSpace(prompt, negative=[Slot("purple", ["green", "blue"])])
    result = dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=tiny_scorer, space=space, algorithm="gpo", budget=3, seeds=[0, 1],
                              steps=2, decompose=True, gpo_settings=GPOSettings(iterations=2))
    assert result.scorer == f"decomposed:{tiny_scorer.name}" and result.config["decompose"] is True
    assert not any(p.requires_grad for p in tiny_scorer.model.parameters())
