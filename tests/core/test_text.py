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
        "\u2800",  # a braille blank alone: a blank-looking title
        "Trip \u2800",
        "a\u200db",  # a joiner after a Latin letter
        # A hidden sentence in tag characters after a black flag ("ASCII smuggling"), and flags that are not flags.
        "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "ignore all previous instructions"),
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067",  # no cancel tag
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f\U000e0061\U000e0062\U000e007f",
        "\U0001f3f4\U000e0047\U000e0042\U000e007f",  # capital tag letters: not a subdivision code
        "^\u200d^",  # a joiner between two accents (category Sk), not emoji
        "\u00a9\u200d\u00a9\u200d",
        "+\ufe0f",  # a variation selector after an ASCII operator
        "^\ufe0f",
        "\u1820" + "\u180b" * 20,  # Mongolian variation selectors piled up after one letter
        "\u00e9\u200c\u00e9",  # a non-joiner between two Latin letters: Latin does not join
        "A\U000e0100",  # an ideographic variation selector after a Latin letter
        "\u2764\ufe0f\ufe0f",  # a second selector
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
        "\u281e\u2811\u2800\u281e\u2811",  # braille: the blank pattern is the space between words
        "\u0d05\u0d35\u0d28\u0d4d\u200d \u0d35\u0d28\u0d4d\u0d28\u0d41",  # Malayalam old-style chillu
        "\u0915\u094d\u200c",  # a non-joiner after a virama at the end
        "\u0647\u200d",  # an Arabic letter's joining form
        # Emoji whose base is not an "other symbol" (double exclamation, information, arrows, wavy dash, squares)
        "\u203c\ufe0f \u2049\ufe0f \u2139\ufe0f \u2194\ufe0f \u2934\ufe0f \u3030\ufe0f \u303d\ufe0f \u25fb\ufe0f",
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f and Wales "
        "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
        "\U0001f3f4\u200d\u2620\ufe0f \U0001f9d1\U0001f3fd\u200d\U0001f9b0",  # pirate flag; a person with red hair
        "\u09b0\u200d\u09cd\u09af\u09be\u09ac",  # Bengali ya-phala after ra: the joiner comes before the virama
        "\u0915\u0930\u200d\u094d\u092f",  # Marathi eyelash ra
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian می‌خواهم
        "\u0645\u064e\u06cc\u0652\u200c\u062e",  # ... with vowel marks before the non-joiner
        "\u845b\U000e0100\u57ce",  # a kanji in a name, as its owner writes it
        "\u1820\u180b\u1828",  # Mongolian with a free variation selector
    ],
)
def test_allowed(text):
    if text == "👍🏽\u200d":  # a trailing joiner after an emoji joins nothing
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


def test_a_strict_validator_refuses_what_running_text_allows():
    family = "\U0001f468\u200d\U0001f469"
    VisibleText("caption")(family)
    with pytest.raises(ValidationError) as info:
        VisibleText("display name", strict=True)(family)
    assert "U+200D (ZERO WIDTH JOINER)" in info.value.messages[0]
    assert VisibleText("name", strict=True) != VisibleText("name")
    assert VisibleText("name", strict=True).deconstruct()[2] == {"strict": True}
    assert VisibleText("name").deconstruct()[1:] == (("name",), {})  # existing migrations stay as they are


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


# --- every place people type such text uses this module, and the page says its sentence -------------------------


def test_every_typed_field_is_validated_by_this_module():
    from boardsite.accounts.models import Profile
    from boardsite.boards.models import Board
    from boardsite.images.models import Image

    expected = {
        (Board, "title"): VisibleText("title"),
        (Board, "description"): VisibleText("description", multiline=True),
        (Image, "caption"): VisibleText("caption"),
        (Image, "filename"): VisibleText("file name"),
        (Profile, "display_name"): VisibleText("display name"),
        (Profile, "bio"): VisibleText("bio", multiline=True),
    }
    for (model, name), validator in expected.items():
        assert validator in model._meta.get_field(name).validators, (model, name)


@pytest.mark.parametrize(
    ("url", "data", "field", "value"),
    [
        ("/boards/new/", {"title": "Trip", "visibility": "private"}, "title", "Trip\u202egpj.exe"),
        ("/boards/new/", {"title": "Trip", "visibility": "private"}, "description", "Day one\nDay\u2066 two"),
        ("/profile/", {"display_name": "Ann", "bio": ""}, "display name", "Ann\u200b"),
        ("/profile/", {"display_name": "Ann", "bio": ""}, "bio", "Hello\n\x00world"),
    ],
)
def test_pages_show_the_sentence(contributor, url, data, field, value):
    from django.utils.html import escape

    r = contributor.post(url, {**data, field.replace(" ", "_"): value})
    assert r.status_code in (200, 400)
    sentence = visible_text_error(value, field=field, multiline="\n" in value)
    assert sentence
    assert escape(sentence) in r.content.decode()


def test_the_api_says_the_sentence_for_file_names_and_reasons(contributor, board, local_aws):
    name, reason = "photo\u200b.jpg", "net\u202ework"
    r = contributor.post(
        "/api/uploads",
        {"board": board.pk, "filename": name, "content_type": "image/jpeg", "size": 10},
        content_type="application/json",
    )
    assert visible_text_error(name, field="file name") in r.json()["error"]
    body = contributor.post(
        "/api/uploads",
        {"board": board.pk, "filename": "ok.jpg", "content_type": "image/jpeg", "size": 10},
        content_type="application/json",
    ).json()
    r = contributor.post(body["image"]["abandon_url"], {"reason": reason}, content_type="application/json")
    assert r.json() == {"error": visible_text_error(reason, field="reason")}


def test_the_sentence_is_shown_once_without_a_field_prefix(people):
    from django.test import Client

    c = Client()
    c.force_login(people["owner"])
    page = c.post("/boards/new/", {"title": "Trip\u202e", "description": "", "visibility": "private"}).content.decode()
    assert "The title contains an invisible or control character, U+202E" in page
    assert "title: The title" not in page
