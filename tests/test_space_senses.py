"""Sense selection and the checks every choice passes: the examples the labelled set was built around."""

from dpodiff.spaces import checks, senses, wordnet
from dpodiff.spaces.build import build_space
from dpodiff.spaces.words import content_words


def _spans(prompt, tmp_path, **kw):
    return {s.choices[0]: s.choices[1:] for s in build_space(prompt, "synonym", cache_dir=tmp_path, **kw).positive}


def _slots(prompt, tmp_path):
    return {s.name: [c for c in s.choices if c] for s in build_space(prompt, "antonym", cache_dir=tmp_path).negative}


def _sense(prompt, text):
    word = next(w for w in content_words(prompt) if w.text == text)
    (meant,) = senses.word_senses(prompt, word)
    return meant


def test_the_prompt_chooses_the_sense():
    assert "bluish" in _sense("a blue disk on a yellow background", "blue").lemmas  # the colour, not the mood
    assert "chickenhearted" not in _sense("a blue disk on a yellow background", "yellow").lemmas
    assert "ground" in _sense("a blue disk on a yellow background", "background").lemmas  # a scene's, not one's heritage
    assert "have_on" in _sense("a green dog wearing a black hat", "wearing").lemmas
    # the word as used, not the other words of the prompt, decides: "field" beside "horse" is still land,
    # "running" is not fleeing, a park beside "football" is not a ballpark
    horse = "a white horse running through a field of flowers"
    assert "horses in a particular horse race" not in wordnet.gloss(_sense(horse, "field"))
    assert "scarper" not in _sense(horse, "running").lemmas
    assert "ballpark" not in _sense("children playing football in a park", "park").lemmas


def test_choices_of_other_senses_and_offensive_words_are_never_offered(tmp_path):
    spans = _spans("a blue disk on a yellow background", tmp_path)
    assert not {"gloomy", "depressed", "low", "chickenhearted", "lily-livered"} & set(spans["blue"] + spans.get("yellow", []))
    hat = _spans("a green dog wearing a black hat", tmp_path)
    assert not {"immature", "unripe", "enduring", "sinister", "negro"} & {c.lower() for cs in hat.values() for c in cs}
    train = _spans("a steam train crossing a stone bridge", tmp_path)
    assert "traversing" in train["crossing"] and not {"getting over", "cutting through"} & set(train["crossing"])  # no phrasal verbs
    assert "lights up" not in _spans("a cyberpunk city at night with neon lights, highly detailed", tmp_path).get("lights", [])
    square = _spans("a crimson circle above a small square", tmp_path)
    assert not {"plaza", "piazza", "tract", "set", "band", "lap"} & {c for cs in square.values() for c in cs}
    slots = _slots("a big orange circle", tmp_path)
    assert slots["big"] == ["little"] and not {"gentle", "mild", "soft"} & set(slots["big"])


def test_rare_colour_words_reach_their_plain_colour(tmp_path):
    for prompt, word, colour in [("a cobalt circle", "cobalt", "blue"), ("an ebony circle", "ebony", "black"),
                                 ("a tangerine triangle", "tangerine", "orange")]:
        assert _spans(prompt, tmp_path)[word][0] == colour
        assert colour not in _slots(prompt, tmp_path)[word]
    assert "iron" not in _slots("a cobalt circle", tmp_path)["cobalt"]  # the colour, not the element


def test_the_checks():
    assert not checks.is_word("asants") and checks.is_word("fire hydrant")
    assert checks.rare("podetium") and checks.rare("fireplug") and not checks.rare("plug")
    assert checks.offensive("negro") and checks.offensive("Nigger") and checks.offensive("chink") and not checks.offensive("black")
    w = content_words("a fire hydrant on a street")[0]
    meant = senses.word_senses("a fire hydrant on a street", w)
    assert checks.keep(w, "synonym", ["fireplug", "podetium", "asants", "plug"], meant) == []  # rare, rare, no word, mostly another sense
    assert checks.keep(w, "synonym", ["fireplug"], meant, trusted={"fireplug"}) == ["fireplug"]
    disk = content_words("a blue disk")[1]
    meant = senses.word_senses("a blue disk", disk)
    assert checks.variant("disc", disk) and not checks.variant("dish", disk)
    assert checks.keep(disk, "synonym", ["disc", "saucer"], meant) == ["disc", "saucer"]  # "disc": a spelling, though SemCor tags it mostly as a record
    dog = content_words("a dog")[0]
    assert checks.keep(dog, "synonym", ["puppy", "animal", "canine"], senses.word_senses("a dog", dog), offline=False) == ["canine"]  # kinds of it, and what it is a kind of
    horse = content_words("a horse")[0]
    assert checks.relatedness("mule", horse) >= checks.OPPOSITE_FLOOR > checks.relatedness("quagga", horse)
    yellow = content_words("a yellow square")[0]
    assert checks.keep(yellow, "synonym", ["yellowish", "chickenhearted"], senses.word_senses("a yellow square", yellow)) == ["yellowish"]
