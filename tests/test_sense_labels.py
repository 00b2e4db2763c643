"""The labelled sets behind benchmarks/space_quality.py --senses: well formed, and each item names a word of its prompt."""

import json
from collections import Counter
from pathlib import Path

import pytest

from dpodiff.spaces.words import content_words

DATA = Path(__file__).resolve().parent.parent / "benchmarks" / "data"
PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", ["sense_labels.jsonl", "sense_labels_everyday.jsonl"])
def test_every_item_is_a_labelled_choice_for_a_word_of_its_prompt(name):
    rows = _rows(name)
    assert len(rows) >= 300
    assert {r["label"] for r in rows} <= {"right", "wrong", "offensive"} and {r["kind"] for r in rows} == {"synonym", "antonym"}
    keys = Counter((r["prompt"], r["word"].lower(), r["kind"], r["choice"].lower()) for r in rows)
    assert max(keys.values()) == 1  # one label per choice in context
    words = {p: {w.text.lower() for w in content_words(p)} for p in {r["prompt"] for r in rows}}
    assert all(r["word"].lower() in words[r["prompt"]] for r in rows)


def test_the_first_set_holds_an_offensive_term_and_the_everyday_set_is_held_out():
    assert {r["choice"] for r in _rows("sense_labels.jsonl") if r["label"] == "offensive"} >= {"negro"}
    everyday = {r["prompt"] for r in _rows("sense_labels_everyday.jsonl")}
    assert len(everyday) == 25
    in_files = {line.strip() for f in PROMPTS.glob("*.txt") for line in f.read_text(encoding="utf-8").splitlines()}
    assert not everyday & in_files  # kept aside: no prompt file the builders were tuned on holds them
