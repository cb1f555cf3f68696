"""The one place tests make their data: users (with confirmed addresses), boards and memberships, photos in each
status with their variants, the processor's results, and the image files to upload. Fixtures in conftest.py use these;
tests import them from here (never from conftest).

Defaults describe the common case; every difference a test needs is a keyword.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterable, Mapping

from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image as PILImage

from boardsite.accounts.models import Profile
from boardsite.boards.models import Board, Membership, Role
from boardsite.boards.services import board_create
from boardsite.images.models import Image, Status, Variant
from offload import results

PASSWORD = "a-long-test-password"

# --- people, boards, memberships ------------------------------------------------------------------------------------


def make_user(username: str, *, password: str = PASSWORD, hasher: str | None = None, **fields):
    """A user. ``hasher`` stores the password with that hasher (e.g. ``"default"``: the site's own, for code that checks
    it outside the tests' fast MD5 setting) instead of the configured one."""
    users = get_user_model().objects
    if hasher is None:
        return users.create_user(username=username, password=password, **fields)
    from django.contrib.auth.hashers import make_password

    user = users.create_user(username=username, **fields)
    user.password = make_password(password, hasher=hasher)
    user.save(update_fields=["password"])
    return user


def confirm_address(user, address: str) -> None:
    """``address`` as ``user``'s email, confirmed (the notifications mail only confirmed addresses)."""
    user.email = address
    user.save(update_fields=["email"])
    Profile.objects.update_or_create(
        user=user, defaults={"email_key": address.lower(), "email_confirmed_at": timezone.now()}
    )


def add_member(board: Board, user, role: str) -> Membership:
    return Membership.objects.create(board=board, user=user, role=role)


def make_board(owner, *, title: str = "Holiday", visibility: str = "private", members: Mapping = ()) -> Board:
    """A board made the way the site makes it (its owner a member), with ``members`` ({user: role}) added."""
    board = board_create(user=owner, title=title, visibility=visibility)
    for user, role in dict(members).items():
        add_member(board, user, role)
    return board


def members(board: Board) -> list:
    """Everyone on ``board`` (the recipients a board's news goes to)."""
    return [m.user for m in board.memberships.select_related("user")]


def make_boards(owner, member, n: int, *, visibility: str = "private") -> None:
    """``n`` boards owned by ``owner`` and ``n`` shared with ``member`` (bulk: the page, not the set-up, is timed)."""
    boards = Board.objects.bulk_create(
        [Board(title=f"B{i}", visibility=visibility, created_by=owner) for i in range(2 * n)]
    )
    Membership.objects.bulk_create(
        [Membership(board=b, user=owner, role=Role.OWNER) for b in boards]
        + [Membership(board=b, user=member, role=Role.VIEWER) for b in boards[n:]]
    )


# --- photos ---------------------------------------------------------------------------------------------------------

# The variants a processed photo has, and the formats each comes in: (format, file extension in its key).
SIZES = ("thumb", "medium", "large")
WEBP_AND_JPEG = (("webp", "webp"), ("jpeg", "jpeg"))


def add_variant(
    image: Image, name: str, *, format: str, ext: str | None = None, size: tuple[int, int] = (10, 10), **fields
) -> Variant:
    key = f"variants/{image.board_id}/{image.pk}/{name}.{ext or format}"
    width, height = size
    return Variant.objects.create(image=image, name=name, key=key, width=width, height=height, format=format, **fields)


def add_thumb(image: Image) -> Variant:
    """The one variant a board's cover needs: a 320 px WebP thumbnail."""
    return add_variant(image, "thumb", format="webp", size=(320, 320), content_type="image/webp")


def make_image(
    board: Board,
    user,
    *,
    status: str = Status.READY,
    image_id: uuid.UUID | None = None,
    original_key: str | None = None,
    filename: str = "x.jpg",
    content_type: str = "image/jpeg",
    declared_size: int = 1,
    size: tuple[int, int] | None = (10, 10),
    variants: Iterable[str] | None = None,
    formats: Iterable[tuple[str, str]] = WEBP_AND_JPEG,
    created_at: dt.datetime | None = None,
    **fields,
) -> Image:
    """A photo row. By default a processed one as a board shows it: ready, 10 by 10, every size in WebP and JPEG.

    ``status`` pending/processing/failed (with ``error=``) make no variants unless ``variants`` names some;
    ``size=None`` leaves width and height unset (as before processing). The original's key is
    ``originals/<board>/<id>.jpg`` unless given. ``created_at`` back-dates the row (it is ``auto_now_add``)."""
    image_id = image_id or uuid.uuid4()
    image = Image.objects.create(
        id=image_id,
        board=board,
        uploaded_by=user,
        original_key=original_key or f"originals/{board.pk}/{image_id}.jpg",
        filename=filename,
        content_type=content_type,
        declared_size=declared_size,
        status=status,
        width=size[0] if size else None,
        height=size[1] if size else None,
        **fields,
    )
    if variants is None:
        variants = SIZES if status == Status.READY else ()
    for name in variants:
        for fmt, ext in formats:
            add_variant(image, name, format=fmt, ext=ext, size=size or (10, 10))
    if created_at is not None:
        Image.objects.filter(pk=image.pk).update(created_at=created_at)
        image.created_at = created_at
    return image


def stored_image(s3, bucket: str, board: Board, user, **fields) -> Image:
    """A ready photo with its original and its variants (and the processor's result.json) in S3."""
    image = make_image(board, user, **fields)
    put = s3.put_object(Bucket=bucket, Key=image.original_key, Body=b"original " + image.pk.bytes)
    Image.objects.filter(pk=image.pk).update(source_etag=put["ETag"].strip('"'))
    image.refresh_from_db()
    for v in image.variants.all():
        s3.put_object(Bucket=bucket, Key=v.key, Body=b"variant")
    s3.put_object(Bucket=bucket, Key=results.variants_prefix(image.original_key) + "result.json", Body=b"{}")
    return image


def processing_image(board: Board, user, *, declared_size: int = 10) -> Image:
    """A photo whose original is uploaded and being processed (what a result event settles)."""
    return make_image(board, user, status=Status.PROCESSING, filename="p.jpg", declared_size=declared_size, size=None)


def add_images(board: Board, user, n: int, *, status: str = "ready", start=None, ties: int = 3) -> list[Image]:
    """``n`` images in bulk, without variants; every ``ties`` of them share a created_at (the id breaks the tie).
    Their originals' keys are not derived from their ids (nothing is stored for them)."""
    start = start or timezone.now() - dt.timedelta(days=1)
    rows = [
        Image(
            id=uuid.uuid4(),
            board=board,
            uploaded_by=user,
            original_key=f"originals/{board.pk}/{uuid.uuid4()}.jpg",
            filename=f"{i}.jpg",
            content_type="image/jpeg",
            declared_size=1,
            status=status,
        )
        for i in range(n)
    ]
    Image.objects.bulk_create(rows)
    for i, row in enumerate(rows):
        row.created_at = start + dt.timedelta(seconds=i // ties)
    Image.objects.bulk_update(rows, ["created_at"])
    return rows


# --- the processor's results --------------------------------------------------------------------------------------


def ready_result(image: Image, *, width: int = 320) -> dict:
    """The result the image processor reports for ``image`` processed: one JPEG thumbnail ``width`` wide."""
    prefix = results.variants_prefix(image.original_key)
    return {
        "type": results.RESULT_TYPE,
        "status": "ready",
        "key": image.original_key,
        "board_id": str(image.board_id),
        "image_id": str(image.pk),
        "source_etag": "abc",
        "width": 640,
        "height": 480,
        "variants": [
            {"name": "thumb", "key": prefix + "thumb.jpg", "width": width, "height": 320, "format": "jpeg"},
        ],
    }


def failed_result(image: Image) -> dict:
    """The result the image processor reports for an upload that is not an image."""
    return {
        "type": results.RESULT_TYPE,
        "status": "failed",
        "error": "Not an image.",
        "key": image.original_key,
        "board_id": str(image.board_id),
        "image_id": str(image.pk),
        "variants": [],
    }


# --- image files ----------------------------------------------------------------------------------------------------


def jpeg_bytes(size=(1200, 800), orientation: int = 6, gps: bool = True, **save) -> bytes:
    """A JPEG with an EXIF orientation and a GPS block; left half red, right half blue (to check rotation)."""
    im = PILImage.new("RGB", size, (220, 30, 30))
    im.paste((30, 30, 220), (size[0] // 2, 0, size[0], size[1]))
    exif = im.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=90, **save)
    return buf.getvalue()


def image_bytes(fmt: str, *, size=(640, 480), colour=(30, 120, 200), **options: object) -> bytes:
    """A plain one-colour picture in ``fmt`` (any format Pillow writes), without metadata."""
    out = io.BytesIO()
    PILImage.new("RGB", size, colour).save(out, fmt, **options)
    return out.getvalue()
