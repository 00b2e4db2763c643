"""The real CLIP BPE tokenizer, shipped with the package (no hub needed)."""

from pathlib import Path

from transformers import CLIPTokenizer

CLIP_TOKENIZER_DIR = Path(__file__).parent / "assets" / "clip_tokenizer"


def clip_tokenizer(model_max_length: int = 77, pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """The 49,408-token vocabulary of OpenAI CLIP and every SD 1.x text encoder (SDXL's second
    tokenizer pads with "!")."""
    return CLIPTokenizer(
        str(CLIP_TOKENIZER_DIR / "vocab.json"),
        str(CLIP_TOKENIZER_DIR / "merges.txt"),
        model_max_length=model_max_length,
        pad_token=pad_token,
    )
