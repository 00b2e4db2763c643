"""Which sense of each word the prompt means, so that a space offers only words of that sense.

Every WordNet sense of a word gives different synonyms and opposites: "blue" the colour gives "bluish",
"blue" the mood "gloomy"; "circle" the shape gives "square", "circle" the social group "clique". A
prompt means one of them. For each content word, among the senses people use (the first, and those
tagged in SemCor) in the part of speech the prompt gives it:

1. each sense scores how well the word's use in the prompt matches the sense's own uses, with the offline
   sentence model (all-MiniLM-L6-v2):
   - TOKEN_WEIGHT * the cosine of the word's contextual vector in the prompt and the lemma's in
     "lemma: definition" or in one of WordNet's examples of the sense (the best of them): the word as it
     is used, so the other words of the prompt cannot outvote it ("field" in "a horse running through a
     field" is land, not "all the horses in a race");
   - SENTENCE_WEIGHT * the cosine of the whole prompt and "lemma: definition";
   - PRIOR_WEIGHT * log(1 + how often SemCor tagged the word in that sense) (frequency decides unless
     the prompt's words clearly point to a rarer sense);
   - DRAWABLE_BONUS for a noun sense one can draw (a prompt describes a picture: "box" the container, not
     the predicament);
2. the best sense is kept, and only it: keeping a second one close in score ("circle" the ellipse beside
   "circle" the round shape) also kept "man" the serviceman beside "man" the adult male.

`benchmarks/space_quality.py --senses` measures the rule on the labelled set
(benchmarks/data/sense_labels.jsonl).
"""

from __future__ import annotations

import functools
import math
import re

from dpodiff.spaces import wordnet
from dpodiff.spaces.words import Word

TOKEN_WEIGHT = 1.0
SENTENCE_WEIGHT = 0.5
TOKEN_LAYER = 3  # of the sentence model's 6: the word's meaning in context, before the sentence's topic takes over
PRIOR_WEIGHT = 0.08
DRAWABLE_BONUS = 0.1


@functools.lru_cache(maxsize=1)
def _model():
    from dpodiff.objectives.similarity import load_sentence_model

    return load_sentence_model()


def embed(texts: list[str]):
    """Unit vectors of the texts under the sentence model (a float tensor, one row per text)."""
    return _model().encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False).float().cpu()


def definition(s: wordnet.Synset) -> str:
    return wordnet.gloss(s).split(";")[0].strip()


def gloss_line(lemma: str, s: wordnet.Synset) -> str:
    """The text each sense is compared by: "lemma: definition"."""
    return f"{lemma.replace('_', ' ')}: {definition(s)}"


@functools.lru_cache(maxsize=2_000)
def _pieces(text: str):
    """The sentence model's word-piece character offsets and hidden states (layer TOKEN_LAYER) of a text,
    once per text however many of its words are asked for."""
    import torch

    transformer = _model()[0]
    batch = transformer.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
    offsets = batch.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        hidden = transformer.auto_model(**batch, output_hidden_states=True).hidden_states[TOKEN_LAYER][0]
    return offsets, hidden


def word_vector(text: str, start: int, end: int):
    """The sentence model's contextual vector (layer TOKEN_LAYER, unit length) of the characters text[start:end]."""
    import torch

    offsets, hidden = _pieces(text)
    pieces = [i for i, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
    return torch.nn.functional.normalize(hidden[pieces].mean(0).float(), dim=0)


def uses(lemma: str, s: wordnet.Synset) -> list[tuple[str, int, int]]:
    """Where the sense uses the word: (text, start, end) of the lemma in "lemma: definition" and, for a
    single word, of its first form in each of WordNet's examples that has one ("the field was full of horses")."""
    word = lemma.replace("_", " ")
    found = [(gloss_line(lemma, s), 0, len(word))]
    if " " not in word:
        for example in re.findall(r'"([^"]+)"', wordnet.gloss(s)):
            if m := re.search(rf"\b{re.escape(word[:4])}\w*", example, re.IGNORECASE):
                found.append((example, m.start(), m.end()))
    return found


def word_senses(prompt: str, w: Word) -> list[wordnet.Synset]:
    """The sense of `w` that `prompt` means, as a list (empty for a word WordNet does not know)."""
    if not w.known:
        return []
    found = wordnet.used_synsets(w.lemma, w.pos)
    if len(found) <= 1:
        return found
    vectors = embed([prompt] + [gloss_line(w.lemma, s) for s in found])
    similarity = (vectors[1:] @ vectors[0]).tolist()
    here = word_vector(prompt, w.start, w.end)
    fit = [max(float(here @ word_vector(*use)) for use in uses(w.lemma, s)) for s in found]
    score = {s.offset: SENTENCE_WEIGHT * sim + TOKEN_WEIGHT * f + PRIOR_WEIGHT * math.log1p(wordnet.sense_count(w.lemma, s))
             + (DRAWABLE_BONUS if w.pos == "n" and s.lexfile in wordnet.VISUAL_NOUN_FILES else 0.0)
             for s, sim, f in zip(found, similarity, fit)}
    return [max(found, key=lambda s: (score[s.offset], -found.index(s)))]
