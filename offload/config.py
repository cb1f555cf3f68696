"""Configuration of the offload functions, read from the environment (what Lambda gives a function)."""

from __future__ import annotations

import os
from dataclasses import dataclass

MB = 1024 * 1024

# Content types the site issues upload tickets for, and the Pillow formats that may stand behind them.
ALLOWED_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/webp": ("WEBP",),
    "image/gif": ("GIF",),
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
}

# Queue names by the environment variable that overrides them.
QUEUE_DEFAULTS = {"BOARDSITE_UPLOADS_QUEUE": "boardsite-uploads", "BOARDSITE_RESULTS_QUEUE": "boardsite-image-results"}


def queue_name(setting: str) -> str:
    return os.environ.get(setting) or QUEUE_DEFAULTS[setting]


ORIGINALS_PREFIX = "originals/"
VARIANTS_PREFIX = "variants/"


@dataclass(frozen=True)
class OffloadConfig:
    bucket: str
    region: str
    endpoint_url: str | None
    uploads_queue: str
    results_queue: str
    max_upload_bytes: int
    max_pixels: int
    variant_sizes: dict[str, int]
    jpeg_quality: int


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _sizes(raw: str | None) -> dict[str, int]:
    """Parse ``name=px,name=px`` (long edge in pixels)."""
    if not raw:
        return {"thumb": 320, "medium": 960, "large": 1920}
    sizes = {}
    for part in raw.split(","):
        name, _, px = part.partition("=")
        if not name.strip() or not px.strip().isdigit():
            raise ValueError(f"BOARDSITE_VARIANTS: expected name=pixels, got {part!r}")
        sizes[name.strip()] = int(px)
    return sizes


def load() -> OffloadConfig:
    """Read the configuration now (not at import), so tests and runners may change the environment."""
    return OffloadConfig(
        bucket=os.environ.get("BOARDSITE_BUCKET", "boardsite-media"),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        uploads_queue=queue_name("BOARDSITE_UPLOADS_QUEUE"),
        results_queue=queue_name("BOARDSITE_RESULTS_QUEUE"),
        max_upload_bytes=_int("UPLOAD_MAX_BYTES", 25 * MB),
        max_pixels=_int("MAX_IMAGE_PIXELS", 50_000_000),
        variant_sizes=_sizes(os.environ.get("BOARDSITE_VARIANTS")),
        jpeg_quality=_int("BOARDSITE_JPEG_QUALITY", 85),
    )
