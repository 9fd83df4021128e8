"""Control characters and lone surrogates never reach an engine."""

from csmstream.text.controls import has_lone_surrogate, speakable, strip_controls


def test_controls_are_removed_and_separators_become_spaces():
    assert strip_controls("a\x00b\x07c") == "abc"
    assert strip_controls("one\x0ctwo\x1fthree") == "one two three"
    assert strip_controls("tab\tand\nlines\r\n") == "tab\tand\nlines\r\n", "whitespace a text may hold stays"


def test_lone_surrogates_are_found_and_dropped_from_llm_text():
    assert has_lone_surrogate("bad \ud800 half") and not has_lone_surrogate("fine 😀")
    assert speakable("an answer\x00 with \udc00junk") == "an answer with junk"
