from __future__ import annotations

from typing import Any

from django import template

from boardsite.accounts.avatars import face

register = template.Library()


@register.inclusion_tag("accounts/_avatar.html")
def avatar(user: Any, size: int = 32) -> dict[str, Any]:
    """``{% avatar user 32 %}``: the person's picture, or their initials on their colour; decorative (the name is
    always written beside it), so screen readers skip it."""
    if user is None:
        return {"face": None}
    return {"face": face(user, size), "size": size}
