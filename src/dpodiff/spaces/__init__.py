"""Search spaces: the SearchSpace type and the sources that build one for a prompt."""

from dpodiff.spaces.space import Candidate, SearchSpace, Slot, Span, find_word, load_space

__all__ = ["Candidate", "SearchSpace", "Slot", "Span", "find_word", "load_space"]
