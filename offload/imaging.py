"""Pillow work for the image processor: verify, colour-manage, resize, orient, strip metadata, encode.

Plain bytes in, plain bytes out; no AWS and no Django here. What makes it fast (measured in ``bench/resize.py``):
the JPEG decoder shrinks while decoding (``draft``) down to what the largest variant needs, each variant is made
from the previous one (a cascade) in the stored orientation, only the small outputs are rotated, and the encoder
settings are chosen by measurement (see ``ENCODERS``).

Animations (GIF, WebP, APNG) become still images of their first frame; files with more frames than the limit are
refused, so a 10 000-frame GIF cannot tie up a worker.
"""

from __future__ import annotations

import base64
import datetime
import io
import math
import re
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from PIL import (
    GifImagePlugin,  # noqa: F401 - each plugin registers its format with Image; see _plugins_registered below
    Image,
    ImageChops,
    ImageFile,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401
)

from offload.config import FORMAT_EXTENSIONS, IMAGE_FORMATS, OffloadConfig, VariantSpec, parse_variants

if TYPE_CHECKING:
    from PIL import ImageCms

# Never decode silently-truncated files.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# The only decoders we let near uploaded bytes; the bytes' own signature picks one (never the name or declared type).
DECODERS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")  # the JPEG decoder also reads MPO (multi-picture JPEG)
_DECODERS_NO_HEIF = tuple(d for d in DECODERS if d != "HEIF")
ANIMATED = ("GIF", "WEBP", "PNG")
READABLE = "JPEG, PNG, WebP, GIF or HEIC"

_heif_registered = False


def _decoders_for(data: bytes) -> tuple[str, ...]:
    """The decoders to try on ``data``. pillow-heif (HEIC/HEIF from phones) is imported and registered on the first
    ISO-BMFF container (``ftyp`` at offset 4) only: it maps libheif, libde265 and libx265 (about 30 ms CPU and 7 MB
    RSS here) in a process that may never see a HEIC. Until then HEIF is left out (Pillow raises on a format it does
    not know); pillow-heif's own opener decides by the brand whether it can read the file.
    """
    global _heif_registered
    if not _heif_registered and data[4:8] == b"ftyp":
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True
    return DECODERS if _heif_registered else _DECODERS_NO_HEIF


# Pillow's Image.init() imports all of its ~45 format plugins (~50 ms CPU here, the largest part of this module's cold
# cost) whenever it is asked to open or save a format no imported plugin has registered: with WebP in DECODERS and in
# the encoders, that is every first image. The plugins we decode and encode with are imported above instead (AVIF, an
# opt-in output format, still goes through Image.init()); tests/offload/test_coldstart_imports.py checks that processing
# a photo never calls it.
def _plugins_registered() -> bool:
    return all(d in Image.OPEN for d in _DECODERS_NO_HEIF) and all(f in Image.SAVE for f in ("JPEG", "WEBP"))


assert _plugins_registered()


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


# ImageCms (LittleCMS) and offload.webp_shrink (ctypes) are imported when a photo needs them, not with this module:
# most photos carry no profile or an sRGB one and are not WebP, and each cold start would pay ~5 ms CPU for them
# (tests/offload/test_coldstart_imports.py keeps them off the cold path of a plain JPEG).
@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    """sRGB's profile, 588 bytes; embedded in variants whose source carried its own profile."""
    return _srgb().tobytes()


def __getattr__(name: str) -> Any:
    if name == "SRGB_ICC":  # the module attribute tests and callers read, made on first use
        return _srgb_icc()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PLACEHOLDER_EDGE = 16  # px on the long edge: a ~200-byte WebP the browser stretches while the real image loads


class RejectedImage(Exception):
    """The bytes are not an image we accept; the message is meant for the person who uploaded them."""


@dataclass(frozen=True)
class Encoder:
    pillow_format: str
    content_type: str
    extension: str
    options: dict[str, Any]


# Chosen by measurement on a 1920x1440 photo, one thread (README, "Performance"): WebP method 2 is the knee
# (method 0: -42 % time, +11 % bytes; method 4, the default: 2.3x the time for -5 % bytes). JPEG is the fallback for
# old browsers only: baseline q85, no optimize/progressive (2-5x the time for 3-7 % fewer bytes). AVIF (speed 10, one
# thread) is about 22 % smaller than WebP at the same PSNR but takes 1.35x WebP method 2's time; it is offered, not the
# default: Lambda bills the time, and every browser that reads AVIF also reads WebP.
ENCODERS: dict[str, Encoder] = {
    "webp": Encoder("WEBP", "image/webp", "webp", {"quality": 80, "method": 2}),
    "jpeg": Encoder("JPEG", "image/jpeg", "jpg", {"quality": 85}),
    "avif": Encoder("AVIF", "image/avif", "avif", {"quality": 55, "speed": 10, "max_threads": 1}),
}
assert set(ENCODERS) == set(IMAGE_FORMATS)
assert {f: e.extension for f, e in ENCODERS.items()} == FORMAT_EXTENSIONS


@dataclass(frozen=True)
class Options:
    variants: tuple[VariantSpec, ...] = parse_variants(None)
    formats: tuple[str, ...] = ("webp", "jpeg")
    max_pixels: int = 50_000_000
    max_frames: int = 1000
    jpeg_quality: int = ENCODERS["jpeg"].options["quality"]
    webp_quality: int = ENCODERS["webp"].options["quality"]

    @classmethod
    def from_config(cls, cfg: OffloadConfig) -> Options:
        """The options a function's configuration (its environment) asks for."""
        return cls(
            variants=cfg.variants,
            formats=cfg.image_formats,
            max_pixels=cfg.max_pixels,
            max_frames=cfg.max_frames,
            jpeg_quality=cfg.jpeg_quality,
            webp_quality=cfg.webp_quality,
        )

    def encoder_options(self, fmt: str) -> dict[str, Any]:
        options = dict(ENCODERS[fmt].options)
        if fmt == "jpeg":
            options["quality"] = self.jpeg_quality
        elif fmt == "webp":
            options["quality"] = self.webp_quality
        return options


@dataclass(frozen=True)
class Variant:
    name: str
    width: int
    height: int
    format: str  # key of ENCODERS
    content_type: str
    extension: str
    data: bytes


@dataclass(frozen=True)
class Processed:
    width: int  # upright dimensions of the original
    height: int
    format: str  # what the bytes really are (Pillow's name), whatever the upload declared
    frames: int
    variants: list[Variant]
    placeholder: str  # data: URI of a tiny WebP
    dominant_color: str  # "#rrggbb"
    color_converted: bool = False  # the source carried a non-sRGB profile (or was CMYK) and was converted
    timings_ms: dict[str, float] = field(default_factory=dict)
    taken_at: str | None = None  # EXIF's DateTimeOriginal as ISO 8601 (with its offset when the camera wrote one)


# --- size arithmetic (pure; property-tested in tests/offload/test_imaging_sizes.py) --------------------------------


def fit_within(width: int, height: int, edge: int) -> tuple[int, int]:
    """The size of ``width`` x ``height`` scaled so its long edge is at most ``edge``; never larger than the source."""
    if width <= edge and height <= edge:
        return width, height
    if width >= height:
        return edge, max(1, round(height * edge / width))
    return max(1, round(width * edge / height)), edge


def square_side(width: int, height: int, edge: int) -> int:
    """The side of a square crop-and-scale: ``edge`` unless the source's short side is smaller (no upscaling)."""
    return min(edge, width, height)


def center_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square inside ``width`` x ``height``, as a (left, top, right, bottom) box."""
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def scale_needed(width: int, height: int, specs: Iterable[VariantSpec]) -> float:
    """The smallest scale of the source that still covers every variant (1.0 when one of them is full size)."""
    scale = 0.0
    for spec in specs:
        if spec.square:
            scale = max(scale, square_side(width, height, spec.size) / min(width, height))
        else:
            target_w, target_h = fit_within(width, height, spec.size)
            scale = max(scale, target_w / width, target_h / height)
    return min(scale, 1.0)


# --- decoding --------------------------------------------------------------------------------------------------------


def _megapixels(n: int) -> str:
    return f"{n / 1_000_000:.0f} megapixels"


def open_image(data: bytes, *, max_pixels: int, max_frames: int) -> tuple[Image.Image, int]:
    """Identify ``data`` by its signature and check its header; no pixel is decoded yet. Returns the image and its
    frame count."""
    if not data:
        raise RejectedImage("The file is empty.")
    decoders = _decoders_for(data)
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x the limit; refuse there too, before any pixel is decoded.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=decoders)
            width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RejectedImage(f"The image has too many pixels (the limit is {_megapixels(max_pixels)}).") from None
    except UnidentifiedImageError:
        raise RejectedImage(f"The file is not an image we can read ({READABLE}).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a recognised signature with a broken header
        raise RejectedImage(f"The file is incomplete or corrupt and cannot be decoded ({exc}).") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if width < 1 or height < 1 or width * height > max_pixels:
        raise RejectedImage(f"The image is {width}×{height} pixels, more than the {_megapixels(max_pixels)} limit.")
    frames = _frame_count(im)
    if frames > max_frames:
        raise RejectedImage(f"The animation has {frames} frames, more than the {max_frames} frame limit.")
    return im, frames


def _frame_count(im: Image.Image) -> int:
    """Frames of an animation, read from the container without decoding them; 1 for the other formats (HEIF:
    its primary image is the photo)."""
    if im.format not in ANIMATED:
        return 1
    try:
        return int(getattr(im, "n_frames", 1))
    except (OSError, EOFError, SyntaxError, ValueError) as exc:
        raise RejectedImage(f"The animation is incomplete or corrupt and cannot be decoded ({exc}).") from None


def _to_srgb(im: Image.Image) -> tuple[Image.Image, bool]:
    """RGB (or L) in sRGB, alpha flattened onto white. True when a colour profile or CMYK was converted."""
    icc = im.info.get("icc_profile")
    converted = False
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: Pillow's plain convert clips at 255 (a white image); scale to 8 bits instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        icc = None  # a grey profile on 16-bit data is rare; treat as sRGB grey
    elif im.mode == "1":
        im = im.convert("L")
    alpha = None
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        alpha = im.getchannel("A")
        im = im.convert("RGB")
    elif im.mode == "P":
        im = im.convert("RGB")
    if icc and im.mode in ("RGB", "CMYK", "L"):
        from PIL import ImageCms

        try:
            if im.mode == "CMYK" or not _is_srgb(icc, im.mode):
                source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                im = ImageCms.profileToProfile(im, source, _srgb(), outputMode="RGB")  # lcms has no grey sRGB
                converted = True
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unreadable or mismatched profile: use the pixels as they are (what browsers do)
    if im.mode == "CMYK":  # no usable profile: Pillow's plain conversion (Adobe-inverted CMYK is handled on decode)
        im = im.convert("RGB")
        converted = True
    elif im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    if alpha is not None:
        background = Image.new(im.mode, im.size, 255 if im.mode == "L" else (255, 255, 255))
        background.paste(im, mask=alpha)
        im = background
    return im, converted


@lru_cache(maxsize=64)
def _is_srgb(icc: bytes, mode: str) -> bool:
    """Does this profile leave colours as they are in sRGB? Tested on a colour grid, not trusted by its name (a
    linear profile called "sRGB-elle-V2-g10" is not sRGB). Cached: phones embed the same few profiles every time."""
    if mode == "L":
        probe = Image.linear_gradient("L").resize((64, 1))
        expected = probe.convert("RGB")
    else:
        levels = (0, 64, 128, 192, 255)
        probe = Image.new("RGB", (len(levels) ** 3, 1))
        probe.putdata([(r, g, b) for r in levels for g in levels for b in levels])
        expected = probe
    from PIL import ImageCms

    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    converted = ImageCms.profileToProfile(probe, source, _srgb(), outputMode="RGB")
    return max(high for _, high in ImageChops.difference(converted, expected).getextrema()) <= 2


# --- the processor -------------------------------------------------------------------------------------------------


def make_variants(data: bytes, options: Options | None = None) -> Processed:
    """Verify ``data`` really is an acceptable image and make every variant of ``options`` in every format.

    Variants never upscale, are upright (orientation applied), sRGB, and carry no EXIF, XMP, IPTC or GPS.
    """
    options = options or Options()
    timer = _Timer()
    im, frames = open_image(data, max_pixels=options.max_pixels, max_frames=options.max_frames)
    source_format = im.format or "unknown"
    width, height = im.size
    scale = scale_needed(width, height, options.variants)
    if source_format in ("JPEG", "MPO") and scale <= 0.5:
        # The JPEG decoder shrinks by 1/2, 1/4 or 1/8 while decoding, never below the size asked for.
        im.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
    shrunk = None
    if source_format == "WEBP" and frames == 1 and scale < 1:
        # libwebp scales while decoding: a few MB instead of ~400 MB for a 24 MP WebP (see offload/webp_shrink.py).
        from offload import webp_shrink

        shrunk = webp_shrink.decode_scaled(data, (math.ceil(width * scale), math.ceil(height * scale)))
    if shrunk is not None:
        orientation, taken_at = _orientation(im), _taken_at(im)
        shrunk.info = {k: v for k, v in im.info.items() if k == "icc_profile"}
        im.close()
        im = shrunk
    else:
        try:
            im.load()  # the first frame only, for animations
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise RejectedImage(f"The file is incomplete or corrupt and cannot be decoded ({exc}).") from None
        # After load(), never before: for PNG, getexif() decodes the whole image looking for an eXIf chunk and
        # swallowing that decoder's error would let a corrupt file through half black.
        orientation, taken_at = _orientation(im), _taken_at(im)
    transpose = _TRANSPOSE.get(orientation)
    timer.lap("decode")
    decoded, converted = _to_srgb(im)
    if decoded is not im:
        im.close()
    # Resizes and transposes copy ``info``, and some encoders read it (JPEG writes info["comment"]): drop it all.
    decoded.info = {}
    timer.lap("colour")

    variants: list[Variant] = []
    made: list[Image.Image] = [decoded]  # largest first; each output is cut from the smallest one that covers it
    encoded: dict[int, list[Variant]] = {}  # by id() of the output: a small original's sizes coincide
    outputs: list[Image.Image] = []  # every output stays alive until the end, so no id() is ever reused
    for spec in sorted(options.variants, key=lambda s: (-s.size, s.square)):
        out = _resize(made, width, height, spec)
        outputs.append(out)
        timer.lap("resize")
        if id(out) in encoded:  # same pixels as a larger variant (the original is small): same bytes, no re-encode
            variants += [replace(v, name=spec.name) for v in encoded[id(out)]]
            continue
        if not spec.square:
            made.append(out)
        upright = out.transpose(transpose) if transpose is not None else out
        encoded[id(out)] = _encode(upright, spec.name, options, tag_srgb=converted)
        variants += encoded[id(out)]
        timer.lap("encode")
    placeholder, dominant = _placeholder(made[-1], transpose)
    timer.lap("placeholder")
    for image in made:
        image.close()

    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Processed(
        width=width,
        height=height,
        format=source_format,
        frames=frames,
        variants=variants,
        placeholder=placeholder,
        dominant_color=dominant,
        color_converted=converted,
        timings_ms=timer.laps,
        taken_at=taken_at,
    )


def _orientation(im: Image.Image) -> int:
    try:
        orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not sink the photo: treat it as upright
        return 1
    return orientation if orientation in _TRANSPOSE else 1


_EXIF_IFD = 0x8769
_DATE_TAGS = ((0x9003, 0x9011), (0x9004, 0x9012))  # DateTimeOriginal / Digitized, each with its OffsetTime tag
_IFD0_DATETIME = 0x0132
_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def _taken_at(im: Image.Image) -> str | None:
    """When the photo was taken, from its EXIF (ISO 8601, the camera's clock; its offset when it wrote one)."""
    try:
        exif = im.getexif()
        ifd = exif.get_ifd(_EXIF_IFD)
        found = [(ifd.get(date), ifd.get(offset)) for date, offset in _DATE_TAGS] + [(exif.get(_IFD0_DATETIME), None)]
    except Exception:  # a broken EXIF block: no date, the photo is fine
        return None
    for raw, offset in found:
        match = _EXIF_DATE.fullmatch(str(raw or "").strip().rstrip("\x00"))
        if not match:
            continue
        try:
            taken = datetime.datetime(*(int(g) for g in match.groups()))
        except ValueError:  # 0000:00:00 00:00:00, the usual "not set"
            continue
        if not 1900 <= taken.year <= 2100:
            continue
        offset = str(offset or "").strip().rstrip("\x00")
        return taken.isoformat() + (offset if _EXIF_OFFSET.fullmatch(offset) else "")
    return None


def _resize(made: list[Image.Image], width: int, height: int, spec: VariantSpec) -> Image.Image:
    """One variant in the stored orientation, from the smallest image made so far that still covers it."""
    if spec.square:
        side = square_side(width, height, spec.size)
        source = next(im for im in reversed(made) if min(im.size) >= side)
        box = center_square(*source.size)
        if source.size == (side, side):
            return source.copy()
        return _shrink(source, (side, side), box)
    target = fit_within(width, height, spec.size)
    source = next(im for im in reversed(made) if im.width >= target[0] and im.height >= target[1])
    if source.size == target:
        return source
    return _shrink(source, target)


def _shrink(source: Image.Image, target: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Downscale with the cheapest filter that is indistinguishable here (bench/resize.py: PSNR vs Lanczos ≥ 46 dB).

    An exact integer factor is a box average (``reduce``: 1.8 ms instead of 25 ms for 1920 -> 960); a shrink of
    less than 1.25x, what is left after the JPEG decoder's ``draft``, is bilinear (the filters barely differ there:
    22 ms instead of 41 ms for 2000 -> 1920); anything else is Lanczos, after a box pre-reduction when it is large.
    """
    box = box or (0, 0, source.width, source.height)
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    factor_x, factor_y = box_w / target[0], box_h / target[1]
    if factor_x == factor_y and factor_x.is_integer() and factor_x > 1:
        return source.reduce(int(factor_x), box)
    if max(factor_x, factor_y) < 1.25:
        return source.resize(target, Image.Resampling.BILINEAR, box=box)
    return source.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _encode(im: Image.Image, name: str, options: Options, *, tag_srgb: bool) -> list[Variant]:
    out = []
    for fmt in options.formats:
        encoder = ENCODERS[fmt]
        buf = io.BytesIO()
        # Nothing from the source's info is passed on: no exif=, xmp=, comment or IPTC, so no GPS or maker notes.
        extra = {"icc_profile": _srgb_icc()} if tag_srgb else {}
        im.save(buf, encoder.pillow_format, **options.encoder_options(fmt), **extra)
        out.append(Variant(name, im.width, im.height, fmt, encoder.content_type, encoder.extension, buf.getvalue()))
    return out


def _placeholder(im: Image.Image, transpose: Image.Transpose | None) -> tuple[str, str]:
    """A tiny WebP as a data: URI, and the dominant colour as #rrggbb."""
    tiny = im.resize(fit_within(im.width, im.height, PLACEHOLDER_EDGE), Image.Resampling.BOX)
    if transpose is not None:
        tiny = tiny.transpose(transpose)
    tiny = tiny.convert("RGB")
    buf = io.BytesIO()
    tiny.save(buf, "WEBP", quality=40, method=4)
    uri = "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    quantized = tiny.quantize(colors=4, method=Image.Quantize.MEDIANCUT)
    count_index = max(quantized.getcolors() or [(1, 0)])
    palette = quantized.getpalette() or [0, 0, 0]
    r, g, b = palette[count_index[1] * 3 : count_index[1] * 3 + 3]
    return uri, f"#{r:02x}{g:02x}{b:02x}"


class _Timer:
    def __init__(self) -> None:
        self._clock = time.perf_counter
        self._last = self._clock()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._clock()
        self.laps[name] = round(self.laps.get(name, 0.0) + (now - self._last) * 1000, 1)
        self._last = now


def psnr_db(a: bytes, b: bytes) -> float:
    """Peak signal-to-noise ratio in dB of two encoded images, over their RGB pixels: ``math.inf`` when identical, 0
    when their sizes differ (a shadow run's variant against the real run's: boardsite/control/shadow.py). Variants
    are our own output, so the formats the processor writes are the ones opened here."""
    from PIL import ImageStat

    first = Image.open(io.BytesIO(a)).convert("RGB")
    second = Image.open(io.BytesIO(b)).convert("RGB")
    if first.size != second.size:
        return 0.0
    stat = ImageStat.Stat(ImageChops.difference(first, second))
    mse = sum(stat.sum2) / (first.width * first.height * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
