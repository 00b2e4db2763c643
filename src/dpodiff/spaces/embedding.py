"""Nearest neighbours in the target model's own token-embedding table.

The words the text encoder itself places near a prompt word are the ones most
likely to move its images; the paper's LLM spaces gave similar lists
("plane" -> train, car, boat). Only whole alphabetic words (tokens ending in
"</w>") are kept, so each choice is one token of the target's vocabulary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch

from dpodiff.errors import UsageError

Neighbours = Callable[[str, int], list[str]]  # (word, how many) -> nearest words, nearest first


@dataclass
class EmbeddingTable:
    vectors: torch.Tensor  # (number of whole-word tokens, dim), unit length
    words: list[str]
    tokenizer: object
    table: torch.Tensor  # the full (vocab, dim) input-embedding weight, unit rows
    weight: torch.Tensor  # the model's own weight, to notice another model or an in-place update
    version: int


def require(tokenizer, text_encoder) -> None:
    if tokenizer is None or text_encoder is None:
        raise UsageError(
            "The embedding source needs the target model's tokenizer and text encoder "
            "(pass tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, or give --model); "
            "or choose another --source (wordnet, thesaurus, auto)."
        )


def fingerprint(text_encoder) -> str:
    """A short hash of the token-embedding table, so cached spaces follow the model they were built from."""
    weight = text_encoder.get_input_embeddings().weight.detach().float().cpu()
    h = hashlib.sha256(str(tuple(weight.shape)).encode())
    h.update(weight[:: max(1, weight.shape[0] // 2048)].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_TABLES: dict[int, EmbeddingTable] = {}


def table(tokenizer, text_encoder) -> EmbeddingTable:
    """The unit-length table of whole-word tokens; kept for the last model asked about."""
    require(tokenizer, text_encoder)
    weight = text_encoder.get_input_embeddings().weight
    cached = _TABLES.get(id(tokenizer))
    if cached is not None and cached.weight is weight and cached.version == weight._version:
        return cached
    unit = torch.nn.functional.normalize(weight.detach().float().cpu(), dim=1)
    ids, words = [], []
    for token, i in tokenizer.get_vocab().items():
        if i < unit.shape[0] and token.endswith("</w>") and token[:-4].isalpha() and token[:-4].isascii() and len(token) > 5:
            ids.append(i)
            words.append(token[:-4])
    _TABLES.clear()  # one model at a time: the table is as large as the embedding matrix
    _TABLES[id(tokenizer)] = EmbeddingTable(unit[torch.tensor(ids)], words, tokenizer, unit, weight, weight._version)
    return _TABLES[id(tokenizer)]


def neighbours_of(t: EmbeddingTable, word: str, k: int) -> list[str]:
    """The k whole words nearest (cosine) to the word's embedding; a word of several tokens uses their mean."""
    ids = t.tokenizer(word.lower(), add_special_tokens=False)["input_ids"]
    if not ids:
        return []
    query = torch.nn.functional.normalize(t.table[torch.tensor(ids)].mean(0), dim=0)
    scores = t.vectors @ query
    top = torch.topk(scores, min(k + 1, len(t.words))).indices.tolist()
    return [t.words[i] for i in top if t.words[i] != word.lower()][:k]


def neighbour_function(tokenizer, text_encoder) -> Neighbours:
    t = table(tokenizer, text_encoder)
    return lambda word, k: neighbours_of(t, word, k)
