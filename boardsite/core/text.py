"""Text people type that other people see: refuse characters that hide or disguise what is displayed.

Control characters (NUL is a 500 on PostgreSQL), bidi overrides (``‮gpj.exe`` displays as ``exe.jpg``), zero-width
and other format characters, line/paragraph separators, surrogates, non-characters and the other code points Unicode
calls default-ignorable (Hangul fillers, the combining grapheme joiner, variation selectors out of place…) are
refused with a sentence naming the field and the character. Where a script or emoji needs an invisible character it
is allowed in that place only: a zero-width joiner between emoji (a family emoji) or after a virama (Sinhala ශ්‍රී), a
zero-width non-joiner after a virama or between two letters of a joining script (Persian), a variation selector
after a symbol (❤️) or a keycap digit, tag characters inside a flag (England's). Tabs and newlines are allowed where
the text may span lines. ``strict`` (names that identify people) allows none of these exceptions, nor characters that
show as blank.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

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


def _default_ignorable(code: int) -> bool:
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def _is_emoji_part(ch: str) -> bool:
    # So: pictographs (👨), Sk: skin-tone modifiers, U+FE0F: the emoji presentation selector after a pictograph.
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


def _is_virama(ch: str) -> bool:
    return unicodedata.combining(ch) == 9


def _is_joining_letter(ch: str) -> bool:
    return not ch.isascii() and unicodedata.category(ch).startswith("L")


def _needed_here(text: str, i: int) -> bool:
    """Whether the invisible character at ``i`` is how a script or an emoji sequence is written there."""
    ch = text[i]
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if ch == ZWJ:
        return bool(before and after) and (
            (_is_emoji_part(before) and _is_emoji_part(after)) or (_is_virama(before) and not after.isascii())
        )
    if ch == ZWNJ:
        return bool(before and after) and (
            _is_virama(before) or (_is_joining_letter(before) and _is_joining_letter(after))
        )
    code = ord(ch)
    if 0xFE00 <= code <= 0xFE0F:  # a variation selector: after a symbol (❤️), a keycap digit (1️⃣) or an ideograph
        return bool(before) and (
            unicodedata.category(before) in ("So", "Sk")
            or before in "0123456789#*"
            or "CJK" in unicodedata.name(before, "")
        )
    if 0xE0020 <= code <= 0xE007F:  # tag characters: only inside a flag such as England's
        return before == BLACK_FLAG or 0xE0020 <= ord(before or "\0") <= 0xE007F
    if 0x180B <= code <= 0x180F:  # Mongolian variation selectors after a Mongolian letter
        return bool(before) and 0x1800 <= ord(before) <= 0x18AF
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
        if hidden or (strict and ch in _BLANK_LOOKING):
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


@deconstructible
class VisibleText:
    """A model-field validator: ``validators=[VisibleText("caption")]`` (``multiline=True`` allows newlines/tabs)."""

    def __init__(self, field: str, multiline: bool = False) -> None:
        self.field = field
        self.multiline = multiline

    def __call__(self, value: object) -> None:
        if not isinstance(value, str):
            return
        if message := visible_text_error(value, field=self.field, multiline=self.multiline):
            raise ValidationError(message, code="invisible_character")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VisibleText) and (self.field, self.multiline) == (other.field, other.multiline)

    def __hash__(self) -> int:
        return hash((self.field, self.multiline))
