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
        "contrib1\u3164",  # Hangul filler: a letter by category, shows as nothing
        "pho\u115fto",
        "ab\u034fcd",  # combining grapheme joiner
        "ab\ufe00cd",  # a variation selector after a Latin letter
        "a\u200cb",  # a non-joiner between Latin letters
        "x\U000e0067y",  # a tag character outside a flag
    ],
)
def test_refused(text):
    assert refused_character(text) is not None
    message = visible_text_error(text, field="caption")
    assert message.startswith("The caption contains an invisible or control character, U+")


@pytest.mark.parametrize(
    "text",
    [
        "Beach Day.JPG",
        "Ünïcödé 写真 صورة",
        "👨\u200d👩\u200d👧 at the beach",
        "👍🏽\u200d",
        "café ☕️",
        "a-b_c (1)",
        "\u0646\u0627\u0645\u0647\u200c\u0647\u0627",  # Persian: a non-joiner between joining letters
        "\u0dc1\u0dca\u200d\u0dbb\u0dd3",  # Sinhala: a joiner after the virama
        "\u0915\u094d\u200c\u0937",  # Devanagari: a non-joiner after the virama
        "1\ufe0f\u20e3 \u2764\ufe0f",  # keycap one, red heart
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # the flag of England
        "braille \u2800 blank",  # shows as a space, fine in running text (not in names: strict)
    ],
)
def test_allowed(text):
    if text.endswith("\u200d"):  # a trailing joiner joins nothing
        assert refused_character(text) == "\u200d"
    else:
        assert refused_character(text) is None


@pytest.mark.parametrize(
    "name", ["\u0dc1\u0dca\u200d\u0dbb\u0dd3", "\u0646\u0627\u0645\u0647\u200c\u0647\u0627", "a\u2800b", "\u2764\ufe0f"]
)
def test_strict_allows_no_invisible_character_at_all(name):
    assert refused_character(name, strict=True) is not None
    assert refused_character("Иван やまだ josé", strict=True) is None


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


# --- where people type them: file names, captions, abandon reasons ----------------------------------------------


@pytest.fixture
def contributor(people):
    from django.test import Client

    c = Client()
    c.force_login(people["contributor"])
    return c


@pytest.mark.parametrize(
    ("name", "code"), [("\u202egpj.exe", "U+202E"), ("a\x00.jpg", "U+0000"), ("x\u200b.jpg", "U+200B")]
)
def test_file_names_with_hidden_characters_are_refused(contributor, board, local_aws, name, code):
    from boardsite.images.models import Image

    r = contributor.post(
        "/api/uploads",
        {"board": board.pk, "filename": name, "content_type": "image/jpeg", "size": 10},
        content_type="application/json",
    )
    assert r.status_code == 400
    assert "file name" in r.json()["error"]
    assert code in r.json()["error"]
    assert not Image.objects.exists()


def test_captions_and_abandon_reasons_with_hidden_characters_are_refused(contributor, board, local_aws):
    from boardsite.images.models import Image

    body = contributor.post(
        "/api/uploads",
        {"board": board.pk, "filename": "ok.jpg", "content_type": "image/jpeg", "size": 10},
        content_type="application/json",
    ).json()
    image_id = body["image"]["id"]
    Image.objects.filter(pk=image_id).update(status="ready")
    r = contributor.post(f"/images/{image_id}/", {"caption": "sun\u202eset"})
    assert r.status_code == 400
    assert "U+202E" in r.content.decode()
    assert Image.objects.get(pk=image_id).caption == ""
    Image.objects.filter(pk=image_id).update(status="pending")
    r = contributor.post(body["image"]["abandon_url"], {"reason": "net\x00work"}, content_type="application/json")
    assert r.status_code == 400
    assert "U+0000" in r.json()["error"]
    assert Image.objects.get(pk=image_id).status == "pending"
