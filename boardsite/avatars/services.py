"""Profile pictures through the photos' pipeline: a ticket (presigned POST pinned to one key, type and exact size)
for ``originals/<runtime>/avatars/<user>/<id>.<ext>``, the same processor job started the same way in each mode
(``jobs.object_created``; S3's own event in lambda mode), its result applied by ``results.avatar_result_apply``.

One upload in flight per person: the ``Avatar`` row's one pending slot, taken under the row's lock. Whatever an
avatar stored goes through ``images.cleanup`` (recorded in the transaction, deleted after the commit, retried by
the sweep), so a replaced or removed avatar is never half deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import IO, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from boardsite import aws
from boardsite.accounts.models import Avatar
from boardsite.core import jobs
from boardsite.core.errors import Invalid, NotAuthenticated, NotFound, RateLimited, TooLarge, Unavailable
from boardsite.images.cleanup import image_prefixes, storage_cleanup_schedule

# ``stored_head``: the photos' HEAD with their answers for a missing object and for storage that does not answer.
from boardsite.images.services import TICKET_GRACE_SECONDS, stored_head, upload_form
from offload import tickets
from offload.config import AVATARS_SEGMENT, ORIGINALS_PREFIX, UNCONFIRMED_TAG

log = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser
PENDING, PROCESSING = "pending", "processing"


def avatar_prefixes(avatar_key: str) -> list[str]:
    """Every object one avatar upload stores: its original and its variants (and their result.json)."""
    return image_prefixes(avatar_key) if avatar_key else []


def _in_flight(avatar: Avatar, now: dt.datetime) -> bool:
    """Whether the slot is taken. A ticket never used frees it when it ends; a picture being processed holds it until
    its result is applied or the sweep gives up on it (``sweep.avatar_sweep_stale``), as a photo would."""
    if not avatar.pending_id or avatar.pending_started_at is None:
        return False
    if avatar.pending_state == PROCESSING:
        return True
    limit = settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS
    return now - avatar.pending_started_at < dt.timedelta(seconds=limit)


def _locked(user: AbstractBaseUser) -> Avatar:
    Avatar.objects.get_or_create(user=user)
    return Avatar.objects.select_for_update().get(user=user)


def avatar_upload_start(*, user: User, filename: Any, content_type: Any, size: Any) -> tuple[Avatar, dict[str, Any]]:
    """A ticket for one profile picture: 429 while another is in flight, 413 over ``AVATAR_MAX_BYTES``."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in to change your profile picture.")
    try:
        name, content_type, size = tickets.check_file(
            filename=filename, content_type=content_type, size=size, max_bytes=settings.AVATAR_MAX_BYTES
        )
    except tickets.TicketRefused as exc:
        raise (TooLarge if exc.status == 413 else Invalid)(f"Profile picture: {exc.message}") from None
    avatar_id = uuid.uuid4()
    key = jobs.place(f"{ORIGINALS_PREFIX}{AVATARS_SEGMENT}/{user.pk}/{avatar_id}.{tickets.EXTENSIONS[content_type]}")
    with transaction.atomic():
        avatar = _locked(user)
        now = timezone.now()
        if _in_flight(avatar, now):
            wait = settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS
            wait -= int((now - avatar.pending_started_at).total_seconds())  # type: ignore[operator]
            raise RateLimited(
                "A profile picture of yours is still being uploaded or processed; wait for it to finish.",
                retry_after=max(1, min(wait, 60)),
            )
        if avatar.pending_key:
            # The slot's earlier ticket ended unused or its processing never reported: nothing of it may stay.
            storage_cleanup_schedule(prefixes=avatar_prefixes(avatar.pending_key), reason="avatar upload expired")
        avatar.pending_id, avatar.pending_key, avatar.pending_state = avatar_id, key, PENDING
        avatar.pending_started_at, avatar.pending_attempts = now, 0
        avatar.save()
    ticket = upload_form(key=key, content_type=content_type, size=size)
    log.info("avatar ticket for user %s: %s (%s)", user.pk, key, name)
    return avatar, ticket


def _mine(user: User, avatar_id: Any) -> Avatar:
    if not user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    avatar = Avatar.objects.filter(user=user).first()
    if avatar is None or avatar.pending_id is None or str(avatar.pending_id) != str(avatar_id):
        raise NotFound("No such profile picture upload (it finished, or another replaced it).")
    return avatar


def avatar_upload_complete(*, user: User, avatar_id: Any) -> Avatar:
    """The browser says its bytes arrived: start the processor on them in its mode (lambda: S3's event already did).
    An upload no longer in flight answers with the avatar as it is: in lambda mode S3's event often has the picture
    processed and shown (or refused) before the page reports (found by the outside review)."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    try:
        uuid.UUID(str(avatar_id))
    except ValueError:
        raise NotFound("No such profile picture upload.") from None
    avatar = Avatar.objects.filter(user=user).first()
    if avatar is None:
        raise NotFound("No such profile picture upload.")
    if avatar.pending_id is None or str(avatar.pending_id) != str(avatar_id) or avatar.pending_state != PENDING:
        return avatar
    head = stored_head(avatar.pending_key)
    if head is None:
        raise Invalid("The upload has not arrived; send the file first.")
    moved = Avatar.objects.filter(pk=avatar.pk, pending_id=avatar.pending_id, pending_state=PENDING).update(
        pending_state=PROCESSING, pending_started_at=timezone.now(), pending_attempts=1
    )
    if moved:
        try:
            jobs.object_created(avatar.pending_key, size=head["ContentLength"], etag=head["ETag"])
        except Exception:
            log.exception("could not start processing avatar %s", avatar.pending_id)
            Avatar.objects.filter(pk=avatar.pk, pending_id=avatar.pending_id).update(
                pending_state=PENDING, pending_attempts=0
            )
            raise Unavailable("Processing could not start just now; try again in a moment.") from None
    avatar.refresh_from_db()
    return avatar


def avatar_upload_abandon(*, user: User, avatar_id: Any) -> Avatar:
    """The browser could not send the bytes: free the slot and delete whatever did arrive (now, and once its ticket
    has ended, as bytes may still land until then)."""
    avatar = _mine(user, avatar_id)
    with transaction.atomic():
        avatar = Avatar.objects.select_for_update().get(pk=avatar.pk)
        if str(avatar.pending_id) == str(avatar_id) and avatar.pending_state == PENDING:
            prefixes = avatar_prefixes(avatar.pending_key)
            storage_cleanup_schedule(prefixes=prefixes, reason="avatar upload abandoned")
            storage_cleanup_schedule(
                prefixes=prefixes,
                reason="avatar upload abandoned: bytes arriving late",
                delay_seconds=settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS,
            )
            slot_free(avatar)
            avatar.save()
    return avatar


def slot_free(avatar: Avatar) -> None:
    """Empty the upload slot (the caller saves the row)."""
    avatar.pending_id, avatar.pending_key, avatar.pending_state = None, "", ""
    avatar.pending_started_at, avatar.pending_attempts = None, 0


def avatar_upload_end(*, avatar: Avatar, reason: str) -> bool:
    """End the upload in flight of ``avatar`` (as it was read) with ``reason`` shown on the profile page, deleting
    what it stored; the picture on show stays. False when the slot moved on meanwhile."""
    with transaction.atomic():
        row = Avatar.objects.select_for_update().get(pk=avatar.pk)
        if row.pending_id != avatar.pending_id or row.pending_key != avatar.pending_key or not row.pending_key:
            return False
        storage_cleanup_schedule(prefixes=avatar_prefixes(row.pending_key), reason="avatar upload ended")
        row.error = reason
        slot_free(row)
        row.save()
    return True


def avatar_upload_file(*, user: User, file: IO[bytes], filename: str, content_type: str, size: int) -> Avatar:
    """Without script: the site takes the file and stores it where a ticket would have put it, with what the
    ticket's form pins (declared size, type, encryption, the unconfirmed tag), then reports it as the page does. The
    processor checks it exactly as it checks a browser's upload."""
    avatar, _ = avatar_upload_start(user=user, filename=filename, content_type=content_type, size=size)
    try:
        aws.client("s3").put_object(
            Bucket=settings.BOARDSITE_BUCKET,
            Key=avatar.pending_key,
            Body=file,
            ContentLength=size,
            ContentType=content_type.strip().lower(),
            ServerSideEncryption="AES256",
            Metadata={"declared-size": str(size)},
            Tagging=urlencode({UNCONFIRMED_TAG["Key"]: UNCONFIRMED_TAG["Value"]}),
        )
    except Exception:
        log.exception("storing avatar %s failed", avatar.pending_id)
        avatar_upload_abandon(user=user, avatar_id=avatar.pending_id)
        raise Unavailable("Storage did not answer; try again in a moment.") from None
    return avatar_upload_complete(user=user, avatar_id=avatar.pending_id)


def avatar_remove(*, user: User) -> None:
    """Show initials again; the picture's stored objects go after the commit (retried until they do)."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    with transaction.atomic():
        avatar = _locked(user)
        if avatar.original_key:
            storage_cleanup_schedule(prefixes=avatar_prefixes(avatar.original_key), reason="avatar removed")
        avatar.original_key, avatar.variants, avatar.error = "", [], ""
        avatar.save()


def avatar_deleted_receiver(sender: Any, *, instance: Avatar, **kwargs: Any) -> None:
    """``post_delete`` of an ``Avatar`` (its account deleted: a cascade): its stored objects go after the commit, the
    upload in flight's too (once more after its ticket ends, as bytes may still land until then)."""
    for key in filter(None, (instance.original_key, instance.pending_key)):
        storage_cleanup_schedule(prefixes=avatar_prefixes(key), reason="account deleted")
    if instance.pending_key and instance.pending_state == PENDING:
        storage_cleanup_schedule(
            prefixes=avatar_prefixes(instance.pending_key),
            reason="account deleted: bytes arriving late",
            delay_seconds=settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS,
        )
