"""How the web side applies a processing result (``image.processed``) to the image's row: the function
the processing job's registry entry names for its results (``boardsite.core.results`` routes each result here).
Idempotent: the same result delivered twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any
from urllib.parse import unquote

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from boardsite.boards.models import Board
from boardsite.images import signals
from boardsite.images.cleanup import image_prefixes, storage_cleanup_schedule
from boardsite.images.models import DeletedImage, Image, Status, UploadTicket, Variant
from boardsite.images.services import NOT_CONTRIBUTOR, uploader_may_add
from offload import tickets
from offload.results import RESULT_TYPE, parse_key

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"data:image/(webp|jpeg|png);base64,[A-Za-z0-9+/]+={0,2}")
COLOUR = re.compile(r"#[0-9a-f]{6}")


@transaction.atomic
def image_result_apply(*, result: dict[str, Any]) -> bool:
    """Apply one ``image.processed`` result; False when it changed nothing (unknown, stale or a duplicate)."""
    if result.get("type") != RESULT_TYPE:
        log.warning("ignoring a result of unknown type %r", result.get("type"))
        return False
    try:
        image_id = uuid.UUID(str(result["image_id"]))
    except (KeyError, ValueError):
        log.warning("ignoring a result without a valid image id: %r", result.get("image_id"))
        return False
    key = result.get("key")
    if isinstance(ticket := result.get("ticket"), dict) and not Image.objects.filter(pk=image_id).exists():
        # Processed before the site applied its ticket (issued by the upload-ticket function): the row comes from
        # what the upload itself carried, pinned by the ticket's policy.
        _ticketed_row(
            image_id=image_id,
            key=key,
            board_id=result.get("board_id"),
            user_id=ticket.get("uploader"),
            filename=unquote(str(ticket.get("filename") or "")),  # object metadata is ASCII: quoted by the function
            content_type=ticket.get("content_type"),
            size=ticket.get("size"),
            grant=ticket.get("grant"),
            at=ticket.get("ticketed_at"),
        )
    image = (
        Image.objects.select_for_update(of=("self",)).select_related("board", "uploaded_by").filter(pk=image_id).first()
    )
    if image is None or image.original_key != key:
        log.info("the image %s is gone: deleting what its processing wrote", image_id)
        if _names_image(key, image_id, result.get("board_id")) and image is None:
            storage_cleanup_schedule(prefixes=image_prefixes(key), reason="result for a deleted photo")
        return False
    if image.status == Status.FAILED:
        # Abandoned, given up or refused while this ran: whatever the processing wrote must not stay behind.
        storage_cleanup_schedule(prefixes=image_prefixes(key), reason="result for a failed upload")
        return False
    if image.status == Status.READY:
        return False  # settled: the same result again (the processor never replaces variants on record)
    if result.get("status") == Status.READY and not _well_formed(result):
        log.error("ignoring a malformed ready result for %s", image_id)
        return False
    image.processed_at = timezone.now()
    if not uploader_may_add(image):
        # Removed from the board (or the account deleted) after the ticket was issued: the photo is not published.
        image.status, image.error = Status.FAILED, NOT_CONTRIBUTOR
        image.save(update_fields=["status", "error", "processed_at"])
        storage_cleanup_schedule(prefixes=image_prefixes(key), reason="uploader no longer a contributor")
        signals.upload_failed.send(sender=Image, image=image, reason=image.error)
        return True
    image.source_etag = result.get("source_etag") or ""
    sha256 = str(result.get("sha256") or "")
    image.content_sha256 = sha256 if len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256) else ""
    image.variants.all().delete()
    if result.get("status") == Status.READY:
        image.status = Status.READY
        image.error = ""
        image.width, image.height = result["width"], result["height"]
        image.placeholder = _placeholder(result.get("placeholder"))
        image.dominant_color = _colour(result.get("dominant_color"))
        image.taken_at = _taken_at(result.get("taken_at"))
        Variant.objects.bulk_create(
            Variant(
                image=image,
                name=v["name"],
                key=v["key"],
                width=v["width"],
                height=v["height"],
                format=v["format"],
                content_type=v.get("content_type") or "image/jpeg",
                bytes=v.get("bytes", 0),
            )
            for v in result["variants"]
        )
    else:
        image.status = Status.FAILED
        image.error = result.get("error") or "Processing failed."
        storage_cleanup_schedule(prefixes=image_prefixes(key), reason="processing failed")
    image.save()
    # Only here, on the move from pending or processing (a settled photo returned above): a duplicated result
    # notifies nobody a second time.
    if image.status == Status.READY:
        signals.photo_ready.send(sender=Image, image=image)
    else:
        signals.upload_failed.send(sender=Image, image=image, reason=image.error)
    return True


def _names_image(key: Any, image_id: uuid.UUID, board_id: Any) -> bool:
    """Whether ``key`` is this image's original on this board (only then may a result delete by it)."""
    try:
        return isinstance(key, str) and parse_key(key) == (str(board_id), str(image_id))
    except ValueError:
        return False


def _taken_at(value: Any) -> dt.datetime | None:
    """The processor's ISO date; a date without an offset is the camera's clock, kept as if it were UTC."""
    try:
        taken = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        return None
    if taken is not None and taken.tzinfo is None:
        taken = taken.replace(tzinfo=dt.UTC)
    return taken


def _placeholder(value: Any) -> str:
    # Rendered into a style attribute: accept only what the processor makes (a base64 WebP), nothing that could
    # close the attribute.
    if isinstance(value, str) and len(value) < 4000 and PLACEHOLDER.fullmatch(value):
        return value
    return ""


def _colour(value: Any) -> str:
    return value if isinstance(value, str) and COLOUR.fullmatch(value) else ""


def _well_formed(result: dict[str, Any]) -> bool:
    keys = ("name", "key", "width", "height", "format")
    return (
        isinstance(result.get("width"), int)
        and isinstance(result.get("height"), int)
        and isinstance(result.get("variants"), list)
        and all(isinstance(v, dict) and all(k in v for k in keys) for v in result["variants"])
    )


@transaction.atomic
def image_ticketed_apply(*, result: dict[str, Any]) -> bool:
    """Apply one ``image.ticketed`` event (the upload-ticket function issued a ticket): the pending photo and its
    ticket, exactly once, whether its processing result came first, this event comes twice, or late. False when it
    changed nothing (applied already, the photo or board deleted since, or not an event of ours)."""
    try:
        image_id = uuid.UUID(str(result["image_id"]))
    except (KeyError, ValueError):
        log.warning("ignoring a ticket without a valid image id: %r", result.get("image_id"))
        return False
    return _ticketed_row(
        image_id=image_id,
        key=result.get("key"),
        board_id=result.get("board_id"),
        user_id=result.get("user_id"),
        filename=result.get("filename"),
        content_type=result.get("content_type"),
        size=result.get("size"),
        grant=result.get("grant"),
        at=result.get("ticketed_at"),
    )


def _ticketed_row(
    *,
    image_id: uuid.UUID,
    key: Any,
    board_id: Any,
    user_id: Any,
    filename: Any,
    content_type: Any,
    size: Any,
    grant: Any,
    at: Any,
) -> bool:
    """The pending row and the ticket of an upload the function ticketed; False when there is nothing to make."""
    if not _names_image(key, image_id, board_id):
        log.warning("ignoring a ticket whose key %r does not name image %s on board %s", key, image_id, board_id)
        return False
    if DeletedImage.objects.filter(pk=image_id).exists() or Image.objects.filter(pk=image_id).exists():
        return False
    board = Board.objects.filter(pk=int(board_id)).first()
    user = get_user_model().objects.filter(pk=user_id).first() if str(user_id).isdigit() else None
    if board is None or user is None:
        return False  # deleted since: the board's (or the person's) objects are cleaned with them
    try:
        when = dt.datetime.fromtimestamp(float(at), tz=dt.UTC)
        grant_id = uuid.UUID(str(grant))
        size = int(size)
    except (TypeError, ValueError, OverflowError):
        log.warning("ignoring a malformed ticket for %s", image_id)
        return False
    try:  # checked by the function already; checked again, as anything that reaches a page
        name = tickets.clean_filename(filename)
    except tickets.TicketRefused:
        name = "photo"
    image = Image(
        id=image_id,
        board=board,
        uploaded_by=user,
        original_key=key,
        filename=name,
        content_type=str(content_type or "")[:50],
        declared_size=size,
    )
    image.save(force_insert=True)
    Image.objects.filter(pk=image_id).update(created_at=when)  # when the ticket was issued: its expiry counts from it
    UploadTicket.objects.get_or_create(
        image_id=image_id, defaults={"user": user, "size": size, "created_at": when, "grant_id": grant_id}
    )
    return True
