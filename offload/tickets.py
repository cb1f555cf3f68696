"""An upload ticket, as both runtimes of ``issue_upload_ticket`` make it: the checks of what a client asks to upload
(the same sentences from the site's view and from the function) and the presigned POST pinned to one key, type and
exact size. Never imports Django: the site (``boardsite/images/services.py``) and the function
(``offload/functions/upload_ticket.py``) both call these.
"""

from __future__ import annotations

import datetime as dt
from pathlib import PurePath
from typing import Any

from offload.config import ALLOWED_CONTENT_TYPES, UNCONFIRMED_TAG
from offload.text import visible_text_error

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
}
assert set(EXTENSIONS) == set(ALLOWED_CONTENT_TYPES)

# The S3 lifecycle rule (deploy/resources.py) expires originals still carrying this tag: the processor removes it.
UNCONFIRMED_TAGGING = "<Tagging><TagSet><Tag><Key>{Key}</Key><Value>{Value}</Value></Tag></TagSet></Tagging>".format(
    **UNCONFIRMED_TAG
)
GIB = 1024**3


class TicketRefused(Exception):
    """What a client asked for cannot be ticketed: the HTTP status and a sentence for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def clean_filename(filename: Any) -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise TicketRefused(400, "filename is required.")
    name = PurePath(filename.replace("\\", "/")).name.strip()
    if not name:
        raise TicketRefused(400, "filename is required.")
    if message := visible_text_error(name, field="file name"):
        raise TicketRefused(400, message)
    if len(name) > 255:  # shorten the stem, keep the extension people recognise the file by
        suffix = PurePath(name).suffix[:16]
        name = name[: 255 - len(suffix)].rstrip() + suffix
    return name


def size_text(n: float) -> str:
    if n >= 1024 * GIB:
        return "more than 1 TB"
    if n < 100 * 1024:
        return f"{n:,} bytes"
    return f"{n / GIB:.1f} GB" if n >= GIB / 10 else f"{n / 1048576:.1f} MB"


def sizes_text(n: float, limit: float) -> tuple[str, str]:
    """Two sizes for one sentence, in bytes where rounding would print them the same."""
    a, b = size_text(n), size_text(limit)
    return (a, b) if a != b else (f"{n:,} bytes", f"{limit:,} bytes")


def check_file(*, filename: Any, content_type: Any, size: Any, max_bytes: int) -> tuple[str, str, int]:
    """(file name, content type, size) of a ticket request, or ``TicketRefused`` saying what is wrong."""
    name = clean_filename(filename)
    if isinstance(content_type, str):
        content_type = content_type.strip().lower()  # media types are case-insensitive (RFC 9110)
    if content_type is None or content_type == "":
        raise TicketRefused(400, "content_type is required: the file's type, such as image/jpeg.")
    if not isinstance(content_type, str) or content_type not in EXTENSIONS:
        raise TicketRefused(
            400, f"Files of type {content_type!r} are not accepted; use JPEG, PNG, WebP, GIF or HEIC/HEIF."
        )
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise TicketRefused(400, "size must be a positive whole number of bytes.")
    if size > max_bytes:
        actual, limit = sizes_text(size, max_bytes)
        raise TicketRefused(413, f"{name} is {actual}; the limit is {limit}.")
    return name, content_type, size


def presigned_post(
    s3: Any,
    *,
    bucket: str,
    key: str,
    content_type: str,
    size: int,
    expires: int,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ticket's ``upload``: a presigned POST for exactly this key, type and size, server-side encrypted, tagged
    unconfirmed until processed; ``metadata`` (x-amz-meta-*) is pinned by the policy too, so the object carries
    values the uploader cannot change."""
    fields = {
        "Content-Type": content_type,
        "x-amz-server-side-encryption": "AES256",
        # The processor compares the stored size with this: an object of another size fails.
        "x-amz-meta-declared-size": str(size),
        "tagging": UNCONFIRMED_TAGGING,
        **{f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()},
    }
    conditions: list[Any] = [{name: value} for name, value in fields.items()]
    conditions.append(["content-length-range", size, size])  # exactly the declared size
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,  # botocore adds the exact {"key": key} condition
        Fields=fields,
        Conditions=conditions,
        ExpiresIn=expires,
    )
    return {
        "url": post["url"],
        "fields": post["fields"],
        "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires)).isoformat(),
    }
