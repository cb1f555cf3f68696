"""Many photos at once: delete or move a selection in one request, with a few seconds to undo it.

Deleting hides the photos at once (``Image.deleting_until``: every selector leaves them out) and removes them, rows
and objects, exactly as a single delete does (``services.image_remove``) once the window has passed: when the page
says its undo toast closed (``photos_deleting_finish`` for that batch), else at the upload sweep's next run. A process
that dies in between leaves hidden rows that the sweep finishes; nothing is ever half deleted. Undo clears the mark.

Moving (owners of both boards only) copies the photos' objects under the target board's keys, because keys name the
board (``originals/<board>/…``, ``variants/<board>/…``: board deletion, the orphan sweep and the CDN's per-board
cookies all go by them), then repoints the rows in one transaction and schedules the old objects' deletion with their
CDN invalidation, as a delete does. A process that dies after copying leaves copies no row names, which the orphan
sweep removes. Undo moves them back the same way. Moved originals get a key without a runtime part, which no S3
trigger watches: a copy must not be processed again.

Single deletes notify nobody, and neither do these.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from boardsite import aws
from boardsite.boards.models import Board, Role
from boardsite.boards.selectors import User, board_get_visible, board_role
from boardsite.core.errors import Forbidden, Invalid, NotAuthenticated, NotFound
from boardsite.images.cleanup import image_prefixes, storage_cleanup_run, storage_cleanup_schedule
from boardsite.images.models import BatchAction, Image, PhotoBatch, Status, StorageCleanup, Variant
from boardsite.images.selectors import images_visible_on_board
from boardsite.images.services import image_remove, may_edit
from offload import aws as offload_aws
from offload.config import ORIGINALS_PREFIX
from offload.results import parse_key, variants_prefix

log = logging.getLogger(__name__)

NOT_MOVER = "Only someone who owns both boards can move photos between them."
# A page's finish request deletes this many photos' objects itself; the sweep the rest (within the web timeout).
FINISH_NOW_MAX = 50
# Objects are copied this many photos at a time when moving (botocore's pool holds 10 connections).
COPY_THREADS = 8


@dataclass(frozen=True)
class Selection:
    """What a request may act on: the photos of ``board`` among the ids it sent that the caller may delete (or move),
    and how many of the ids it sent were left out (others' photos, other boards, unknown: never told apart)."""

    board: Board
    images: list[Image]
    skipped: int
    target: Board | None = None


def _ids(image_ids: Any) -> list[uuid.UUID]:
    if not isinstance(image_ids, list) or not all(isinstance(i, str) for i in image_ids):
        raise Invalid("Give the photos' ids as a list.")
    distinct = list(dict.fromkeys(i.strip() for i in image_ids if i.strip()))
    if len(distinct) > settings.BULK_MAX_PHOTOS:
        raise Invalid(
            f"At most {settings.BULK_MAX_PHOTOS} photos at once: you chose {len(distinct)}. Choose fewer and repeat."
        )
    parsed: list[uuid.UUID] = []
    for raw in distinct:
        try:
            parsed.append(uuid.UUID(raw))
        except ValueError:
            continue  # malformed ids are left out like unknown ones
    if not distinct:
        raise Invalid("Choose at least one photo.")
    return parsed


def _owned_target(*, user: User, board: Board, target_id: Any) -> Board:
    if target_id in (None, ""):
        raise Invalid("Choose the board to move the photos to.")
    try:
        target = Board.objects.get(pk=int(target_id))
    except (Board.DoesNotExist, ValueError, TypeError):
        raise Forbidden(NOT_MOVER) from None  # the same answer as for someone else's board: nothing is revealed
    if board_role(board=target, user=user) != Role.OWNER:
        raise Forbidden(NOT_MOVER)
    if target.pk == board.pk:
        raise Invalid("The photos are on that board already.")
    return target


def photos_selected(*, user: User, board_id: Any, image_ids: Any, action: str, target_id: Any = None) -> Selection:
    """The photos a delete or move of ``image_ids`` on board ``board_id`` would act on (the confirmation page shows
    this, and the action itself acts on it). Deleting: what the single delete allows (``services.may_edit``: a
    board's owners any photo, a member their own). Moving: owners of both boards, ready photos only."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    if action not in BatchAction.values:
        raise Invalid(f"The action is one of: {', '.join(BatchAction.values)}.")
    board, role = board_get_visible(board_id=board_id, user=user)
    wanted = _ids(image_ids)
    target = None
    if action == BatchAction.MOVE:
        if role != Role.OWNER:
            raise Forbidden(NOT_MOVER)
        target = _owned_target(user=user, board=board, target_id=target_id)
    visible = images_visible_on_board(board=board, image_ids=wanted, user=user)
    if action == BatchAction.MOVE:
        # A photo still processing would be written under its old board's keys; a failed one has nothing to move.
        chosen = [i for i in visible if i.status == Status.READY]
    else:
        chosen = [i for i in visible if may_edit(i, user, role)]
    if not chosen:
        if action == BatchAction.DELETE:
            raise Invalid("None of the chosen photos can be deleted by you.")
        raise Invalid("None of the chosen photos can be moved: only processed photos move.")
    return Selection(board=board, images=chosen, skipped=len(wanted) - len(chosen), target=target)


def _undo_until(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.BULK_UNDO_SECONDS)


def photos_delete(*, user: User, board_id: Any, image_ids: Any) -> PhotoBatch:
    """Hide the chosen photos now and delete them once the undo window has passed (``photos_deleting_finish``)."""
    selection = photos_selected(user=user, board_id=board_id, image_ids=image_ids, action=BatchAction.DELETE)
    now = timezone.now()
    with transaction.atomic():
        batch = PhotoBatch.objects.create(
            user=user, action=BatchAction.DELETE, board=selection.board, created_at=now, undo_until=_undo_until(now)
        )
        ids = [i.pk for i in selection.images]
        # Only rows not already on their way out: a second batch must not extend (or take over) the first's window.
        rows = Image.objects.filter(pk__in=ids, board=selection.board, deleting_until__isnull=True)
        hidden = [str(pk) for pk in rows.values_list("pk", flat=True)]
        rows.update(deleting_until=batch.undo_until, deleting_batch=batch.pk)
        batch.image_ids = hidden
        batch.save(update_fields=["image_ids"])
    return batch


def photos_deleting_finish(
    *, now: dt.datetime | None = None, batch_id: Any = None, limit: int = 500, run_now_max: int = 0
) -> int:
    """Delete the hidden photos whose undo window has passed (all, or one batch's), as a single delete does. Called
    by the upload sweep (which so finishes what a dead process left, its storage cleanup following in the same run)
    and when a page's undo toast closes. Their objects' deletion is recorded for each; the first ``run_now_max`` are
    tried right after the commit, the rest by the sweep: a request deleting 500 photos' objects one by one (and
    invalidating each on the CDN) would outlast the web function's timeout."""
    now = now or timezone.now()
    due = Image.objects.filter(deleting_until__lte=now)
    if batch_id is not None:
        due = due.filter(deleting_batch=batch_id)
    cleanups: list[int] = []
    with transaction.atomic():
        # Locked and read again: an undo that cleared the mark first keeps its photos.
        for image in due.select_for_update().order_by("deleting_until")[:limit]:
            cleanups.append(image_remove(image, run_now=False))
        if cleanups and run_now_max:
            first = cleanups[:run_now_max]
            transaction.on_commit(lambda: storage_cleanup_run(ids=first, quick=True))
    return len(cleanups)


def photos_move(*, user: User, board_id: Any, image_ids: Any, target_id: Any) -> PhotoBatch:
    """Move the chosen photos to ``target_id`` (both boards owned by ``user``), undoable for a few seconds."""
    selection = photos_selected(
        user=user, board_id=board_id, image_ids=image_ids, action=BatchAction.MOVE, target_id=target_id
    )
    assert selection.target is not None
    _require_room(selection.target, len(selection.images))
    moved = _move(selection.images, source=selection.board, dest=selection.target)
    now = timezone.now()
    return PhotoBatch.objects.create(
        user=user,
        action=BatchAction.MOVE,
        board=selection.board,
        target=selection.target,
        image_ids=[str(i.pk) for i in moved],
        created_at=now,
        undo_until=_undo_until(now),
    )


def _require_room(board: Board, n: int) -> None:
    held = Image.objects.filter(board=board).exclude(status=Status.FAILED).count()
    if held + n > settings.BOARD_MAX_PHOTOS:
        raise Forbidden(
            f"“{board.title}” holds {held} photos; {n} more would go over the {settings.BOARD_MAX_PHOTOS} one board "
            "can hold."
        )


def photos_undo(*, user: User, batch_id: Any) -> tuple[PhotoBatch, int]:
    """Undo a batch within its window: deleted photos come back, moved ones go back. (batch, photos restored)."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    try:
        pk = uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound("No such action to undo.") from None
    batch = PhotoBatch.objects.select_related("board", "target").filter(pk=pk, user=user).first()
    if batch is None:
        raise NotFound("No such action to undo.")
    if batch.undone_at is not None:
        return batch, 0
    now = timezone.now()
    if now >= batch.undo_until:
        raise Invalid("Too late to undo: the time to undo it has passed.")
    if batch.action == BatchAction.DELETE:
        # Asked again, as for a move: someone removed from the board within the window acts on it no more.
        if board_role(board=batch.board, user=user) is None:
            raise Forbidden("You are no longer a member of this board.")
        with transaction.atomic():
            restored = Image.objects.filter(deleting_batch=batch.pk, deleting_until__gt=now).update(
                deleting_until=None, deleting_batch=None
            )
            batch.undone_at = now
            batch.save(update_fields=["undone_at"])
        return batch, restored
    assert batch.target is not None
    # The same rule as the move itself, asked again: ownership may have changed within the window.
    if any(board_role(board=b, user=user) != Role.OWNER for b in (batch.board, batch.target)):
        raise Forbidden(NOT_MOVER)
    images = list(
        Image.objects.filter(
            pk__in=batch.image_ids, board=batch.target, status=Status.READY, deleting_until__isnull=True
        ).select_related("board")
    )
    moved = _move(images, source=batch.target, dest=batch.board)
    PhotoBatch.objects.filter(pk=batch.pk).update(undone_at=now)
    batch.undone_at = now
    return batch, len(moved)


def moved_key(original_key: str, board_id: int) -> str:
    """``original_key`` on board ``board_id``: ``originals/<board>/<id>.<ext>``, without a runtime part, which no S3
    trigger watches (the copy is processed already)."""
    _, image_id = parse_key(original_key)
    return f"{ORIGINALS_PREFIX}{board_id}/{image_id}{PurePosixPath(original_key).suffix}"


def _copy_objects(s3: Any, image: Image, new_key: str) -> str | None:
    """Copy the image's original and everything under its variants prefix to ``new_key``'s places; the new
    original's ETag when the copied original is the one that was processed (``source_etag``), else None."""
    bucket = settings.BOARDSITE_BUCKET
    new_etag = None
    try:
        head = s3.head_object(Bucket=bucket, Key=image.original_key)
    except ClientError as exc:  # a missing original is moved as missing; anything else stops the move
        if not offload_aws.is_missing(exc):
            raise
        head = None
    if head is not None:
        copied = s3.copy_object(Bucket=bucket, Key=new_key, CopySource={"Bucket": bucket, "Key": image.original_key})
        # A copy of a multipart upload gets another ETag: keep the original downloadable (api.image_download checks).
        if image.source_etag and head["ETag"].strip('"') == image.source_etag:
            new_etag = copied["CopyObjectResult"]["ETag"].strip('"')
    old_prefix, new_prefix = variants_prefix(image.original_key), variants_prefix(new_key)
    for key in offload_aws.list_keys(bucket, old_prefix, s3):
        source = {"Bucket": bucket, "Key": key}
        s3.copy_object(Bucket=bucket, Key=new_prefix + key[len(old_prefix) :], CopySource=source)
    return new_etag


MOVED = "photo moved"


def _keep(places: set[str]) -> None:
    """Places a move is about to write again (a move undone, or photos moved back) are no longer garbage: an earlier
    move's cleanup still waiting there (its first attempt failed; the sweep would retry it) must not delete the new
    copies (found by the outside review). Before the copies are made, so no cleanup run can take them after."""
    with transaction.atomic():
        for row in StorageCleanup.objects.select_for_update().filter(reason=MOVED):
            kept = [p for p in row.prefixes if p not in places]
            if not kept:
                row.delete()
            elif len(kept) != len(row.prefixes):
                row.prefixes = kept
                row.save(update_fields=["prefixes"])


def _move(images: list[Image], *, source: Board, dest: Board) -> list[Image]:
    """Copy, then repoint the rows that are still where they were, then schedule the old objects' deletion."""
    s3 = aws.client("s3")
    plans = [(image, moved_key(image.original_key, dest.pk)) for image in images]
    _keep({place for _, key in plans for place in image_prefixes(key)})
    with ThreadPoolExecutor(max_workers=COPY_THREADS, thread_name_prefix="move") as pool:
        copied = pool.map(lambda plan: _copy_objects(s3, *plan), plans)
        etags = {image.pk: etag for (image, _), etag in zip(plans, copied, strict=True)}
    moved: list[Image] = []
    with transaction.atomic():
        rows = Image.objects.select_for_update().filter(
            pk__in=[i.pk for i in images], board=source, status=Status.READY, deleting_until__isnull=True
        )
        current = {row.pk: row for row in rows}
        variants: list[Variant] = []
        for image, new_key in plans:
            row = current.get(image.pk)
            if row is None or row.original_key != image.original_key:
                continue  # deleted or changed meanwhile: its copies are orphans, which the orphan sweep removes
            old_prefixes = image_prefixes(row.original_key)
            old_variants, new_variants = variants_prefix(row.original_key), variants_prefix(new_key)
            row.board, row.original_key = dest, new_key
            fields = ["board", "original_key"]
            if (etag := etags[image.pk]) is not None:
                row.source_etag = etag
                fields.append("source_etag")
            row.save(update_fields=fields)
            for v in row.variants.all():
                if v.key.startswith(old_variants):
                    v.key = new_variants + v.key[len(old_variants) :]
                    variants.append(v)
            # The old keys go, and the CDN forgets them, as after a delete.
            storage_cleanup_schedule(prefixes=old_prefixes, reason=MOVED)
            moved.append(row)
        Variant.objects.bulk_update(variants, ["key"])
    log.info("moved %d photos from board %s to %s", len(moved), source.pk, dest.pk)
    return moved


def photos_batch_finish(*, user: User, batch_id: Any) -> int:
    """Delete now what one's own batch hid, once its window has passed (the page's toast closed); 0 before."""
    try:
        pk = uuid.UUID(str(batch_id))
    except ValueError:
        raise NotFound("No such batch.") from None
    if not user.is_authenticated or not PhotoBatch.objects.filter(pk=pk, user=user).exists():
        raise NotFound("No such batch.")
    return photos_deleting_finish(batch_id=pk, run_now_max=FINISH_NOW_MAX)


def undo_offer(*, user: User, batch_id: Any) -> PhotoBatch | None:
    """A batch of ``user``'s that can still be undone (a board page offers its Undo without script), else None."""
    if not user.is_authenticated or not batch_id:
        return None
    try:
        pk = uuid.UUID(str(batch_id))
    except ValueError:
        return None
    return PhotoBatch.objects.filter(pk=pk, user=user, undone_at__isnull=True, undo_until__gt=timezone.now()).first()


def move_targets(*, user: User, board: Board) -> list[Board]:
    """The boards ``user`` could move this board's photos to: the others they own (none unless they own this one)."""
    if board_role(board=board, user=user) != Role.OWNER:
        return []
    return list(
        Board.objects.filter(memberships__user=user, memberships__role=Role.OWNER)
        .exclude(pk=board.pk)
        .order_by("title", "pk")
    )
