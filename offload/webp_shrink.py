"""Shrink-on-load for still WebP: libwebp scales while decoding, as libjpeg does for JPEG ``draft``.

Pillow decodes every WebP through libwebp's animation decoder, which holds two full RGBA canvases next to the frame it
returns and Pillow's own copy: a 24 MP WebP peaks at about 400 MB. libwebp's advanced API can instead write the
picture already scaled to the size we need (its area-averaging rescaler works row by row), so the same file needs a
few MB. Pillow ships libwebp but does not expose that call, so it is called here with ctypes, on the very library
Pillow loaded. Anything unexpected (no such library, another ABI, an animation, a decoding error) returns ``None``
and the caller falls back to Pillow, which then also reports the error in its words.
"""

from __future__ import annotations

import ctypes
import logging
from functools import lru_cache
from pathlib import Path

from PIL import (
    Image,
    _webp,  # noqa: F401 - loads (maps) the libwebp that _library() looks up
)

log = logging.getLogger(__name__)

_ABI_VERSION = 0x0209  # WEBP_DECODER_ABI_VERSION as of libwebp 1.0; the library checks only the major byte (0x02)
_MODE_RGB = 0
_MODE_RGBA = 1
_VP8_STATUS_OK = 0


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBA(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVA(ctypes.Structure):
    _fields_ = [
        ("y", ctypes.c_void_p),
        ("u", ctypes.c_void_p),
        ("v", ctypes.c_void_p),
        ("a", ctypes.c_void_p),
        ("y_stride", ctypes.c_int),
        ("u_stride", ctypes.c_int),
        ("v_stride", ctypes.c_int),
        ("a_stride", ctypes.c_int),
        ("y_size", ctypes.c_size_t),
        ("u_size", ctypes.c_size_t),
        ("v_size", ctypes.c_size_t),
        ("a_size", ctypes.c_size_t),
    ]


class _Buffers(ctypes.Union):
    _fields_ = [("RGBA", _RGBA), ("YUVA", _YUVA)]


class _Output(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Buffers),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        ("bypass_filtering", ctypes.c_int),
        ("no_fancy_upsampling", ctypes.c_int),
        ("use_cropping", ctypes.c_int),
        ("crop_left", ctypes.c_int),
        ("crop_top", ctypes.c_int),
        ("crop_width", ctypes.c_int),
        ("crop_height", ctypes.c_int),
        ("use_scaling", ctypes.c_int),
        ("scaled_width", ctypes.c_int),
        ("scaled_height", ctypes.c_int),
        ("use_threads", ctypes.c_int),
        ("dithering_strength", ctypes.c_int),
        ("flip", ctypes.c_int),
        ("alpha_dithering_strength", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _Output), ("options", _Options)]


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    """The libwebp that Pillow's ``_webp`` module loaded (found in this process's memory map)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    candidates = {line.split()[-1] for line in maps.splitlines() if "/libwebp-" in line or "/libwebp.so" in line}
    for path in sorted(candidates):
        try:
            lib = ctypes.CDLL(path)
            lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
            lib.WebPGetFeaturesInternal.argtypes = [
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.POINTER(_Features),
                ctypes.c_int,
            ]
            lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
            lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_Output)]
            return lib
        except (OSError, AttributeError):
            continue
    log.info("libwebp not found in the process: WebP is decoded at full size by Pillow")
    return None


def features(data: bytes) -> tuple[int, int, bool, bool] | None:
    """(width, height, has_alpha, animated) from the bitstream header, or None when unavailable."""
    lib = _library()
    if lib is None:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI_VERSION):
        return None
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(config.input), _ABI_VERSION) != _VP8_STATUS_OK:
        return None
    f = config.input
    return f.width, f.height, bool(f.has_alpha), bool(f.has_animation)


def decode_scaled(data: bytes, size: tuple[int, int]) -> Image.Image | None:
    """A still WebP decoded straight to ``size`` (RGB, or RGBA when it has alpha); None to fall back to Pillow."""
    info = features(data)
    lib = _library()
    if info is None or lib is None or info[3]:
        return None
    width, height = max(1, size[0]), max(1, size[1])
    mode = "RGBA" if info[2] else "RGB"
    channels = len(mode)
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI_VERSION):
        return None
    out = bytearray(width * height * channels)  # our memory: Pillow wraps it without a copy
    buffer = (ctypes.c_char * len(out)).from_buffer(out)
    config.options.use_scaling = 1
    config.options.scaled_width = width
    config.options.scaled_height = height
    config.output.colorspace = _MODE_RGBA if info[2] else _MODE_RGB
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ctypes.addressof(buffer)
    config.output.u.RGBA.stride = width * channels
    config.output.u.RGBA.size = len(out)
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    lib.WebPFreeDecBuffer(ctypes.byref(config.output))
    del buffer
    if status != _VP8_STATUS_OK:
        return None
    return Image.frombuffer(mode, (width, height), out, "raw", mode, 0, 1)
