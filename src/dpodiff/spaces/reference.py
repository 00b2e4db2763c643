"""Write a space in the DPO-Diff reference format, so spaces can be shared with the paper's code.

{prompt: {"synonym": {word: [...]}, "antonym": {word: [...]}, "keywords": [...]}};
`SearchSpace.from_dict` reads it back. Negative slots from NPLib are not
antonyms of a word and have no place in that format, so they are left out.
"""

from __future__ import annotations

from dpodiff.spaces.space import SearchSpace


def to_reference(space: SearchSpace) -> dict:
    synonym = {span.original: span.choices[1:] for span in space.positive}
    antonym = {slot.name: slot.choices[1:] for slot in space.negative if not slot.source.startswith("nplib")}
    return {space.prompt: {"synonym": synonym, "antonym": antonym, "keywords": list(space.keywords)}}
