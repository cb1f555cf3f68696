"""Writes about images: upload tickets, completion, captions, deletion. Access is checked here, every time."""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from boardsite import aws
from boardsite.boards.models import Board
from boardsite.boards.selectors import User, board_get_visible, board_role, can_upload, require_upload
from boardsite.core import jobs
from boardsite.core.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotAuthenticated,
    RateLimited,
    TooLarge,
    Unavailable,
    validated,
)
from boardsite.core.text import visible_text_error
from boardsite.images import signals
from boardsite.images.cleanup import board_prefixes, image_prefixes, storage_cleanup_schedule
from boardsite.images.models import DeletedImage, Image, Status, UploadGrant, UploadTicket
from boardsite.images.selectors import image_get_visible, tile_fallback_variant
from offload import aws as offload_aws
from offload import tickets
from offload.config import ORIGINALS_PREFIX

log = logging.getLogger(__name__)

# Bytes may still arrive a little after a ticket's expiry (an upload that started in time); nothing later can.
TICKET_GRACE_SECONDS = 120
# A place held by the upload-ticket function's tickets frees when their photos are processed: ask again this soon.
GRANT_WAIT_SECONDS = 5
NOT_CONTRIBUTOR = "You are no longer a contributor to this board, so the photo was not added."
_size = tickets.size_text


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "minute" if minutes == 1 else f"{minutes} minutes"


@dataclass(frozen=True)
class Usage:
    """What a person has used of the upload allowances now (``_usage``): tickets issued and not yet used (the oldest
    first, as the times each frees a place), bytes ticketed over the last 24 hours, and the board's photos; each
    including what live upload grants reserve (``grants.py``), so the limits hold whichever runtime issues tickets."""

    outstanding: list[dt.datetime]
    used_bytes: int
    day_tickets: list[tuple[dt.datetime, int]]  # (when it frees its bytes, bytes), oldest first
    photos: int


def _usage(*, user: AbstractBaseUser, board: Board, now: dt.datetime) -> Usage:
    """Counted in the database (shared by every process and Lambda instance); the caller holds row locks on the board
    and the person, so two requests cannot both take the last place.

    Every ticket the site knows of counts (its own, and the function's once their ``image.ticketed`` events are
    applied); a live grant counts besides for the tickets it may still issue or whose events have not arrived yet,
    with the bytes left of it: so the limits hold whichever runtime issues the tickets, and events arriving late
    change nothing."""
    ticket = dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS)
    live = list(UploadGrant.objects.filter(user=user, live_until__gt=now, revoked_at__isnull=True))
    mine = UploadTicket.objects.filter(user=user)
    # A ticket stays usable until it expires (a presigned POST cannot be revoked): abandoned, or its photo or board
    # deleted, it holds its place until then, or a script could abandon or delete its way past the limit. It is done
    # once its bytes were reported (processing) or processed.
    reported = Image.objects.filter(pk=OuterRef("image_id")).filter(
        Q(status__in=[Status.PROCESSING, Status.READY]) | Q(status=Status.FAILED, processed_at__isnull=False)
    )
    open_tickets = mine.filter(created_at__gt=now - ticket).exclude(Exists(reported))
    # When a place frees (a 429's Retry-After): a site's ticket when it expires, unless reported sooner; one of the
    # function's, or of a grant, as soon as its photo is processed, which takes seconds (S3 starts it, no report).
    soon = now + dt.timedelta(seconds=GRANT_WAIT_SECONDS)
    outstanding = [
        soon if grant_id else at + ticket
        for at, grant_id in open_tickets.order_by("created_at").values_list("created_at", "grant_id")
    ]
    applied = {
        grant_id: (n, size)
        for grant_id, n, size in UploadTicket.objects.filter(grant_id__in=[g.pk for g in live])
        .values("grant_id")
        .annotate(n=Count("pk"), size=Sum("size"))
        .values_list("grant_id", "n", "size")
    }
    unseen = {g.pk: max(0, g.tickets - applied.get(g.pk, (0, 0))[0]) for g in live}
    for grant in live:
        outstanding += [soon] * unseen[grant.pk]
    day = now - dt.timedelta(days=1)
    day_tickets = [
        (at + dt.timedelta(days=1), size)
        for at, size in mine.filter(created_at__gt=day).order_by("created_at").values_list("created_at", "size")
    ]
    day_tickets += [
        (g.created_at + dt.timedelta(days=1), max(0, g.bytes - (applied.get(g.pk, (0, 0))[1] or 0))) for g in live
    ]
    day_tickets.sort()
    # Photos being deleted in a batch still count: an undo within its window brings them back.
    photos = Image.objects.filter(board=board).exclude(status=Status.FAILED).count()
    photos += sum(unseen[g.pk] for g in live if g.board_id == board.pk)
    return Usage(sorted(outstanding), sum(size for _, size in day_tickets), day_tickets, photos)


# A quota's answers: the site's alone, never compared with a shadow run of the ticket function, which sees no quotas
# (``grants.shadow_ticket``).
class QuotaRateLimited(RateLimited):
    quota = True


class QuotaTooLarge(TooLarge):
    quota = True


class QuotaFull(Forbidden):
    quota = True


def _check_quotas(
    *, user: AbstractBaseUser, board: Board, size: int, now: dt.datetime, tickets_wanted: int = 1
) -> Usage:
    """Refuse a ticket (or a grant of ``tickets_wanted`` tickets of ``size`` bytes in all) over a quota, with a
    sentence saying which; the usage otherwise."""
    usage = _usage(user=user, board=board, now=now)
    ticket = dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS)
    if len(usage.outstanding) >= settings.UPLOAD_MAX_OUTSTANDING:
        wait = max(1, math.ceil((usage.outstanding[0] - now).total_seconds()))
        raise QuotaRateLimited(
            f"You have {len(usage.outstanding)} uploads started in the last {_minutes(ticket.seconds)} and not sent "
            f"(or cancelled), the most at one time; finish those, or try again in {wait} seconds.",
            retry_after=wait,
        )

    # Every ticket counts, sent or not, its photo kept or deleted: each one could have been used for its size.
    limit = settings.UPLOAD_DAILY_BYTES
    if usage.used_bytes + size > limit:
        wait = 24 * 3600
        freed = 0
        for frees_at, declared in usage.day_tickets:
            freed += declared
            if usage.used_bytes - freed + size <= limit:
                wait = max(1, math.ceil((frees_at - now).total_seconds()))
                break
        raise QuotaTooLarge(
            f"This file ({_size(size)}) would go over your upload allowance of {_size(limit)} a day: your uploads "
            f"of the last 24 hours come to {_size(usage.used_bytes)}. Try again in {math.ceil(wait / 60)} minutes.",
            retry_after=wait,
        )

    if usage.photos >= settings.BOARD_MAX_PHOTOS:
        raise QuotaFull(
            f"This board is full: it holds {usage.photos} photos, the most one board can. Start another board for more."
        )
    return usage


def upload_board(*, user: User, board_id: Any) -> tuple[Board, str | None]:
    """The board ``user`` may add photos to, and their role there (an ``ApplicationError`` saying why not)."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in to upload photos.")
    if board_id is None:
        raise Invalid("board is required.")
    board, role = board_get_visible(board_id=board_id, user=user)
    require_upload(role)
    return board, role


def image_upload_start(
    *, user: User, board_id: Any, filename: Any, content_type: Any, size: Any
) -> tuple[Image, dict[str, Any]]:
    """Issue a one-time upload ticket: a presigned POST pinned to one key, type, exact size and a short expiry."""
    board, _ = upload_board(user=user, board_id=board_id)
    try:
        name, content_type, size = tickets.check_file(
            filename=filename, content_type=content_type, size=size, max_bytes=settings.UPLOAD_MAX_BYTES
        )
    except tickets.TicketRefused as exc:
        raise (TooLarge if exc.status == 413 else Invalid)(exc.message) from None

    image_id = uuid.uuid4()
    # The runtime that will process it is chosen now and written into the key (jobs.place): see core/routing.py.
    key = jobs.place(f"{ORIGINALS_PREFIX}{board.pk}/{image_id}.{tickets.EXTENSIONS[content_type]}")
    image = Image(
        id=image_id,
        board=board,
        uploaded_by=user,
        original_key=key,
        filename=name,
        content_type=content_type,
        declared_size=size,
    )
    # The board and the person were just loaded; the id is a fresh uuid and the key is made from it.
    validated(image, trusted=("board", "uploaded_by"), validate_unique=False)
    with transaction.atomic():
        # Board first, then the person: every ticket request locks in this order, so none waits for another in a
        # cycle. (SQLite ignores FOR UPDATE; its transactions take the write lock at BEGIN instead: settings.py.)
        list(Board.objects.select_for_update().filter(pk=board.pk).values_list("pk"))
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
        now = timezone.now()
        _check_quotas(user=user, board=board, size=size, now=now)
        image.save(force_insert=True)
        UploadTicket.objects.create(image_id=image.pk, user=user, size=size, created_at=now)
    return image, upload_form(key=key, content_type=content_type, size=size)


def upload_form(*, key: str, content_type: str, size: int) -> dict[str, Any]:
    """The presigned POST of one upload ticket (photos and profile pictures): pinned key, type and exact size, for
    ``UPLOAD_TICKET_SECONDS``."""
    return tickets.presigned_post(
        aws.client("s3"),
        bucket=settings.BOARDSITE_BUCKET,
        key=key,
        content_type=content_type,
        size=size,
        expires=settings.UPLOAD_TICKET_SECONDS,
    )


def _uploaded_by(user: User, image_id: Any) -> tuple[Image, str | None]:
    image, role = image_get_visible(image_id=image_id, user=user)
    if not user.is_authenticated or image.uploaded_by_id != user.pk:
        raise Forbidden("Only the uploader can report an upload.")
    return image, role


def uploader_may_add(image: Image) -> bool:
    """Whether the person who uploaded ``image`` may still add photos to its board (roles change while uploads run)."""
    if image.uploaded_by is None:
        return False
    return can_upload(board_role(board=image.board, user=image.uploaded_by))


def image_fail(
    *,
    image: Image,
    reason: str,
    from_statuses: tuple[str, ...] = (Status.PENDING, Status.PROCESSING),
    transient: bool = False,
) -> bool:
    """End an unsettled image as ``failed`` with ``reason`` and delete whatever it stored. False if it had settled.

    ``transient``: processing never finished (storage, a time-out, throttling), the file was not refused: the
    original stays for ``FAILED_RETRY_DAYS`` (``retryable_until``), so staff can process it again."""
    keep_until = timezone.now() + dt.timedelta(days=settings.FAILED_RETRY_DAYS) if transient else None
    with transaction.atomic():
        changed = Image.objects.filter(pk=image.pk, status__in=from_statuses).update(
            status=Status.FAILED, error=reason, retryable_until=keep_until
        )
        if changed:
            prefixes = image_prefixes(image.original_key)
            if transient:  # the original stays (the orphan sweep takes it once retryable_until has passed)
                prefixes = [p for p in prefixes if p != image.original_key]
            storage_cleanup_schedule(prefixes=prefixes, reason="upload failed")
            signals.upload_failed.send(sender=Image, image=image, reason=reason)
    return bool(changed)


def image_process_again(*, image_id: Any) -> Image:
    """Process a photo that failed for a passing reason once more (staff, from the control room). Invalid when it
    is not such a photo, or its original is gone."""
    image = Image.objects.filter(pk=image_id).first()
    now = timezone.now()
    if (
        image is None
        or image.status != Status.FAILED
        or not image.retryable_until
        or image.retryable_until < now
        or image.deleting_until is not None  # deleted in a batch, waiting out its undo window
    ):
        raise Invalid("Only a photo that failed for a passing reason, within its retry window, can be processed again.")
    head = head_original(image)
    if head is None:
        raise Invalid("Its original is no longer in storage.")
    started = Image.objects.filter(pk=image.pk, status=Status.FAILED).update(
        status=Status.PROCESSING, error="", attempts=1, attempt_started_at=now, retryable_until=None
    )
    if started:
        image_process_start(image=image, head=head, redeliver=True)
    image.refresh_from_db()
    return image


def image_upload_complete(*, user: User, image_id: Any) -> Image:
    """The browser says its upload finished: start processing (unless S3's own event does, in lambda mode)."""
    image, role = _uploaded_by(user, image_id)
    if image.status != Status.PENDING:
        return image  # already processing or done (the S3 event may have been faster): nothing to do
    if not can_upload(role):
        image_fail(image=image, reason=NOT_CONTRIBUTOR)
        image.refresh_from_db()
        return image
    head = head_original(image)
    if head is None:
        raise Invalid("The upload has not arrived; send the file first.")
    # Exactly one caller moves the row on; a second report at the same time starts nothing.
    started = Image.objects.filter(pk=image.pk, status=Status.PENDING).update(
        status=Status.PROCESSING, attempts=1, attempt_started_at=timezone.now()
    )
    if started:
        try:
            image_process_start(image=image, head=head)
        except Unavailable:
            Image.objects.filter(pk=image.pk, status=Status.PROCESSING).update(
                status=Status.PENDING, attempts=0, attempt_started_at=None
            )
            raise
    image.refresh_from_db()
    return image


def image_process_start(*, image: Image, head: dict[str, Any], redeliver: bool = False) -> None:
    """Start the processing of this image's original as S3 would (``jobs.object_created``: the job its key's prefix
    triggers, wherever its mode says; ``redeliver``: also in lambda mode, where S3's own event was lost).
    Unavailable when it cannot even start."""
    try:
        jobs.object_created(image.original_key, size=head["ContentLength"], etag=head["ETag"], redelivery=redeliver)
    except Exception:
        log.exception("could not start processing %s", image.pk)
        raise Unavailable("Processing could not start just now; try again in a moment.") from None


def stored_head(key: str, *, quick: bool = False) -> dict[str, Any] | None:
    """The object's HEAD, None when it is not there; Unavailable when storage does not answer (nobody knows then)."""
    try:
        return aws.client("s3", quick=quick).head_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)
    except ClientError as exc:
        if offload_aws.is_missing(exc):
            return None
        log.exception("HEAD %s failed", key)
        raise Unavailable("Storage did not answer; try again in a moment.") from None
    except BotoCoreError:
        log.warning("HEAD %s failed: storage unreachable", key)
        raise Unavailable("Storage did not answer; try again in a moment.") from None


def head_original(image: Image) -> dict[str, Any] | None:
    return stored_head(image.original_key)


def image_files_state(image: Image) -> str:
    """``"present"`` or ``"missing"``: whether the file a tile shows (its fallback variant) is in storage, asked of S3
    (a HEAD; the site's role may list the bucket, so a missing object is a 404, not a 403). A ready image without
    variant rows has nothing to show: missing. Unavailable when storage does not answer: nobody knows then.

    Each answer is kept ``STATUS_VERIFY_CACHE_SECONDS`` in the shared cache: many viewers of one broken photo, or
    one client asking again and again, cost one HEAD."""
    variant = tile_fallback_variant(image)
    if variant is None:
        return "missing"
    key = f"images.files:{variant.key}"
    if (state := cache.get(key)) in ("present", "missing"):
        return state
    state = "present" if stored_head(variant.key, quick=True) is not None else "missing"
    cache.set(key, state, settings.STATUS_VERIFY_CACHE_SECONDS)
    return state


def _ticket_end(image: Image) -> dt.datetime:
    return image.created_at + dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS)


def image_upload_abandon(*, user: User, image_id: Any, reason: Any) -> Image:
    """The browser could not send the bytes: the row ends ``failed`` with the reason, instead of pending forever.

    Whatever did arrive is deleted now, and again once the ticket has ended (bytes can still land until then).
    """
    image, _ = _uploaded_by(user, image_id)
    if isinstance(reason, str) and (message := visible_text_error(reason, field="reason")):
        raise Invalid(message)
    text = reason.strip()[:300] if isinstance(reason, str) and reason.strip() else "the upload was interrupted"
    with transaction.atomic():
        # No notification: the uploader abandoned it in their own browser, which showed the failure; not news.
        abandoned = Image.objects.filter(pk=image.pk, status=Status.PENDING).update(
            status=Status.FAILED, error=f"The upload did not finish ({text}). Please try again."
        )
        if abandoned:
            prefixes = image_prefixes(image.original_key)
            storage_cleanup_schedule(prefixes=prefixes, reason="upload abandoned")
            later = (_ticket_end(image) - timezone.now()).total_seconds()
            storage_cleanup_schedule(
                prefixes=prefixes, reason="upload abandoned: bytes arriving late", delay_seconds=max(later, 1)
            )
    image.refresh_from_db()
    return image


def may_edit(image: Image, user: User, role: str | None) -> bool:
    """The rule for changing or deleting one photo: a board owner, or its uploader while still a member."""
    if not user.is_authenticated:
        return False
    return role == "owner" or (image.uploaded_by_id == user.pk and role is not None)


# An original's download link: long enough to start a large download, short enough not to be passed around.
DOWNLOAD_SECONDS = 300


def may_download_original(image: Image, user: User, role: str | None) -> bool:
    """The board's owners and the photo's uploader (who sent those very bytes); not other members."""
    return role == "owner" or (user.is_authenticated and image.uploaded_by_id == user.pk)


def image_original_link(*, user: User, image_id: Any) -> dict[str, Any]:
    """A presigned GET of a ready photo's original, for ``DOWNLOAD_SECONDS`` (the API's ``?original=1`` and the image
    page's "Download original"). NotFound for those who may not see the photo, Forbidden for other viewers."""
    image, role = image_get_visible(image_id=image_id, user=user)
    if image.status != Status.READY:
        raise Invalid(f"The photo is {image.status}: only a ready photo can be downloaded.")
    if not may_download_original(image, user, role):
        raise Forbidden("Only the board's owners and the photo's uploader can download its original.")
    # A presigned POST stays usable until it expires: bytes sent again with it replace the stored original after it
    # was processed. Only the bytes that were checked and processed are handed out.
    head = aws.client("s3").head_object(Bucket=settings.BOARDSITE_BUCKET, Key=image.original_key)
    if image.source_etag and head["ETag"].strip('"') != image.source_etag:
        raise Conflict("The stored original is not the one that was processed (it was sent again afterwards).")
    url = aws.client("s3").generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings.BOARDSITE_BUCKET,
            "Key": image.original_key,
            "ResponseContentDisposition": _attachment(image.filename),
        },
        ExpiresIn=DOWNLOAD_SECONDS,
    )
    return {
        "url": url,
        "expires_at": (timezone.now() + dt.timedelta(seconds=DOWNLOAD_SECONDS)).isoformat(),
        "filename": image.filename,
        "variant": "original",
        "content_type": image.content_type,
    }


def _attachment(filename: str) -> str:
    """The download's name: a plain ASCII one (no quotes, backslashes, ``;`` or ``%``, which some browsers decode),
    and the real one in RFC 5987's ``filename*`` for those that read it."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;%' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name or 'photo'}\"; filename*=UTF-8''{quote(filename, safe='')}"


def require_editor(image: Image, user: User, role: str | None) -> None:
    if not user.is_authenticated:
        raise Forbidden("Log in first.")
    if role == "owner":
        return
    if image.uploaded_by_id == user.pk and role is not None:
        return
    raise Forbidden("Only the uploader or a board owner can change this photo.")


@transaction.atomic
def image_caption_update(*, user: User, image_id: Any, caption: str) -> Image:
    image, role = image_get_visible(image_id=image_id, user=user)
    require_editor(image, user, role)
    image.caption = caption.strip() if isinstance(caption, str) else ""
    validated(image)
    image.save(update_fields=["caption"])
    return image


def image_delete(*, user: AbstractBaseUser, image_id: Any) -> int:
    """Remove the row and every S3 object of the image; returns the board id."""
    image, role = image_get_visible(image_id=image_id, user=user)
    require_editor(image, user, role)
    board_id = image.board_id
    with transaction.atomic():
        image_remove(image)
    return board_id


def image_remove(image: Image, *, run_now: bool = True) -> int:
    """Inside a transaction: delete the row and schedule every object of it for deletion (the single delete, and a
    batch's once its undo window has passed); the id of the deletion due now (tried after the commit if ``run_now``,
    else by whoever calls ``storage_cleanup_run`` next: the sweep at the latest)."""
    prefixes = image_prefixes(image.original_key)
    pending = image.status == Status.PENDING
    deleted = image.pk
    image.delete()
    DeletedImage.objects.get_or_create(id=deleted)  # a late event of its ticket must not bring it back
    due = storage_cleanup_schedule(prefixes=prefixes, reason="photo deleted", run_now=run_now)
    if pending:  # its ticket may still be used
        later = (_ticket_end(image) - timezone.now()).total_seconds()
        storage_cleanup_schedule(
            prefixes=prefixes, reason="photo deleted: bytes arriving late", delay_seconds=max(later, 1)
        )
    return due.pk


def board_objects_delete_later(*, board_id: int, pending: bool) -> None:
    """Inside the transaction deleting board ``board_id``: schedule its objects' deletion (and once more after its
    last tickets end, when ``pending`` uploads could still send bytes)."""
    storage_cleanup_schedule(prefixes=board_prefixes(board_id), reason="board deleted")
    if pending:
        delay = settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS
        storage_cleanup_schedule(
            prefixes=board_prefixes(board_id), reason="board deleted: bytes arriving late", delay_seconds=delay
        )


def board_deleting_receiver(sender: Any, *, board: Board, **kwargs: Any) -> None:
    """``boards.signals.board_deleting``: the board's objects go after the commit; pending uploads are counted now,
    while the board's photos still exist."""
    pending = board.images.filter(status=Status.PENDING).exists()
    board_objects_delete_later(board_id=board.pk, pending=pending)
