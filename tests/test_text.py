"""Characters that hide or disguise displayed text are refused, with the character named; ordinary text passes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from boardsite.core.text import VisibleText, refused_character, visible_text_error


@pytest.mark.parametrize(
    "text",
    [
        "a\x00b",  # NUL: a 500 on PostgreSQL
        "\u202egpj.exe",  # right-to-left override: displays as exe.jpg
        "a\u2066b",  # left-to-right isolate
        "zero\u200bwidth",
        "word\u200djoiner",  # a joiner outside an emoji sequence
        "bom\ufeff",
        "c1\x85control",
        "esc\x1b[31m",
        "line\u2028sep",
        "non\uffffchar",
        "tab\there",  # not in single-line text
    ],
)
def test_refused(text):
    assert refused_character(text) is not None
    message = visible_text_error(text, field="caption")
    assert message.startswith("The caption contains an invisible or control character, U+")


@pytest.mark.parametrize(
    "text",
    ["Beach Day.JPG", "Ünïcödé 写真 صورة", "👨\u200d👩\u200d👧 at the beach", "👍🏽\u200d", "café ☕️", "a-b_c (1)"],
)
def test_allowed(text):
    if text.endswith("\u200d"):  # a trailing joiner joins nothing
        assert refused_character(text) == "\u200d"
    else:
        assert refused_character(text) is None


def test_multiline_allows_newlines_and_tabs_only():
    assert refused_character("one\ntwo\r\n\tthree", multiline=True) is None
    assert refused_character("one\x00two", multiline=True) == "\x00"


def test_the_validator_names_the_field_and_the_character():
    with pytest.raises(ValidationError) as info:
        VisibleText("title")("x\u202ey")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in info.value.messages[0]
    assert "title" in info.value.messages[0]
    VisibleText("bio", multiline=True)("two\nlines")
    assert VisibleText("bio", multiline=True) == VisibleText("bio", multiline=True) != VisibleText("bio")
