"""The labelled set behind benchmarks/space_quality.py --senses: well formed, and each item names a word of its prompt."""

import json
from collections import Counter
from pathlib import Path

from dpodiff.spaces.words import content_words

LABELS = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "sense_labels.jsonl"


def test_every_item_is_a_labelled_choice_for_a_word_of_its_prompt():
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 300
    assert {r["label"] for r in rows} <= {"right", "wrong", "offensive"} and {r["kind"] for r in rows} == {"synonym", "antonym"}
    keys = Counter((r["prompt"], r["word"].lower(), r["kind"], r["choice"].lower()) for r in rows)
    assert max(keys.values()) == 1  # one label per choice in context
    words = {p: {w.text.lower() for w in content_words(p)} for p in {r["prompt"] for r in rows}}
    assert all(r["word"].lower() in words[r["prompt"]] for r in rows)
    assert {r["choice"] for r in rows if r["label"] == "offensive"} >= {"negro"}
