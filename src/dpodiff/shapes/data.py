"""The shapes world's training data: rendered images with their captions and near-miss captions, tokenised
once with SD's CLIP tokenizer and cached in the work folder, shared by every training stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .grammar import CAPTION_MIXES, CaptionMix, near_misses, render_caption, sample_caption, sample_training_pair, synonym_picker
from .render import IMAGE_SIZE, render_array

TOKEN_LENGTH = 77  # SD's window: room for the long negative prompts that dpodiff searches
EOS = 49407  # CLIP's end-of-text token, also its padding here


def tokenizer():
    from dpodiff.tokenizers import clip_tokenizer

    return clip_tokenizer(model_max_length=TOKEN_LENGTH)


def tokenize(tok, captions: list[str]) -> torch.Tensor:
    return tok(captions, padding="max_length", max_length=tok.model_max_length,
               truncation=True, return_tensors="pt").input_ids


def images_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1] (= CLIP mean/std 0.5)."""
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@dataclass
class Dataset:
    """Rendered training pairs, tokenised once and shared by all stages.

    Rendering and tokenising on the fly cost as much as a CLIP step on two
    cores, so a fixed, seeded set is built once (and cached in the workdir).
    """

    images: np.ndarray  # (N, 32, 32, 3) uint8
    ids: np.ndarray  # (N, L) caption token ids
    neg_ids: np.ndarray  # (N, K, L) near-miss caption token ids

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator, n: int):
        idx = rng.integers(0, len(self), n)
        return (images_to_tensor(self.images[idx]), torch.from_numpy(self.ids[idx]).long(),
                torch.from_numpy(self.neg_ids[idx]).long())


DATASET_SIZE, DATASET_NEGATIVES, DATASET_SEED = 100_000, 2, 1000


def build_dataset(n: int = DATASET_SIZE, negatives: int = DATASET_NEGATIVES, seed: int = DATASET_SEED,
                  mix: CaptionMix = CAPTION_MIXES["varied"]) -> Dataset:
    """n training images (some flawed) with their captions and ``negatives`` near-miss captions each.
    ``mix``: how images are flawed and captioned (grammar.CAPTION_MIXES: SD's styles from release 3 on,
    sentences only in releases 1 and 2)."""
    tok = tokenizer()
    rng = np.random.default_rng(seed)
    pick = synonym_picker(rng)
    cache: dict[str, np.ndarray] = {}

    def ids_of(caption: str) -> np.ndarray:
        if caption not in cache:
            cache[caption] = tokenize(tok, [caption])[0].numpy().astype(np.int32)
        return cache[caption]

    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    ids = np.empty((n, TOKEN_LENGTH), np.int32)
    neg = np.empty((n, negatives, TOKEN_LENGTH), np.int32)
    for i in tqdm(range(n), desc="dataset", mininterval=20):
        shown, named, caption = sample_training_pair(rng, mix)
        images[i] = render_array(shown, rng)
        ids[i] = ids_of(caption)
        misses = near_misses(named, rng, negatives)
        while len(misses) < negatives:  # rare: fall back to a random scene
            misses.append(sample_caption(rng)[0])
        for k, m in enumerate(misses):
            neg[i, k] = ids_of(render_caption(m, pick))
    return Dataset(images, ids, neg)


def dataset_path(workdir: Path, captions: str) -> Path:
    """Where the data set of the ``captions`` mix is cached (sentences: dataset.npz, as in releases 1 and 2)."""
    return workdir / ("dataset.npz" if captions == "sentences" else f"dataset_{captions}.npz")


def load_dataset(workdir: Path, captions: str = "varied") -> Dataset:
    path = dataset_path(workdir, captions)
    if path.exists():
        z = np.load(path)
        return Dataset(z["images"], z["ids"], z["neg_ids"])
    data = build_dataset(mix=CAPTION_MIXES[captions])
    np.savez(path, images=data.images, ids=data.ids, neg_ids=data.neg_ids)
    return data


def trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the padding columns after the longest caption's end token.

    The text tower is causal and pools at the first end token, so its features
    do not change; at a 77-token window this makes CLIP training ~3x faster.
    """
    return ids[:, : int((ids != EOS).sum(1).max()) + 1]
