"""Which sense of each word the prompt means, so that a space offers only words of that sense.

Every WordNet sense of a word gives different synonyms and opposites: "blue" the colour gives "bluish",
"blue" the mood "gloomy"; "circle" the shape gives "square", "circle" the social group "clique". A
prompt means one of them. For each content word, among the senses people use (the first, and those
tagged in SemCor) in the part of speech the prompt gives it:

1. each sense scores the cosine similarity, under the offline sentence model (all-MiniLM-L6-v2), of the
   prompt to "lemma: definition", plus PRIOR_WEIGHT * log(1 + how often SemCor tagged the word in that
   sense) (frequency decides unless the prompt's words clearly point to a rarer sense), plus
   DRAWABLE_BONUS for a noun sense one can draw (a prompt describes a picture: "box" the container, not
   the predicament);
2. the best sense is kept, and only it: keeping a second one close in score ("circle" the ellipse beside
   "circle" the round shape) also kept "man" the serviceman beside "man" the adult male.

`benchmarks/space_quality.py --senses` measures the rule on the labelled set
(benchmarks/data/sense_labels.jsonl).
"""

from __future__ import annotations

import functools
import math

from dpodiff.spaces import wordnet
from dpodiff.spaces.words import Word

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


def word_senses(prompt: str, w: Word) -> list[wordnet.Synset]:
    """The sense of `w` that `prompt` means, as a list (empty for a word WordNet does not know)."""
    if not w.known:
        return []
    found = wordnet.used_synsets(w.lemma, w.pos)
    if len(found) <= 1:
        return found
    vectors = embed([prompt] + [f"{w.lemma.replace('_', ' ')}: {definition(s)}" for s in found])
    similarity = (vectors[1:] @ vectors[0]).tolist()
    score = {s.offset: sim + PRIOR_WEIGHT * math.log1p(wordnet.sense_count(w.lemma, s))
             + (DRAWABLE_BONUS if w.pos == "n" and s.lexfile in wordnet.VISUAL_NOUN_FILES else 0.0)
             for s, sim in zip(found, similarity)}
    return [max(found, key=lambda s: (score[s.offset], -found.index(s)))]
