"""The embedding-neighbour source on a tiny CLIP text encoder saved and loaded like a real one: random
weights, with a few words planted near each other as a trained encoder would have them, so that the
checks every choice passes (dpodiff.spaces.checks) have real words to keep or drop."""

import pytest
import torch
from transformers import CLIPTextModel

from dpodiff.errors import UsageError
from dpodiff.spaces import embedding
from dpodiff.spaces.build import build_space, build_task_space
from dpodiff.testing import build_tiny_text_encoder
from dpodiff.tokenizers import clip_tokenizer

NEAR = {"dog": ["canine", "puppy", "ounding", "sticker"], "red": ["blue", "green", "crimson"], "car": ["automobile", "auto"]}


def _tiny_encoder(path, seed, near=NEAR):
    build_tiny_text_encoder(path, seed, near)
    return CLIPTextModel.from_pretrained(path / "text_encoder")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_sd")
    return root, clip_tokenizer(), _tiny_encoder(root, seed=0)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPODIFF_CACHE", str(tmp_path / "cache"))


def test_neighbours_are_whole_single_token_words(model):
    _, tokenizer, encoder = model
    near = embedding.neighbour_function(tokenizer, encoder)("dog", 50)
    assert len(near) == 50 and "dog" not in near
    vocab = tokenizer.get_vocab()
    assert all(w.isalpha() and w + "</w>" in vocab for w in near)
    # the nearest word really is nearest by cosine in the input-embedding table
    table = torch.nn.functional.normalize(encoder.get_input_embeddings().weight.detach(), dim=1)
    q = table[vocab["dog</w>"]]
    assert (table[vocab[near[0] + "</w>"]] @ q) >= (table[vocab[near[-1] + "</w>"]] @ q)


def test_planted_words_are_nearest(model):
    _, tokenizer, encoder = model
    assert embedding.neighbour_function(tokenizer, encoder)("dog", 4) == ["canine", "puppy", "ounding", "sticker"]


def test_embedding_spaces(model):
    _, tokenizer, encoder = model
    space = build_space("Two Dogs in the snow", "synonym", source="embedding", tokenizer=tokenizer, text_encoder=encoder)
    spans = {s.original: s.choices[1:] for s in space.positive}
    # the fragment, the word of another meaning and the narrower word are dropped; the capital is copied
    assert spans["Dogs"] == ["Canines"]
    improve = build_task_space("a red car in the snow", "improve", tokenizer=tokenizer, text_encoder=encoder)
    red = next(s for s in improve.negative if s.name == "red")
    assert {"blue", "green"} <= set(red.choices) and "crimson" not in red.choices


def test_missing_encoder_is_a_usage_error():
    with pytest.raises(UsageError, match="text encoder"):
        build_space("a red car", "antonym", source="embedding")


def test_cache_key_follows_the_encoder(model, tmp_path):
    _, tokenizer, encoder = model
    other = _tiny_encoder(tmp_path / "other", seed=1, near={**NEAR, "car": ["auto"]})
    assert embedding.fingerprint(encoder) != embedding.fingerprint(other)
    assert embedding.fingerprint(encoder) == embedding.fingerprint(encoder)
    cache = tmp_path / "c"
    a = build_space("a red car", "synonym", source="embedding", tokenizer=tokenizer, text_encoder=encoder, cache_dir=cache)
    b = build_space("a red car", "synonym", source="embedding", tokenizer=tokenizer, text_encoder=other, cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == 2
    assert a.to_dict() != b.to_dict()
