"""Configuration of the offload functions, read from the environment (what Lambda gives a function)."""

from __future__ import annotations

import os
from dataclasses import dataclass

MB = 1024 * 1024

# Content types the site issues upload tickets for. The processor trusts none of them: the bytes' own signature
# decides how they are decoded (a JPEG saved as .png is still a photo; a PDF renamed .jpg is refused).
ALLOWED_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif")

# Output formats the processor can write (``BOARDSITE_IMAGE_FORMATS``), in the page's order of preference.
IMAGE_FORMATS = ("avif", "webp", "jpeg")
# The file name extension of each format's variants (offload/imaging.py writes them): what a CDN may serve.
FORMAT_EXTENSIONS = {"avif": "avif", "webp": "webp", "jpeg": "jpg"}

# The sender identity verified in SES (locally on moto by provisioning); the site's DEFAULT_FROM_EMAIL.
MAIL_FROM_DEFAULT = "boardsite@boardsite.example"
# The mail job's idempotency markers: one small object per message id, written create-only (If-None-Match: *).
MAIL_SENT_PREFIX = "mail-sent/"


def mail_from() -> str:
    return os.environ.get("BOARDSITE_MAIL_FROM") or MAIL_FROM_DEFAULT


ORIGINALS_PREFIX = "originals/"
VARIANTS_PREFIX = "variants/"
# Profile pictures go through the same upload path and processor job as photos, told apart by this segment after the
# prefix (and the runtime the upload was placed for): ``originals/[<runtime>/]avatars/<user>/<avatar id>.<ext>`` in,
# ``variants/avatars/<user>/<avatar id>/<name>.<ext>`` out. A board id is a number, so it can never be "avatars".
AVATARS_SEGMENT = "avatars"
# Shadow runs write here, one folder per pair (boardsite/control/shadow.py): no page shows it, the watch expires it.
SHADOW_PREFIX = "shadow/"
# The upload-ticket function's claims on each grant's tickets, and the site's revocations of grants
# (offload/functions/upload_ticket.py); the bucket's lifecycle rule expires them.
UPLOAD_GRANTS_PREFIX = "upload-grants/"
# The tag the upload form puts on every original (its XML: UNCONFIRMED_TAGGING in boardsite/images/services.py); the
# processor removes it, and the bucket's lifecycle rule (deploy/resources.py) expires originals still carrying it.
UNCONFIRMED_TAG = {"Key": "boardsite-state", "Value": "unconfirmed"}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    size: int  # long edge in px; the side of the square when ``square``
    square: bool = False


DEFAULT_VARIANTS = "thumb=320:square,medium=960,large=1920"
# An avatar's variants: centre squares only (``BOARDSITE_AVATAR_VARIANTS``), shown next to names at 1x and 2x.
AVATAR_MAX_BYTES_DEFAULT = 5 * MB  # a profile picture's size cap (the site's AVATAR_MAX_BYTES)
DEFAULT_AVATAR_VARIANTS = "s64=64:square,s128=128:square,s256=256:square"


@dataclass(frozen=True)
class OffloadConfig:
    bucket: str
    region: str
    endpoint_url: str | None
    max_upload_bytes: int
    avatar_max_bytes: int
    max_pixels: int
    variants: tuple[VariantSpec, ...]
    avatar_variants: tuple[VariantSpec, ...]
    image_formats: tuple[str, ...]
    max_frames: int
    jpeg_quality: int
    webp_quality: int


def _int(name: str, default: int, low: int = 1, high: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be between {low} and {high or 'any size'}, got {value}")
    return value


def parse_variants(raw: str | None, default: str = DEFAULT_VARIANTS) -> tuple[VariantSpec, ...]:
    """Parse ``name=px[:square],...``: px is the long edge, or the side of a centre-cropped square."""
    specs: dict[str, VariantSpec] = {}
    for part in (raw or default).split(","):
        name, _, rest = part.strip().partition("=")
        px, _, flag = rest.partition(":")
        name = name.strip()
        if not name.isidentifier() or not px.strip().isdigit() or int(px) < 1 or flag.strip() not in ("", "square"):
            raise ValueError(f"BOARDSITE_VARIANTS: expected name=pixels or name=pixels:square, got {part!r}")
        if name in specs:
            raise ValueError(f"BOARDSITE_VARIANTS: the name {name!r} is used twice")
        specs[name] = VariantSpec(name, int(px), square=flag.strip() == "square")
    return tuple(specs.values())


def parse_formats(raw: str | None) -> tuple[str, ...]:
    """Parse ``webp,jpeg``; kept in the page's order of preference, so the last one is the fallback."""
    names = [n.strip().lower() for n in (raw or "webp,jpeg").split(",") if n.strip()]
    unknown = [n for n in names if n not in IMAGE_FORMATS]
    if unknown or not names:
        raise ValueError(f"BOARDSITE_IMAGE_FORMATS: expected some of {', '.join(IMAGE_FORMATS)}, got {raw!r}")
    return tuple(n for n in IMAGE_FORMATS if n in names)


def load() -> OffloadConfig:
    """Read the configuration now (not at import), so tests and runners may change the environment."""
    return OffloadConfig(
        bucket=os.environ.get("BOARDSITE_BUCKET", "boardsite-media"),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        max_upload_bytes=_int("UPLOAD_MAX_BYTES", 25 * MB),
        avatar_max_bytes=_int("AVATAR_MAX_BYTES", AVATAR_MAX_BYTES_DEFAULT),
        max_pixels=_int("MAX_IMAGE_PIXELS", 50_000_000),
        variants=parse_variants(os.environ.get("BOARDSITE_VARIANTS")),
        avatar_variants=_avatar_variants(os.environ.get("BOARDSITE_AVATAR_VARIANTS")),
        image_formats=parse_formats(os.environ.get("BOARDSITE_IMAGE_FORMATS")),
        max_frames=_int("BOARDSITE_MAX_FRAMES", 1000),
        jpeg_quality=_int("BOARDSITE_JPEG_QUALITY", 85, high=100),
        webp_quality=_int("BOARDSITE_WEBP_QUALITY", 80, high=100),
    )


def _avatar_variants(raw: str | None) -> tuple[VariantSpec, ...]:
    specs = parse_variants(raw, DEFAULT_AVATAR_VARIANTS)
    if not all(spec.square for spec in specs):
        # The site lays avatars out as squares next to names: a non-square variant would be stretched.
        raise ValueError(f"BOARDSITE_AVATAR_VARIANTS: every avatar variant must be :square, got {raw!r}")
    return specs
