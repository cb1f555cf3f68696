"""Text people type that other people see: refuse characters that hide or disguise what is displayed (the site and
the upload-ticket function share these rules, so both refuse the same file names).

Control characters (NUL is a 500 on PostgreSQL), bidi overrides (``‮gpj.exe`` displays as ``exe.jpg``), zero-width
and other format characters, line/paragraph separators, surrogates, non-characters and the other code points Unicode
calls default-ignorable (Hangul fillers, the combining grapheme joiner, variation selectors out of place…) are
refused with a sentence naming the field and the character. Where a script or emoji needs an invisible character it
is allowed in that place only: a zero-width joiner between emoji (a family emoji) or next to a virama (Sinhala ශ්‍රී,
Bengali র‍্যাব), a zero-width non-joiner after a virama or between two letters of a joining script (Persian), a
variation selector after a symbol or emoji (❤️), a keycap digit or an ideograph, tag characters inside a well-formed flag
(England's; not a hidden sentence after a black flag). Tabs and newlines are allowed where the text may span lines.
``strict`` (names that identify people) allows none of these exceptions, nor characters that show as blank.
"""

from __future__ import annotations

import unicodedata

ZWNJ, ZWJ = "\u200c", "\u200d"
BLACK_FLAG = "\U0001f3f4"
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_MULTILINE_ALLOWED = {"\t", "\n", "\r"}
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties.txt, unchanged since 6.1) outside the Cf category,
# which is refused anyway: they render as nothing.
_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),  # tags and variation selectors supplement
)
# Not ignorable, but they show as an empty space where a letter should be: refused in names.
_BLANK_LOOKING = {"\u2800", "\ufffc", "\u3000"}


BRAILLE_BLANK = "\u2800"


def _braille_text(text: str) -> bool:
    """Braille writing, where the blank pattern is a space between words (elsewhere it makes a blank-looking name)."""
    return any("\u2801" <= ch <= "\u28ff" for ch in text)


def _default_ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


# Scripts whose letters join (Arabic, Syriac, N'Ko, Mandaic, Mongolian, Phags-pa, Adlam, ...): a non-joiner between
# two of their letters is how Persian writes the plural of "letter" (U+0647 U+200C U+0647).
_JOINING_SCRIPTS = (
    (0x0600, 0x08FF),
    (0x1800, 0x18AF),
    (0xA840, 0xA87F),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFE),
    (0x10AC0, 0x10AFF),
    (0x10B80, 0x10BAF),
    (0x10D00, 0x10D3F),
    (0x10EC0, 0x10EFF),
    (0x10F30, 0x10FDF),
    (0x1E900, 0x1E95F),
)
# Emoji that take the emoji presentation selector though they are not "other symbols": double exclamation,
# exclamation-question, information, wavy dash, part alternation mark.
_EMOJI_OUTSIDE_SO = set("\u203c\u2049\u2139\u3030\u303d")
_TAG_SPEC = {*range(0xE0030, 0xE003A), *range(0xE0061, 0xE007B)}  # tag digits and small letters
CANCEL_TAG = "\U000e007f"
_FLAG_SPEC_MAX = 7  # "gbsct": a region and a subdivision, as Unicode's emoji tag sequences spell them


def _is_emoji_part(ch: str) -> bool:
    # So: pictographs (👨), skin-tone modifiers (🏽), U+FE0F: the emoji presentation selector after a pictograph.
    return unicodedata.category(ch) == "So" or 0x1F3FB <= ord(ch) <= 0x1F3FF or ch == "\ufe0f"


def _is_virama(ch: str) -> bool:
    return bool(ch) and unicodedata.combining(ch) == 9


def _is_cjk_ideograph(ch: str) -> bool:
    return "CJK" in unicodedata.name(ch, "") and "IDEOGRAPH" in unicodedata.name(ch, "")


def _in_joining_script(ch: str, categories: str = "L") -> bool:
    code = ord(ch)
    return unicodedata.category(ch)[0] in categories and any(low <= code <= high for low, high in _JOINING_SCRIPTS)


def _is_tag(ch: str) -> bool:
    return 0xE0020 <= ord(ch) <= 0xE007F


def _in_flag(text: str, i: int) -> bool:
    """Whether the tag character at ``i`` belongs to a flag: 🏴, 2 to 7 tag letters or digits, the cancel tag.

    Anything looser lets a name carry a whole hidden sentence in tag characters after a black flag.
    """
    start = i
    while start > 0 and _is_tag(text[start - 1]):
        start -= 1
        if i - start > _FLAG_SPEC_MAX:
            return False
    if start == 0 or text[start - 1] != BLACK_FLAG:
        return False
    end = start
    while end < len(text) and end - start <= _FLAG_SPEC_MAX and ord(text[end]) in _TAG_SPEC:
        end += 1
    return 2 <= end - start <= _FLAG_SPEC_MAX and end < len(text) and text[end] == CANCEL_TAG and i <= end


def _needed_here(text: str, i: int) -> bool:
    """Whether the invisible character at ``i`` is how a script or an emoji sequence is written there."""
    ch = text[i]
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if not before:
        return False
    code = ord(ch)
    if ch == ZWJ:
        # 👨‍👩‍👧; after a virama: a half form (ශ්‍රී) or, at a word's end, Malayalam's old-style chillu (അവന്‍);
        # before a virama: eyelash ra, ya-phala (র‍্যাব); after an Arabic-script letter: its joining form
        return (
            (_is_emoji_part(before) and bool(after) and _is_emoji_part(after))
            or _is_virama(before)
            or (bool(after) and _is_virama(after) and not before.isascii() and unicodedata.category(before)[0] == "L")
            or (_in_joining_script(before) and (not after or not after.isalnum() or _in_joining_script(after, "LM")))
        )
    if ch == ZWNJ:  # no conjunct after a virama (क्‌ष), at a word's end too; no joining between two joining letters
        return _is_virama(before) or (bool(after) and _in_joining_script(before, "LM") and _in_joining_script(after))
    if 0xFE00 <= code <= 0xFE0F:  # after a symbol or emoji (❤️), a keycap digit (1️⃣) or an ideograph
        category = unicodedata.category(before)
        return (
            category == "So"
            or (category == "Sm" and not before.isascii())
            or before in _EMOJI_OUTSIDE_SO
            or before in "0123456789#*"
            or _is_cjk_ideograph(before)
        )
    if 0xE0100 <= code <= 0xE01EF:  # an ideographic variation sequence: one glyph of a name's kanji (葛󠄀)
        return _is_cjk_ideograph(before)
    if _is_tag(ch):
        return _in_flag(text, i)
    if 0x180B <= code <= 0x180F:  # Mongolian variation selectors and vowel separator, after a Mongolian letter
        return 0x1800 <= ord(before) <= 0x18AF and unicodedata.category(before).startswith("L")
    return False


def refused_character(text: str, *, multiline: bool = False, strict: bool = False) -> str | None:
    """The first character of ``text`` that is not allowed, or None."""
    for i, ch in enumerate(text):
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        code = ord(ch)
        hidden = (
            unicodedata.category(ch) in _REFUSED_CATEGORIES
            or _default_ignorable(code)
            or (code & 0xFFFE) == 0xFFFE
            or 0xFDD0 <= code <= 0xFDEF
        )
        if hidden and not strict and _needed_here(text, i):
            continue
        if hidden or (strict and ch in _BLANK_LOOKING) or (ch == BRAILLE_BLANK and not _braille_text(text)):
            return ch
    return None


def describe(ch: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: how a refused character is named in a message."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def visible_text_error(text: str, *, field: str, multiline: bool = False, strict: bool = False) -> str | None:
    """A sentence saying why ``text`` is refused, or None when it is fine."""
    ch = refused_character(text, multiline=multiline, strict=strict)
    if ch is None:
        return None
    return (
        f"The {field} contains an invisible or control character, {describe(ch)}, "
        "which could hide or disguise what people see; remove it and try again."
    )
