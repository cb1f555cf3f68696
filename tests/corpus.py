"""Generated inputs for the processor's corpus: every kind of file people upload, made here so nothing is fetched.

Colour tests need ICC profiles whose effect is unmistakable, so two tiny ones are written by hand below (ICC v2):
an RGB profile with the red and green primaries swapped (pure red pixels *mean* green), and a CMYK profile whose
cyan ink is a deep blue, not the (0, 255, 255) that a naive CMYK conversion gives.
"""

from __future__ import annotations

import io
import struct

from PIL import Image

D50 = (0.9642, 1.0, 0.8249)
# sRGB primaries adapted to D50 (the ICC PCS), as in every sRGB profile.
SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)
SRGB_BLUE = (0.1431, 0.0606, 0.7141)

UPRIGHT_QUADRANTS = {"top_left": (220, 30, 30), "top_right": (30, 200, 30), "bottom_left": (30, 30, 220),
                     "bottom_right": (230, 220, 30)}  # fmt: skip


# --- ICC v2 writer ------------------------------------------------------------------------------------------------


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0\0\0" + b"\0" * 67


def _curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table = struct.pack(">I", len(tags))
    offset = 128 + 4 + 12 * len(tags)
    body = b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + pcs
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15(D50[0])
        + _s15(D50[1])
        + _s15(D50[2])
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + table + body


def swapped_rgb_profile(description: str = "boardsite test: red and green swapped") -> bytes:
    """A display RGB profile whose red channel is sRGB's green and vice versa (gamma 2.2)."""
    return _profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        [
            (b"desc", _desc(description)),
            (b"wtpt", _xyz(*D50)),
            (b"rXYZ", _xyz(*SRGB_GREEN)),
            (b"gXYZ", _xyz(*SRGB_RED)),
            (b"bXYZ", _xyz(*SRGB_BLUE)),
            (b"rTRC", _curve(2.2)),
            (b"gTRC", _curve(2.2)),
            (b"bTRC", _curve(2.2)),
            (b"cprt", b"text\0\0\0\0public domain\0"),
        ],
    )


def linear_grey_profile() -> bytes:
    """A greyscale display profile with gamma 1.0 (linear light), like the "Gray Gamma 1.0" ones in the wild."""
    return _profile(
        b"mntr",
        b"GRAY",
        b"XYZ ",
        [(b"desc", _desc("boardsite test linear grey")), (b"wtpt", _xyz(*D50)), (b"kTRC", _curve(1.0))],
    )


def _srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    def linear(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    xyz = [SRGB_RED[i] * r + SRGB_GREEN[i] * g + SRGB_BLUE[i] * b for i in range(3)]

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(xyz[i] / D50[i]) for i in range(3))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


CYAN_INK = (0, 90, 170)  # what 100 % cyan looks like through cmyk_profile() (a naive conversion says (0, 255, 255))


def cmyk_profile() -> bytes:
    """A CMYK input profile (lut16, 2 grid points per ink) with a deep-blue cyan ink, PCS Lab."""
    inks = [CYAN_INK, (230, 0, 130), (255, 235, 0), (0, 0, 0)]
    clut = b""
    for corner in range(16):  # the first ink varies slowest
        amounts = [(corner >> (3 - i)) & 1 for i in range(4)]
        rgb = [255.0, 255.0, 255.0]
        for ink, on in zip(inks, amounts, strict=True):
            if on:
                rgb = [c * i / 255 for c, i in zip(rgb, ink, strict=True)]
        L, a, b = _srgb_to_lab(tuple(round(c) for c in rgb))
        clut += struct.pack(
            ">3H",
            round(min(max(L, 0), 100) / 100 * 0xFF00),
            round(min(max(a + 128, 0), 255.99) * 256),
            round(min(max(b + 128, 0), 255.99) * 256),
        )
    identity = b"".join(_s15(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    ramp = struct.pack(">2H", 0, 0xFFFF)
    lut = b"mft2\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + struct.pack(">2H", 2, 2) + ramp * 4 + clut + ramp * 3
    return _profile(
        b"scnr",
        b"CMYK",
        b"Lab ",
        [(b"desc", _desc("boardsite test CMYK")), (b"wtpt", _xyz(*D50)), (b"A2B0", lut)],
    )


# --- images -------------------------------------------------------------------------------------------------------


def quadrants(size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """An upright image with four coloured quadrants, so any wrong flip or rotation shows."""
    w, h = size
    im = Image.new("RGB", size, UPRIGHT_QUADRANTS["top_left"])
    im.paste(UPRIGHT_QUADRANTS["top_right"], (w // 2, 0, w, h // 2))
    im.paste(UPRIGHT_QUADRANTS["bottom_left"], (0, h // 2, w // 2, h))
    im.paste(UPRIGHT_QUADRANTS["bottom_right"], (w // 2, h // 2, w, h))
    return im


# The transposition that *stores* an upright image so that EXIF orientation N makes it upright again.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int, size: tuple[int, int] = (1200, 900), *, gps: bool = True, **save: object) -> bytes:
    """``quadrants(size)`` stored as a camera would with EXIF ``orientation`` (and a GPS block, XMP and a comment)."""
    upright = quadrants(size)
    stored = upright.transpose(_STORE[orientation]) if _STORE[orientation] is not None else upright
    exif = stored.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return encode(stored, "JPEG", exif=exif, xmp=xmp, comment=b"secret location", quality=92, **save)


IPTC_CAPTION = b"secret caption: Alexanderplatz, Berlin"


def iptc_jpeg(size: tuple[int, int] = (1200, 900)) -> bytes:
    """``quadrants(size)`` as a JPEG carrying an IPTC record (caption, city) in a Photoshop APP13 segment, as photo
    desks and Lightroom write it (Pillow cannot write one, so the segment is built by hand after SOI)."""

    def dataset(record: int, tag: int, value: bytes) -> bytes:
        return b"\x1c" + bytes([record, tag]) + struct.pack(">H", len(value)) + value

    iim = dataset(1, 90, b"\x1b%G") + dataset(2, 0, b"\x00\x04") + dataset(2, 120, IPTC_CAPTION)
    iim += dataset(2, 90, b"Berlin")
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iim)) + iim
    resource += b"\0" * (len(iim) % 2)  # resources are padded to an even length
    payload = b"Photoshop 3.0\0" + resource
    jpeg = encode(quadrants(size), "JPEG", quality=92)
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def encode(im: Image.Image, fmt: str, **save: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def animation(fmt: str, frames: int, size: tuple[int, int] = (200, 150)) -> bytes:
    """``frames`` frames: the first red, then blue, green, … (so "first frame" is checkable)."""
    colours = [(220, 30, 30), (30, 30, 220), (30, 200, 30)]
    images = [Image.new("RGB", size, colours[i % 3]) for i in range(frames)]
    if fmt == "GIF":
        images = [i.convert("P", palette=Image.Palette.ADAPTIVE) for i in images]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


def png_bomb(side: int = 30_000) -> bytes:
    """A valid PNG header claiming ``side`` x ``side`` pixels with next to no data: refused from the header alone."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def corrupt_png() -> bytes:
    """A PNG whose compressed data is mostly zeros under a valid CRC: only decoding can tell it is broken."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width, height = 600, 400
    compressed = zlib.compress(b"".join(b"\0" + bytes([200, 0, 0]) * width for _ in range(height)))
    broken = compressed[: len(compressed) // 3] + bytes(len(compressed) - len(compressed) // 3)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", broken) + chunk(b"IEND", b"")
