"""Reads about images, with the access rules applied; URLs are short-lived presigned GETs (the bucket is private)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse

from boardsite import aws
from boardsite.boards.models import Board
from boardsite.boards.selectors import User, board_get_visible
from boardsite.core.errors import NotFound
from boardsite.images.models import Image, Status


def image_get_visible(*, image_id: str | uuid.UUID, user: User) -> tuple[Image, str | None]:
    """The image and the caller's role on its board; NotFound when the caller may not see the board."""
    try:
        image = Image.objects.select_related("board").get(pk=uuid.UUID(str(image_id)))
    except (ValueError, Image.DoesNotExist):
        raise NotFound("No such image.") from None
    _, role = board_get_visible(board_id=image.board_id, user=user)
    if image.status == Status.FAILED and not _sees_failures(image, user, role):
        raise NotFound("No such image.")
    return image, role


def _sees_failures(image: Image, user: User, role: str | None) -> bool:
    return user.is_authenticated and (image.uploaded_by_id == user.pk or role == "owner")


def board_images(*, board: Board, user: User, role: str | None) -> list[Image]:
    """The board's images, newest first; failed uploads only for whoever uploaded them (and owners)."""
    images = board.images.prefetch_related("variants").order_by("-created_at")
    return [i for i in images if i.status != Status.FAILED or _sees_failures(i, user, role)]


def presigned_get(key: str) -> str:
    return aws.client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": settings.BOARDSITE_BUCKET, "Key": key}, ExpiresIn=settings.IMAGE_URL_SECONDS
    )


def image_variants(image: Image) -> dict[str, dict[str, Any]]:
    """Built from the variants recorded in the database, never by asking storage."""
    return {
        v.name: {"url": presigned_get(v.key), "width": v.width, "height": v.height, "format": v.format}
        for v in sorted(image.variants.all(), key=lambda v: v.width)
    }


def image_srcset(image: Image) -> str:
    return ", ".join(f"{presigned_get(v.key)} {v.width}w" for v in sorted(image.variants.all(), key=lambda v: v.width))


def image_payload(image: Image) -> dict[str, Any]:
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
        "variants": image_variants(image) if image.status == Status.READY else {},
        "page_url": reverse("image-detail", args=[image.id]),
    }
