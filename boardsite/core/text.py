"""Text people type that other people see: refuse characters that hide or disguise what is displayed.

Control characters (NUL is a 500 on PostgreSQL), bidi overrides (``‮gpj.exe`` displays as ``exe.jpg``), zero-width
and other format characters, line/paragraph separators, surrogates and non-characters are refused with a sentence
naming the field and the character. Tabs and newlines are allowed where the text may span lines; a zero-width joiner
is allowed between emoji (👨‍👩‍👧), where it is how the sequence is written.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

ZWJ = "\u200d"
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_MULTILINE_ALLOWED = {"\t", "\n", "\r"}


def _is_emoji_part(ch: str) -> bool:
    # So: pictographs (👨), Sk: skin-tone modifiers, Mn: variation selector-16 (U+FE0F) after a pictograph.
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


def refused_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character of ``text`` that is not allowed, or None."""
    for i, ch in enumerate(text):
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        if ch == ZWJ and 0 < i < len(text) - 1 and _is_emoji_part(text[i - 1]) and _is_emoji_part(text[i + 1]):
            continue
        code = ord(ch)
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or (code & 0xFFFE) == 0xFFFE or 0xFDD0 <= code <= 0xFDEF:
            return ch
    return None


def describe(ch: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: how a refused character is named in a message."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def visible_text_error(text: str, *, field: str, multiline: bool = False) -> str | None:
    """A sentence saying why ``text`` is refused, or None when it is fine."""
    ch = refused_character(text, multiline=multiline)
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
