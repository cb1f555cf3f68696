"""What the program API does beyond the page's own calls: finding photos by content, and download links."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from boardsite.boards.models import Board, Membership
from boardsite.core.errors import Invalid
from boardsite.images import services
from boardsite.images.models import Image, Status
from boardsite.images.selectors import image_get_visible, variant_url
from boardsite.images.services import image_original_link

LOOKUP_MAX = 500
DOWNLOAD_SECONDS = services.DOWNLOAD_SECONDS  # the original's link (images.services)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def images_by_content(*, board: Board, digests: Any) -> dict[str, str]:
    """{sha256: image id} of the board's photos with that content (not failed ones: those can be sent again)."""
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise Invalid('Give {"sha256": ["<64 hex digits>", …]}.')
    if len(digests) > LOOKUP_MAX:
        raise Invalid(f"At most {LOOKUP_MAX} digests per request.")
    wanted = {d.lower() for d in digests}
    if bad := next((d for d in wanted if not _SHA256.fullmatch(d)), None):
        raise Invalid(f"{bad[:80]!r} is not a SHA-256 in hex (64 digits).")
    rows = (
        Image.objects.filter(board=board, content_sha256__in=wanted, deleting_until__isnull=True)
        .exclude(status=Status.FAILED)
        .order_by("created_at")
        .values_list("content_sha256", "id")
    )
    found: dict[str, str] = {}
    for digest, image_id in rows:
        found.setdefault(digest, str(image_id))
    return found


def boards_of(*, user: Any) -> list[tuple[Board, str, int]]:
    """(board, role, ready photo count) for each board ``user`` owns or is a member of, newest first: two queries."""
    memberships = {m.board_id: m.role for m in Membership.objects.filter(user=user).only("board_id", "role")}
    counts = dict(
        Image.objects.filter(board_id__in=memberships, status=Status.READY, deleting_until__isnull=True)
        .order_by()
        .values("board")
        .annotate(n=Count("pk"))
        .values_list("board", "n")
    )
    rows = Board.objects.filter(pk__in=memberships).order_by("-created_at")
    return [(board, memberships[board.pk], counts.get(board.pk, 0)) for board in rows]


def image_download(*, user: Any, image_id: Any, original: bool) -> dict[str, Any]:
    """A short-lived link to a photo's largest variant, or to its original (the board's owners and its uploader:
    ``images.services.image_original_link``, which the image page's "Download original" uses too)."""
    if original:
        return image_original_link(user=user, image_id=image_id)
    image, _ = image_get_visible(image_id=image_id, user=user)
    if image.status != Status.READY:
        raise Invalid(f"The photo is {image.status}: only a ready photo can be downloaded.")
    now = timezone.now()
    # The widest variant, in the most widely readable format (JPEG before WebP before AVIF: IMAGE_FORMATS' last).
    variants = sorted(image.variants.all(), key=lambda v: (v.width, v.format == "jpeg"))
    if not variants:
        raise Invalid("The photo has no stored variants.")
    best = variants[-1]
    stem = image.filename.rsplit(".", 1)[0] or str(image.id)
    ext = {"jpeg": "jpg"}.get(best.format, best.format)
    # A presigned URL lives IMAGE_URL_SECONDS from the start of its window (images.signing): at least this long.
    lasts = settings.IMAGE_URL_SECONDS - settings.IMAGE_URL_WINDOW_SECONDS
    return {
        "url": variant_url(best.key),
        "expires_at": (now + dt.timedelta(seconds=max(lasts, 60))).isoformat(),
        "filename": f"{stem}.{ext}",
        "variant": best.name,
        "content_type": best.content_type,
    }
