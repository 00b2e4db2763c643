"""Words: splitting, stopwords, parts of speech, inflection, capitalisation, expressions."""

from dpodiff.spaces.words import analyse, content_words, inflect, match_case, same_lemma


def _words(prompt):
    return [(w.text, w.pos, w.lemma, w.form) for w in content_words(prompt)]


def test_stopwords_and_punctuation_are_not_content_words():
    texts = [w.text for w in content_words("a cat on the mat, in 4k!")]
    assert texts == ["cat", "mat"]


def test_multi_word_expressions_are_one_word():
    words = _words("a fire hydrant next to a stop sign")
    assert [w[0] for w in words] == ["fire hydrant", "stop sign"]
    assert _words("Two fire hydrants")[0][:4] == ("fire hydrants", "n", "fire hydrant", "plural")
    assert [w[0] for w in _words("a car, oil painting")] == ["car", "oil painting"]


def test_literal_readings_are_not_joined():
    assert [w[0] for w in _words("a black cat")] == ["black", "cat"]  # not the fisher (an animal)
    assert [w[0] for w in _words("a zebra drinking water")] == ["zebra", "drinking", "water"]


def test_parts_of_speech_from_context():
    pos = {w[0]: w[1] for w in _words("a red car flies over the city")}
    assert pos == {"red": "a", "car": "n", "flies": "v", "city": "n"}
    pos = {w[0]: w[1] for w in _words("a man riding a horse, highly detailed")}
    assert pos["riding"] == "v" and pos["horse"] == "n" and pos["detailed"] == "a"
    # the head after a singular noun is a noun (not "to square", "to train"); after a plural it may be a verb
    assert {w[0]: w[1] for w in _words("a cobalt square")}["square"] == "n"
    assert {w[0]: w[1] for w in _words("a steam train crossing a stone bridge")}["train"] == "n"
    assert {w[0]: w[1] for w in _words("children play in a park")}["play"] == "v"


def test_lemma_and_form():
    assert analyse("dogs", "n") == ("dog", "plural")
    assert analyse("flies", "v") == ("fly", "3sg")
    assert analyse("children", "n") == ("child", "plural")
    assert analyse("ate", "v") == ("eat", "past")
    assert analyse("biggest", "a") == ("big", "superlative")


def test_inflection():
    assert inflect("hound", "n", "plural") == "hounds"
    assert inflect("mouse", "n", "plural") == "mice"
    assert inflect("go", "v", "3sg") == "goes"
    assert inflect("soar", "v", "3sg") == "soars"
    assert inflect("sit", "v", "ing") == "sitting"
    assert inflect("glide", "v", "ing") == "gliding"
    assert inflect("eat", "v", "participle") == "eaten"
    assert inflect("take off", "v", "3sg") == "takes off"
    assert inflect("fire hydrant", "n", "plural") == "fire hydrants"
    assert inflect("bird of prey", "n", "plural") == "birds of prey"
    assert inflect("greens", "n", "plural") == "greens"
    assert inflect("be adrift", "v", "ing") == "being adrift"


def test_case_and_lemma_identity():
    assert match_case("Dogs", "hounds") == "Hounds"
    assert match_case("DOG", "hound") == "HOUND"
    assert same_lemma("dogs", "dog") and same_lemma("ran", "run") and not same_lemma("cat", "dog")
