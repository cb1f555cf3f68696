"""Writes about images: upload tickets, completion, captions, deletion. Access is checked here, every time."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import PurePath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from boardsite import aws
from boardsite.boards.selectors import User, board_get_visible, require_upload
from boardsite.core import jobs
from boardsite.core.errors import Forbidden, Invalid, NotAuthenticated, TooLarge, Unavailable, validated
from boardsite.images.models import Image, Status
from boardsite.images.selectors import image_get_visible
from offload import aws as offload_aws
from offload.config import ALLOWED_CONTENT_TYPES, ORIGINALS_PREFIX
from offload.events import s3_object_created_event
from offload.functions.process_image import variants_prefix

log = logging.getLogger(__name__)

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
}
assert set(EXTENSIONS) == set(ALLOWED_CONTENT_TYPES)


def _clean_filename(filename: Any) -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise Invalid("filename is required.")
    name = PurePath(filename.replace("\\", "/")).name.strip()
    if not name:
        raise Invalid("filename is required.")
    return name[:255]


def image_upload_start(
    *, user: User, board_id: Any, filename: Any, content_type: Any, size: Any
) -> tuple[Image, dict[str, Any]]:
    """Issue a one-time upload ticket: a presigned POST pinned to one key, type, size range and a short expiry."""
    if not user.is_authenticated:
        raise NotAuthenticated("Log in to upload photos.")
    if board_id is None:
        raise Invalid("board is required.")
    board, role = board_get_visible(board_id=board_id, user=user)
    require_upload(role)
    name = _clean_filename(filename)
    if not isinstance(content_type, str) or content_type not in EXTENSIONS:
        raise Invalid(f"Files of type {content_type!r} are not accepted; use JPEG, PNG, WebP, GIF or HEIC/HEIF.")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise Invalid("size must be a positive whole number of bytes.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise TooLarge(f"{name} is {size / 1048576:.1f} MB; the limit is {settings.UPLOAD_MAX_BYTES / 1048576:.0f} MB.")

    image_id = uuid.uuid4()
    key = f"{ORIGINALS_PREFIX}{board.pk}/{image_id}.{EXTENSIONS[content_type]}"
    image = Image(
        id=image_id,
        board=board,
        uploaded_by=user,
        original_key=key,
        filename=name,
        content_type=content_type,
        declared_size=size,
    )
    validated(image)
    expires = settings.UPLOAD_TICKET_SECONDS
    fields = {
        "Content-Type": content_type,
        "x-amz-server-side-encryption": "AES256",
        # The processor compares the stored size with this: an object larger than declared fails.
        "x-amz-meta-declared-size": str(size),
    }
    post = aws.client("s3").generate_presigned_post(
        Bucket=settings.BOARDSITE_BUCKET,
        Key=key,  # botocore adds the exact {"key": key} condition
        Fields=fields,
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, settings.UPLOAD_MAX_BYTES],
            {"x-amz-server-side-encryption": "AES256"},
            {"x-amz-meta-declared-size": str(size)},
        ],
        ExpiresIn=expires,
    )
    image.save()
    ticket = {
        "url": post["url"],
        "fields": post["fields"],
        "expires_at": (timezone.now() + dt.timedelta(seconds=expires)).isoformat(),
    }
    return image, ticket


def _uploaded_by(user: User, image_id: Any) -> Image:
    image, _ = image_get_visible(image_id=image_id, user=user)
    if not user.is_authenticated or image.uploaded_by_id != user.pk:
        raise Forbidden("Only the uploader can report an upload.")
    return image


def image_upload_complete(*, user: User, image_id: Any) -> Image:
    """The browser says its upload finished: start processing (unless S3's own event does, in lambda mode)."""
    image = _uploaded_by(user, image_id)
    if image.status != Status.PENDING:
        return image  # already processing or done (the S3 event may have been faster): nothing to do
    head = head_original(image)
    if head is None:
        raise Invalid("The upload has not arrived; send the file first.")
    # Exactly one caller moves the row on; a second report at the same time starts nothing.
    if Image.objects.filter(pk=image.pk, status=Status.PENDING).update(status=Status.PROCESSING) == 1:
        image_process_start(image=image, head=head)
    image.refresh_from_db()
    return image


def image_process_start(*, image: Image, head: dict[str, Any], redeliver: bool = False) -> None:
    """Run process_image for this image wherever its mode says (``redeliver``: also in lambda mode, where S3's own
    event was lost); back to pending if it cannot even start."""
    event = s3_object_created_event(
        bucket=settings.BOARDSITE_BUCKET, key=image.original_key, size=head["ContentLength"], etag=head["ETag"]
    )
    try:
        (jobs.redeliver if redeliver else jobs.dispatch)("process_image", event)
    except Exception:
        log.exception("could not start process_image for %s", image.pk)
        Image.objects.filter(pk=image.pk, status=Status.PROCESSING).update(status=Status.PENDING)
        raise Unavailable("Processing could not start just now; try again in a moment.") from None


def head_original(image: Image) -> dict[str, Any] | None:
    try:
        return aws.client("s3").head_object(Bucket=settings.BOARDSITE_BUCKET, Key=image.original_key)
    except ClientError as exc:
        if offload_aws.is_missing(exc):
            return None
        log.exception("HEAD %s failed", image.original_key)
        raise Unavailable("Storage did not answer; try again in a moment.") from None
    except BotoCoreError:
        log.exception("HEAD %s failed", image.original_key)
        raise Unavailable("Storage did not answer; try again in a moment.") from None


def image_upload_abandon(*, user: User, image_id: Any, reason: Any) -> Image:
    """The browser could not send the bytes: the row ends ``failed`` with the reason, instead of pending forever."""
    image = _uploaded_by(user, image_id)
    text = reason.strip()[:300] if isinstance(reason, str) and reason.strip() else "the upload was interrupted"
    Image.objects.filter(pk=image.pk, status=Status.PENDING).update(
        status=Status.FAILED, error=f"The upload did not finish ({text}). Please try again."
    )
    image.refresh_from_db()
    return image


def _require_editor(image: Image, user: User, role: str | None) -> None:
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
    _require_editor(image, user, role)
    image.caption = caption.strip() if isinstance(caption, str) else ""
    validated(image)
    image.save(update_fields=["caption"])
    return image


def image_delete(*, user: AbstractBaseUser, image_id: Any) -> int:
    """Remove the row and every S3 object of the image; returns the board id."""
    image, role = image_get_visible(image_id=image_id, user=user)
    _require_editor(image, user, role)
    board_id, key = image.board_id, image.original_key
    image.delete()
    image_objects_delete_quietly(original_keys=[key])
    return board_id


def image_objects_delete(*, original_keys: list[str]) -> int:
    """Delete originals and everything under their variants prefix; returns the number of objects removed."""
    s3, bucket = aws.client("s3"), settings.BOARDSITE_BUCKET
    keys = list(original_keys)
    for key in original_keys:
        keys += offload_aws.list_keys(bucket, variants_prefix(key), s3)
    offload_aws.delete_keys(bucket, keys, s3)
    return len(keys)


def image_objects_delete_quietly(*, original_keys: list[str]) -> None:
    """After the rows are gone: a storage failure leaves stray objects (logged), never a half-deleted page."""
    try:
        image_objects_delete(original_keys=original_keys)
    except (BotoCoreError, ClientError):
        log.exception("could not delete the S3 objects of %s; delete them by hand", original_keys)
