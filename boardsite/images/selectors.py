"""Reads about images, with the access rules applied; URLs are short-lived presigned GETs (the bucket is private)."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from boardsite import aws
from boardsite.boards.models import Board, Order, Role
from boardsite.boards.selectors import User, can_view_q, role_subquery
from boardsite.core.errors import Invalid, NotFound
from boardsite.images import cdn
from boardsite.images.models import Image, Status, Variant
from boardsite.images.signing import UrlSigner
from offload.config import IMAGE_FORMATS

log = logging.getLogger(__name__)


def _visible(user: User) -> QuerySet[Image]:
    """Images with the caller's role (``viewer_role``), only those the caller may see: the board's rule
    (``can_view_q``, the SQL form of ``can_view``) and failed uploads for their uploader and the board's owners only
    (``_sees_failures``). Applied in the query, so an image one may not see is never read: it costs what an unknown
    id costs, and the time of an answer does not tell it exists."""
    # Photos deleted in a batch are gone for everyone at once, though their rows wait out the undo window.
    rows = Image.objects.filter(deleting_until__isnull=True).annotate(viewer_role=role_subquery(user=user))
    failures = ~Q(status=Status.FAILED)
    if user.is_authenticated:
        failures |= Q(uploaded_by=user) | Q(viewer_role=Role.OWNER)
    return rows.filter(can_view_q(role="viewer_role"), failures)


def image_get_visible(*, image_id: str | uuid.UUID, user: User) -> tuple[Image, str | None]:
    """The image and the caller's role on its board; NotFound when the caller may not see it (one query either way)."""
    try:
        pk = uuid.UUID(str(image_id))
    except ValueError:
        raise NotFound("No such image.") from None
    image = _visible(user).select_related("board", "uploaded_by__profile").filter(pk=pk).first()
    if image is None:
        raise NotFound("No such image.")
    return image, image.viewer_role


def _sees_failures(image: Image, user: User, role: str | None) -> bool:
    return user.is_authenticated and (image.uploaded_by_id == user.pk or role == "owner")


# Tiles per page of a board. The first page costs the same whatever the board's size; more come as one scrolls.
BOARD_PAGE_SIZE = 60
# ``?until=`` (the back button coming back to a scrolled board) renders at most this many tiles at once.
BOARD_UNTIL_MAX = 600
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class TilePage:
    images: list[Image]
    next_cursor: str | None  # None: this was the last page
    last_cursor: str | None  # the position of this page's last tile (``?until=`` to render up to it again)


def _sort_value(board: Board) -> Any:
    """What a board's photos are ordered by (newest first, the id breaking ties): the date added, or the date taken
    where EXIF gave one (else the date added)."""
    return Coalesce("taken_at", "created_at") if board.order == Order.TAKEN else F("created_at")


def _in_order(board: Board, images: Any) -> Any:
    return images.annotate(sort_at=_sort_value(board))


def tile_cursor(image: Image) -> str:
    """A position in its board's order: ``<sort value in µs>.<id hex>``, stable while rows come and go."""
    at = getattr(image, "sort_at", None) or image.created_at
    return f"{(at - _EPOCH) // dt.timedelta(microseconds=1)}.{image.pk.hex}"


def _parse_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    micros, _, hex_id = cursor.partition(".")
    try:
        return _EPOCH + dt.timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id)
    except (ValueError, OverflowError):
        raise Invalid("This page link is not valid: open the board again.") from None


def _visible_images(board: Board, user: User, role: str | None) -> Any:
    visible = _in_order(board, board.images.filter(deleting_until__isnull=True))
    if not (user.is_authenticated and role == "owner"):
        # Failed uploads only for whoever uploaded them (and owners), filtered in the query so pages stay full.
        hidden = Q(status=Status.FAILED)
        if user.is_authenticated:
            hidden &= ~Q(uploaded_by=user)
        visible = visible.exclude(hidden)
    return visible


def image_neighbours(*, image: Image, user: User, role: str | None) -> tuple[Image | None, Image | None]:
    """The photos before (newer) and after (older) ``image`` in its board's order, among those the caller sees."""
    # board_id too: the board's related manager reads it on every row (a deferred board_id cost a query per link).
    visible = _visible_images(image.board, user, role).only("id", "board_id", "caption", "filename")
    at = image.taken_at or image.created_at if image.board.order == Order.TAKEN else image.created_at
    pk = image.pk
    newer = visible.filter(_before(at, pk)).order_by("sort_at", "id").first()
    older = visible.filter(_behind(at, pk)).order_by("-sort_at", "-id").first()
    return newer, older


# Keyset conditions on the position (at, pk) in the newest-first order, written as a plain bound on ``sort_at`` less
# the position's ties on the wrong side of it. The bound is what lets PostgreSQL start the board's index scan at the
# position: the textbook ``sort_at < at OR (sort_at = at AND id < pk)`` is only a filter, and a page 5,000 photos deep
# read the 5,000 newer index entries first. Only this form is also estimated right: the bound repeated beside that OR
# had its selectivity counted twice, and the planner sorted the rest of the board instead of walking the index
# (tests/images/test_board_plans_pg.py).
def _behind(at: dt.datetime, pk: uuid.UUID) -> Q:
    """Older than the position (after it on the page)."""
    return Q(sort_at__lte=at) & ~Q(sort_at=at, id__gte=pk)


def _before(at: dt.datetime, pk: uuid.UUID, *, inclusive: bool = False) -> Q:
    """Newer than the position (above it on the page); with ``inclusive``, the position too."""
    return Q(sort_at__gte=at) & ~(Q(sort_at=at, id__lt=pk) if inclusive else Q(sort_at=at, id__lte=pk))


def _after(cursor: str) -> Q:
    return _behind(*_parse_cursor(cursor))


def board_tiles_page(
    *,
    board: Board,
    user: User,
    role: str | None,
    after: str | None = None,
    until: str | None = None,
    size: int = BOARD_PAGE_SIZE,
) -> TilePage:
    """One page of a board's tiles, newest first, by keyset (no OFFSET: the cost does not grow with the depth, and an
    image added or deleted meanwhile neither repeats nor skips another). ``after``: the tiles after that position;
    ``until``: every tile from the top down to and including that position (at most ``BOARD_UNTIL_MAX``)."""
    visible = _visible_images(board, user, role)
    images = visible
    if after:
        images = images.filter(_after(after))
    if until:
        images = images.filter(_before(*_parse_cursor(until), inclusive=True))
        size = BOARD_UNTIL_MAX
    rows = list(images.order_by("-sort_at", "-id").prefetch_related("variants")[: size + 1])
    page, more = rows[:size], len(rows) > size
    last = tile_cursor(page[-1]) if page else None
    if until and last and not more:
        # Rendered down to the position: do tiles follow it? The next one in the board's order, not ``exists()``,
        # which drops the order and let PostgreSQL look for any such row by reading the whole table (a Seq Scan).
        more = visible.filter(_after(last)).order_by("-sort_at", "-id").values_list("id", flat=True).first() is not None
    return TilePage(images=page, next_cursor=last if more else None, last_cursor=last)


@functools.lru_cache(maxsize=4)
def _signer(s3: Any, bucket: str, lifetime: int, window: int) -> UrlSigner:
    # Keyed by the client: a new client (after a SnapStart restore clears them) gets a new signer and credentials.
    return UrlSigner(s3, bucket, lifetime=lifetime, window=window)


def presigned_get(key: str) -> str:
    """A presigned GET (boardsite.images.signing: botocore's URL at a fraction of its cost), the same for the same
    object during ``IMAGE_URL_WINDOW_SECONDS`` so browsers reuse what they cached."""
    lifetime = settings.IMAGE_URL_SECONDS
    window = max(1, min(settings.IMAGE_URL_WINDOW_SECONDS, lifetime // 2))
    return _signer(aws.client("s3"), settings.BOARDSITE_BUCKET, lifetime, window).url(key)


def variant_url(key: str) -> str:
    """Where a browser gets a variant: through CloudFront when it is configured (``cdn``), else presigned from S3.

    A CDN whose key pair is missing (the start-up check says so) falls back to S3, which the page's policy allows
    too: photos keep showing while an operator fixes it.
    """
    if cdn.enabled():
        try:
            return cdn.variant_url(key)
        except cdn.CdnNotConfigured as exc:
            _warn_once(str(exc))
    return presigned_get(key)


@functools.lru_cache(maxsize=8)
def _warn_once(message: str) -> None:
    log.error("CloudFront delivery is off, photos come from S3: %s", message)


# A grid tile is a square: the square thumbnail, and the medium size for high-density screens.
TILE_VARIANTS = ("thumb", "medium")
PAGE_VARIANTS = ("medium", "large")


def _ready_variants(image: Image) -> list[Variant]:
    return sorted(image.variants.all(), key=lambda v: (v.width, IMAGE_FORMATS.index(v.format)))


def image_variants(image: Image, names: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Per variant name (all, or ``names`` when the image has them): its size, a URL in every format, and ``url`` in
    the most widely readable one.

    Built from the variants recorded in the database, never by asking storage.
    """
    out: dict[str, dict[str, Any]] = {}
    variants = _ready_variants(image)
    if names is not None and any(v.name in names for v in variants):  # custom variant names: use them all
        variants = [v for v in variants if v.name in names]
    for v in variants:
        entry = out.setdefault(v.name, {"width": v.width, "height": v.height, "formats": {}})
        entry["formats"][v.format] = variant_url(v.key)
        entry["url"] = entry["formats"][v.format]  # the last in order of preference: the fallback (JPEG)
    return out


def image_picture(
    image: Image, names: tuple[str, ...] | None = None, *, largest_src: bool = False
) -> dict[str, Any] | None:
    """What a ``<picture>`` needs: one ``<source>`` per modern format, and the fallback ``<img>``'s src/srcset.

    ``names`` limits it to some variants (a square thumbnail and the medium size for a grid tile, say). The plain
    ``src`` (for the rare browser without srcset) is the smallest of them, or the largest with ``largest_src``.
    """
    variants = _ready_variants(image)
    if names is not None and any(v.name in names for v in variants):  # custom variant names: use them all
        variants = [v for v in variants if v.name in names]
    by_format: dict[str, list[Variant]] = {}
    for v in variants:
        same_format = by_format.setdefault(v.format, [])
        if not same_format or same_format[-1].width != v.width:  # a small original's sizes coincide: list once
            same_format.append(v)
    if not by_format:
        return None
    formats = [f for f in IMAGE_FORMATS if f in by_format]
    fallback = by_format[formats[-1]]

    urls: dict[str, str] = {}  # the plain src is also in the srcset: one URL per variant and format, signed once

    def url(v: Variant) -> str:
        if v.key not in urls:
            urls[v.key] = variant_url(v.key)
        return urls[v.key]

    def srcset(variants: list[Variant]) -> str:
        return ", ".join(f"{url(v)} {v.width}w" for v in variants)

    return {
        "sources": [{"type": by_format[f][0].content_type, "srcset": srcset(by_format[f])} for f in formats[:-1]],
        "srcset": srcset(fallback),
        "src": url(fallback[-1 if largest_src else 0]),
        "largest": fallback[-1],
    }


# At most this many ids per batched status request: a page polls its pending tiles, never thousands.
STATUS_BATCH_MAX = 100
# ... and this many with ``verify=1``, which asks storage about each image (one HEAD each).
STATUS_VERIFY_MAX = 10


def images_visible(*, image_ids: list[str], user: User) -> tuple[list[Image], list[str]]:
    """The images among ``image_ids`` the caller may see (the rules of ``image_get_visible``), and the ids that are
    not: unknown, malformed and not visible alike, so the answer tells nothing about images one may not see.

    The rules are applied in the query (``_visible``): one query, and one for the variants of the images found.
    """
    wanted: dict[uuid.UUID, str] = {}
    for raw in image_ids:
        try:
            wanted.setdefault(uuid.UUID(str(raw)), raw)
        except ValueError:
            continue
    visible: list[Image] = []
    if wanted:
        visible = list(_visible(user).filter(pk__in=wanted).select_related("board").prefetch_related("variants"))
    seen = {i.pk for i in visible}
    return visible, [raw for raw in image_ids if _as_uuid(raw) not in seen]


def images_visible_on_board(*, board: Board, image_ids: list[uuid.UUID], user: User) -> list[Image]:
    """The photos of ``board`` among ``image_ids`` that ``user`` may see (``_visible``'s rules), with their role as
    ``viewer_role``; others' ids (other boards, unknown, hidden) are simply not there."""
    return list(_visible(user).filter(board=board, pk__in=image_ids).select_related("board"))


def _as_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def tile_fallback_variant(image: Image) -> Variant | None:
    """The variant a tile's plain ``<img src>`` shows (``image_picture(image, TILE_VARIANTS)["src"]``): the smallest
    tile variant in the most widely readable format. None when the image has no variants."""
    variants = _ready_variants(image)
    if any(v.name in TILE_VARIANTS for v in variants):
        variants = [v for v in variants if v.name in TILE_VARIANTS]
    formats = {v.format for v in variants}
    fallback = [f for f in IMAGE_FORMATS if f in formats][-1:]
    return next((v for v in variants if v.format in fallback), None)


def image_tile_payload(image: Image) -> dict[str, Any]:
    """What a board tile needs to draw itself: the tile's variants only (not the large size)."""
    payload = image_payload(image, variant_names=TILE_VARIANTS)
    del payload["board"]
    return payload


def image_payload(image: Image, *, variant_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The JSON shape of ``GET /api/images/<id>``."""
    return {
        "id": str(image.id),
        "board": image.board_id,
        "status": image.status,
        "error": image.error or None,
        "width": image.width,
        "height": image.height,
        "caption": image.caption,
        "filename": image.filename,
        "sha256": image.content_sha256 or None,
        "placeholder": image.placeholder or None,
        "dominant_color": image.dominant_color or None,
        "variants": image_variants(image, variant_names) if image.status == Status.READY else {},
        "page_url": reverse("image-detail", args=[image.id]),
    }


# Here, not in boards: a board's card shows its photos (count, cover), and images sits above boards.
def board_cards(boards: QuerySet[Board]) -> list[dict]:
    """Each board with its photo count and its cover (its newest ready photo's thumbnail): four queries for any
    number of boards (the boards with their counts and cover ids, the covers, their variants; one more when none)."""
    ready = Image.objects.filter(board=OuterRef("pk"), status=Status.READY, deleting_until__isnull=True)
    rows = list(
        boards.annotate(
            photo_count=Coalesce(
                Subquery(ready.order_by().values("board").annotate(n=Count("pk")).values("n")[:1]), Value(0)
            ),
            cover_id=Subquery(ready.order_by("-created_at", "-id").values("pk")[:1]),
        )
    )
    covers = {
        image.pk: image
        for image in Image.objects.filter(pk__in=[b.cover_id for b in rows if b.cover_id]).prefetch_related("variants")
    }
    return [
        {
            "board": b,
            "count": b.photo_count,
            "cover": covers.get(b.cover_id),
            "picture": image_picture(covers[b.cover_id], ("thumb",)) if b.cover_id in covers else None,
        }
        for b in rows
    ]
