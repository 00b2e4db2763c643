"""How common a word is, read off the CLIP BPE vocabulary every SD 1.x text encoder uses.

BPE merges are learnt in order of pair frequency, so a whole word that is one
token with a low id is a common word; a word that is no single token is rarer
and costs the prompt more tokens. Sources use this to rank choices.
"""

from __future__ import annotations

import functools
import json

from dpodiff.tokenizers import CLIP_TOKENIZER_DIR

VOCAB_SIZE = 49408


@functools.lru_cache(maxsize=1)
def _vocab() -> dict[str, int]:
    return json.loads((CLIP_TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))


def token_id(word: str) -> int | None:
    """Id of the single CLIP token "word</w>", or None when the word takes several tokens."""
    return _vocab().get(word.lower() + "</w>")


def rank(word: str) -> int:
    """Smaller is more common: the token id of a one-token word, else past the vocabulary, more per extra word."""
    parts = word.lower().split()
    ids = [token_id(p) for p in parts]
    if len(parts) == 1 and ids[0] is not None:
        return ids[0]
    return VOCAB_SIZE + sum(i if i is not None else VOCAB_SIZE for i in ids)
