"""Pillow work for the image processor: verify, orient, resize, strip metadata. Plain bytes in, plain bytes out."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

try:  # HEIC/HEIF from phones
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a pinned dependency
    pillow_heif = None

# Never decode silently-truncated files.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# The transposition that makes an image with this EXIF orientation upright (as ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


class RejectedImage(Exception):
    """The bytes are not an image we accept; the message is meant for the person who uploaded them."""


@dataclass(frozen=True)
class Variant:
    name: str
    width: int
    height: int
    format: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Processed:
    width: int  # upright dimensions of the original
    height: int
    format: str
    variants: list[Variant]


def _megapixels(n: int) -> str:
    return f"{n / 1_000_000:.0f} megapixels"


def _open(data: bytes, *, max_pixels: int, formats: tuple[str, ...]) -> Image.Image:
    if not data:
        raise RejectedImage("The file is empty.")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; refuse there too, before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedImage(f"The image has too many pixels (the limit is {_megapixels(max_pixels)}).") from None
    except UnidentifiedImageError:
        raise RejectedImage("The file is not an image we can read (JPEG, PNG, WebP, GIF or HEIC).") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if im.format not in formats:
        raise RejectedImage(
            f"The file is a {im.format or 'unknown'} image but was uploaded as {'/'.join(formats)}; "
            "upload it with its real type."
        )
    width, height = im.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise RejectedImage(f"The image is {width}×{height} pixels, more than the {_megapixels(max_pixels)} limit.")
    return im


def _flatten(im: Image.Image) -> Image.Image:
    """RGB for JPEG output; transparent areas become white rather than black."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if im.mode == "CMYK" or im.mode != "RGB":
        return im.convert("RGB")
    return im


def make_variants(
    data: bytes, *, formats: tuple[str, ...], max_pixels: int, sizes: dict[str, int], quality: int = 85
) -> Processed:
    """Verify ``data`` really is an acceptable image and make one JPEG per entry of ``sizes`` (long edge, px).

    Variants never upscale, are upright (EXIF orientation applied) and carry no metadata at all.
    """
    im = _open(data, max_pixels=max_pixels, formats=formats)
    source_format = im.format
    orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    transpose = _TRANSPOSE.get(orientation)
    width, height = im.size
    largest = max(sizes.values())
    if source_format == "JPEG" or source_format == "MPO":
        # Let the JPEG decoder shrink by 1/2, 1/4 or 1/8 while decoding when the largest variant allows it.
        im.draft("RGB", (largest, largest))
    try:
        im.load()  # first frame only for animations
    except (OSError, SyntaxError, ValueError) as exc:
        raise RejectedImage(f"The file is incomplete or corrupt and cannot be decoded ({exc}).") from None
    current = _flatten(im)
    current.info = {}

    variants: list[Variant] = []
    # Cascade: each variant is made from the previous (larger) one; rotate only the small outputs.
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        if max(current.size) > size:
            current = current.copy()
            current.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = current.transpose(transpose) if transpose else current
        buf = io.BytesIO()
        # No exif=/icc_profile=: the variant carries no EXIF, GPS or maker notes.
        out.save(buf, "JPEG", quality=quality)
        variants.append(Variant(name, out.width, out.height, "jpeg", "image/jpeg", buf.getvalue()))
    im.close()

    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Processed(width=width, height=height, format=source_format, variants=variants)
