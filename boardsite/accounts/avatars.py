"""How a person is shown next to their name: their profile picture, or their initials on a colour of their own.

Reads only what the caller fetched with the user (``select_related("…user__avatar")``, ``…__profile``): no query
per name. The URLs of the variants come from the layer that serves stored images (``boardsite.avatars`` registers
``images.selectors.variant_url`` in its ``ready``), as this app sits below it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist

# Set by boardsite.avatars at start-up: key -> URL a browser may GET (presigned or CloudFront-signed; the bucket
# stays private). Without it (a process that never loaded that app) everyone shows initials.
url_for: Callable[[str], str] | None = None

# Background colours for initials (CSS classes ``avatar-c<n>`` in site.css: the page's policy allows no inline
# style); each passes WCAG AA (>= 4.5:1) against white text.
PALETTE = ("#1f6f8b", "#7b3fa0", "#a8322d", "#2e7d32", "#8a5a00", "#3949ab", "#ad1457", "#00695c", "#5d4037")


@dataclass(frozen=True)
class Face:
    """What a template needs to draw one avatar."""

    name: str
    initials: str
    colour: int  # index into PALETTE
    src: str = ""  # the JPEG fallback at 1x; empty: draw the initials
    srcset: str = ""
    webp_srcset: str = ""


def colour_for(user_id: int) -> int:
    """The same colour for the same person everywhere and always (a hash of the id, not of the name they change)."""
    digest = hashlib.sha256(f"avatar-colour:{user_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % len(PALETTE)


def initials_of(name: str) -> str:
    """Up to two letters: the first of the first and last words ("Ada Lovelace" -> "AL"; "ada_l" -> "A")."""
    words = [w for w in name.replace("_", " ").replace(".", " ").replace("-", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


def display_name(user: Any) -> str:
    """The name shown (its initials too), the same on every page: the display name, else the username. Free when the
    caller selected the profile with the user; one query otherwise (a page with a single name)."""
    try:
        profile = user.profile
    except ObjectDoesNotExist:
        profile = None
    return (profile.display_name if profile else "") or user.get_username()


def _cached_avatar(user: Any) -> Any:
    """The avatar fetched with ``user`` (None when it has none) without a query; a query only when the caller did
    not select it (a single name on a page)."""
    cache = user._state.fields_cache
    if "avatar" in cache:
        return cache["avatar"]
    from boardsite.accounts.models import Avatar

    return Avatar.objects.filter(user_id=user.pk).first()


def face(user: Any, size: int = 32) -> Face:
    """``user`` drawn at ``size`` CSS pixels: the smallest variants that cover 1x and 2x."""
    name = display_name(user)
    base = Face(name=name, initials=initials_of(name), colour=colour_for(user.pk))
    avatar = _cached_avatar(user)
    if avatar is None or not avatar.variants or url_for is None:
        return base
    by_format: dict[str, list[dict[str, Any]]] = {}
    for v in sorted(avatar.variants, key=lambda v: v["width"]):
        by_format.setdefault(v["format"], []).append(v)

    def pick(fmt: str, px: int) -> dict[str, Any] | None:
        options = by_format.get(fmt, [])
        return next((v for v in options if v["width"] >= px), options[-1] if options else None)

    fallback = "jpeg" if "jpeg" in by_format else next(iter(by_format))
    one, two = pick(fallback, size), pick(fallback, 2 * size)
    if one is None or two is None:
        return base
    url = url_for
    webp = ""
    if fallback != "webp" and (w1 := pick("webp", size)) and (w2 := pick("webp", 2 * size)):
        webp = f"{url(w1['key'])} 1x, {url(w2['key'])} 2x"
    return Face(
        name=name,
        initials=base.initials,
        colour=base.colour,
        src=url(one["key"]),
        srcset=f"{url(one['key'])} 1x, {url(two['key'])} 2x",
        webp_srcset=webp,
    )
