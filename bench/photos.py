"""Deterministic photo-like test images for the benchmarks: smooth colour areas, mid-scale texture, sharp edges and
sensor-like grain, so encoders and resamplers see what a phone photo gives them (a flat fill would flatter them)."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter


def photo_image(megapixels: float, seed: int = 1) -> Image.Image:
    """An upright-content RGB image of about ``megapixels`` with a 4:3 shape."""
    rnd = random.Random(seed)
    w = int((megapixels * 1_000_000 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)

    def noise(scale: int) -> Image.Image:
        small = (max(2, w // scale), max(2, h // scale))
        return Image.frombytes("RGB", small, rnd.randbytes(small[0] * small[1] * 3)).resize((w, h), Image.BICUBIC)

    im = noise(96).filter(ImageFilter.GaussianBlur(8))
    im = Image.blend(im, noise(12), 0.25)
    draw = ImageDraw.Draw(im)
    for _ in range(40):  # hard edges: the part resamplers and encoders get wrong
        x, y = rnd.randrange(w), rnd.randrange(h)
        r = rnd.randrange(w // 40, w // 6)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
        else:
            draw.line((x, y, x + rnd.randrange(-r, r), y + rnd.randrange(-r, r)), fill=colour, width=max(2, r // 20))
    grain = Image.frombytes("L", (w, h), rnd.randbytes(w * h)).convert("RGB")
    return Image.blend(im, grain, 0.06)


def photo(megapixels: float, seed: int = 1, *, fmt: str = "JPEG", orientation: int = 6, gps: bool = True) -> bytes:
    """Encoded like a phone photo: stored sideways with an EXIF orientation and a GPS block."""
    im = photo_image(megapixels, seed)
    if orientation in (5, 6, 7, 8):  # stored sideways, as the camera wrote it
        im = im.transpose(Image.Transpose.ROTATE_90)
    exif = im.getexif()
    exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=92, exif=exif)
    else:
        im.save(buf, fmt, quality=90, exif=exif)
    return buf.getvalue()
