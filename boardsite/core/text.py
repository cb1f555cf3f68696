"""Text people type that other people see: the site's model-field validator over ``offload.text`` (where the rules
live, Django-free, so the upload-ticket function refuses exactly what the site refuses)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from offload.text import describe, refused_character, visible_text_error

__all__ = ["VisibleText", "describe", "refused_character", "visible_text_error"]


@deconstructible
class VisibleText:
    """A model-field validator: ``validators=[VisibleText("caption")]``.

    ``multiline=True`` allows newlines and tabs; ``strict=True`` (names that identify people) allows no invisible
    character at all, nor one that shows as blank.
    """

    def __init__(self, field: str, multiline: bool = False, strict: bool = False) -> None:
        self.field = field
        self.multiline = multiline
        self.strict = strict

    def __call__(self, value: object) -> None:
        if not isinstance(value, str):
            return
        if message := visible_text_error(value, field=self.field, multiline=self.multiline, strict=self.strict):
            raise ValidationError(message, code="invisible_character")

    def _key(self) -> tuple[str, bool, bool]:
        return (self.field, self.multiline, self.strict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VisibleText) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
