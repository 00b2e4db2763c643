"""Decomposed scoring (OPT2I's decomposed CLIP score): the loss against the whole prompt averaged with the
losses against each of its noun phrases.

CLIP reads a caption as a bag of words, so "a purple triangle above a red circle" scores an image of a red
triangle and a purple circle almost as well as the right one. Scoring each noun phrase on its own ("a
purple triangle", "a red circle") asks that each object be drawn with its own attributes. A prompt with
one noun phrase is scored as it is.
"""

from __future__ import annotations

import torch

from dpodiff.objectives.scorer import Scorer
from dpodiff.spaces.words import content_words, tokens

DETERMINERS = frozenset("a an the one two three some this that these those his her their its my".split())


def noun_phrases(prompt: str) -> list[str]:
    """The prompt's noun phrases: runs of adjectives and nouns that end in a noun, with the determiner before them."""
    words = content_words(prompt)
    phrases: list[tuple[int, int]] = []
    run: list = []
    for word in words + [None]:
        adjacent = word is not None and run and not prompt[run[-1].end : word.start].strip()
        if word is not None and word.pos in ("a", "n") and (not run or adjacent):
            run.append(word)
            continue
        while run and run[-1].pos != "n":  # a phrase ends in its noun
            run.pop()
        if run:
            phrases.append((run[0].start, run[-1].end))
        run = [word] if word is not None and word.pos in ("a", "n") else []
    out = []
    for start, end in phrases:
        before = [t for t in tokens(prompt[:start]) if t.is_word]
        if before and before[-1].text.lower() in DETERMINERS and not prompt[before[-1].end : start].strip():
            start = before[-1].start
        out.append(prompt[start:end])
    return out


class DecomposedScorer:
    """A scorer whose target is the prompt and its noun phrases, and whose loss is the mean over them."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer
        self.name = f"decomposed:{scorer.name}"

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    @property
    def tokenizer(self):
        return self.scorer.tokenizer

    @property
    def max_tokens(self) -> int:
        return self.scorer.max_tokens

    def parts(self, prompt: str) -> list[str]:
        phrases = noun_phrases(prompt)
        return [prompt] + (phrases if len(phrases) > 1 else [])

    def target(self, prompt: str) -> list:
        return [self.scorer.target(part) for part in self.parts(prompt)]

    def loss(self, pixels: torch.Tensor, target: list) -> torch.Tensor:
        return torch.stack([self.scorer.loss(pixels, t) for t in target]).mean(0)
