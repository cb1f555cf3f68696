"""The processor against every kind of file people upload (generated in tests/corpus.py), with expected outcomes."""

from __future__ import annotations

import base64
import io

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageFile, IptcImagePlugin

from offload import imaging
from offload.functions import process_image
from tests import corpus
from tests.helpers import assert_no_metadata, dominant_is, send_original

NAMES = ("thumb", "medium", "large")


def by_key(processed: imaging.Processed) -> dict[tuple[str, str], imaging.Variant]:
    return {(v.name, v.format): v for v in processed.variants}


def decoded(v: imaging.Variant) -> Image.Image:
    im = Image.open(io.BytesIO(v.data))
    assert im.format == {"webp": "WEBP", "jpeg": "JPEG", "avif": "AVIF"}[v.format]
    assert im.size == (v.width, v.height)
    return im.convert("RGB")


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 30) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def centre(v: imaging.Variant) -> tuple[int, ...]:
    im = decoded(v)
    return im.getpixel((im.width // 2, im.height // 2))


def assert_quadrants(v: imaging.Variant) -> None:
    im = decoded(v)
    w, h = im.size
    for name, (x, y) in {
        "top_left": (w // 4, h // 4),
        "top_right": (3 * w // 4, h // 4),
        "bottom_left": (w // 4, 3 * h // 4),
        "bottom_right": (3 * w // 4, 3 * h // 4),
    }.items():
        got = im.getpixel((x, y))
        assert near(got, corpus.UPRIGHT_QUADRANTS[name]), f"{v.name}.{v.format}: {name} is {got}"


# --- JPEG ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright_without_metadata(orientation):
    data = corpus.oriented_jpeg(orientation)
    with Image.open(io.BytesIO(data)) as source:  # the input really carries what must not leak
        assert source.getexif().get_ifd(0x8825), "the source has a GPS block"
        assert "xmp" in source.info
        assert "comment" in source.info
    p = imaging.make_variants(data)
    assert (p.width, p.height) == (1200, 900)
    sizes = {(v.name, v.format): (v.width, v.height) for v in p.variants}
    assert sizes == {
        **{("thumb", f): (320, 320) for f in ("webp", "jpeg")},
        **{("medium", f): (960, 720) for f in ("webp", "jpeg")},
        **{("large", f): (1200, 900) for f in ("webp", "jpeg")},  # never upscaled
    }
    for v in p.variants:
        assert_quadrants(v)
        assert_no_metadata(v.data)
        assert b"secret location" not in v.data


def test_iptc_of_the_input_is_in_no_variant():
    data = corpus.iptc_jpeg()
    with Image.open(io.BytesIO(data)) as source:  # the input really carries what must not leak
        assert IptcImagePlugin.getiptcinfo(source)[2, 120] == corpus.IPTC_CAPTION
        assert 0x0404 in source.info["photoshop"], "an IPTC resource in the Photoshop APP13 segment"
    p = imaging.make_variants(data)
    assert {(v.name, v.format) for v in p.variants} == {(n, f) for n in NAMES for f in ("webp", "jpeg")}
    for v in p.variants:
        assert_no_metadata(v.data)
        assert corpus.IPTC_CAPTION not in v.data
    assert_quadrants(by_key(p)["large", "jpeg"])


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_baseline_and_progressive_jpeg(progressive):
    data = corpus.oriented_jpeg(1, (2400, 1800), progressive=progressive)
    assert (b"\xff\xc2" in data) is progressive  # SOF2 marks a progressive JPEG
    p = imaging.make_variants(data)
    assert p.format == "JPEG"
    assert {(v.width, v.height) for v in p.variants} == {(1920, 1440), (960, 720), (320, 320)}
    for v in p.variants:
        assert_quadrants(v)


def test_cmyk_jpeg_is_converted_through_its_profile_and_tagged_srgb():
    data = corpus.encode(Image.new("CMYK", (800, 600), (255, 0, 0, 0)), "JPEG", icc_profile=corpus.cmyk_profile())
    p = imaging.make_variants(data)
    assert p.color_converted
    for v in p.variants:
        assert near(centre(v), corpus.CYAN_INK, 12), f"{v.name}.{v.format} is {centre(v)}, not the profile's cyan"
        assert Image.open(io.BytesIO(v.data)).info.get("icc_profile") == imaging.SRGB_ICC


def test_cmyk_jpeg_without_a_profile_still_becomes_rgb():
    p = imaging.make_variants(corpus.encode(Image.new("CMYK", (800, 600), (255, 0, 0, 0)), "JPEG"))
    for v in p.variants:
        assert near(centre(v), (0, 255, 255), 12)


def test_embedded_rgb_profile_is_converted_to_srgb():
    # The pixels say red; the profile says that channel is green. A viewer that honours the profile shows green.
    data = corpus.encode(Image.new("RGB", (800, 600), (200, 0, 0)), "JPEG", icc_profile=corpus.swapped_rgb_profile())
    p = imaging.make_variants(data)
    assert p.color_converted
    for v in p.variants:
        assert near(centre(v), (0, 200, 0), 15), f"{v.name}.{v.format} is {centre(v)}"
        assert Image.open(io.BytesIO(v.data)).info.get("icc_profile") == imaging.SRGB_ICC


def test_a_profile_is_judged_by_what_it_does_not_by_its_name():
    swapped = corpus.swapped_rgb_profile("sRGB IEC61966-2.1")  # calls itself sRGB; swaps red and green
    p = imaging.make_variants(corpus.encode(Image.new("RGB", (400, 300), (200, 0, 0)), "JPEG", icc_profile=swapped))
    assert p.color_converted
    assert near(centre(p.variants[0]), (0, 200, 0), 15)


def test_greyscale_with_a_grey_profile_is_converted():
    data = corpus.encode(Image.new("L", (400, 300), 50), "JPEG", icc_profile=corpus.linear_grey_profile(), quality=95)
    p = imaging.make_variants(data)
    assert p.color_converted
    for v in p.variants:
        assert near(centre(v), (122, 122, 122), 6), "linear 50/255 is 122 in sRGB"


def test_an_srgb_profile_is_left_alone_and_variants_stay_untagged():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    p = imaging.make_variants(corpus.encode(Image.new("RGB", (800, 600), (200, 0, 0)), "JPEG", icc_profile=srgb))
    assert not p.color_converted
    for v in p.variants:
        assert near(centre(v), (200, 0, 0), 10)
        assert "icc_profile" not in Image.open(io.BytesIO(v.data)).info


# --- PNG -----------------------------------------------------------------------------------------------------------


def test_png_rgba_is_flattened_onto_white():
    im = Image.new("RGBA", (800, 600), (0, 0, 0, 0))  # transparent black: must not come out black
    im.paste((200, 0, 0, 255), (400, 0, 800, 600))
    p = imaging.make_variants(corpus.encode(im, "PNG"))
    for v in p.variants:
        out = decoded(v)
        assert near(out.getpixel((out.width // 8, out.height // 2)), (255, 255, 255), 8)
        assert near(out.getpixel((7 * out.width // 8, out.height // 2)), (200, 0, 0), 15)


def test_png_palette_with_transparency():
    im = Image.new("P", (600, 400), 0)
    im.putpalette([0, 0, 0, 30, 30, 220] + [0, 0, 0] * 254)
    im.paste(1, (300, 0, 600, 400))
    p = imaging.make_variants(corpus.encode(im, "PNG", transparency=0))
    large = decoded(by_key(p)["large", "jpeg"])
    assert near(large.getpixel((10, 200)), (255, 255, 255), 8)
    assert near(large.getpixel((590, 200)), (30, 30, 220), 15)


def test_png_16_bit_greyscale_is_scaled_not_clipped():
    im = Image.new("I;16", (600, 400), 32768)  # mid grey in 16 bits; a plain convert() says 255
    data = corpus.encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    for v in imaging.make_variants(data).variants:
        assert near(centre(v), (128, 128, 128), 6)


def test_png_greyscale():
    for v in imaging.make_variants(corpus.encode(Image.new("L", (600, 400), 90), "PNG")).variants:
        assert near(centre(v), (90, 90, 90), 6)


# --- WebP, GIF, APNG, HEIC ----------------------------------------------------------------------------------------


def test_webp_still():
    p = imaging.make_variants(corpus.encode(corpus.quadrants(), "WEBP", quality=95))
    assert (p.format, p.frames) == ("WEBP", 1)
    for v in p.variants:
        assert_quadrants(v)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_become_their_first_frame(fmt):
    p = imaging.make_variants(corpus.animation(fmt, 3))
    assert (p.format, p.frames) == (fmt, 3)
    for v in p.variants:
        assert near(centre(v), (220, 30, 30)), "the first frame (red), not a later one"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_over_the_frame_limit_are_refused(fmt):
    data = corpus.animation(fmt, 6, size=(40, 30))
    imaging.make_variants(data, imaging.Options(max_frames=6))  # at the limit: fine
    with pytest.raises(imaging.RejectedImage, match="6 frames, more than the 5 frame limit"):
        imaging.make_variants(data, imaging.Options(max_frames=5))


def test_heic_from_a_phone_is_upright_without_metadata():
    stored = corpus.quadrants((800, 600)).transpose(Image.Transpose.ROTATE_90)  # as a phone held upright stores it
    exif = stored.getexif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    pillow_heif.register_heif_opener()  # the encoder, for making the test file (the processor loads it by itself)
    data = corpus.encode(stored, "HEIF", exif=exif.tobytes(), quality=90)
    assert pillow_heif.is_supported(data)
    p = imaging.make_variants(data)
    assert (p.format, p.width, p.height) == ("HEIF", 800, 600)
    for v in p.variants:
        assert_quadrants(v)
        assert_no_metadata(v.data)


# --- refusals ------------------------------------------------------------------------------------------------------


def _truncated_png() -> bytes:
    data = corpus.encode(corpus.quadrants((600, 400)), "PNG")
    return data[: len(data) // 2]


def _corrupt_jpeg() -> bytes:
    data = bytearray(corpus.oriented_jpeg(1, (600, 400)))
    data[len(data) // 2 :] = b"\x00" * (len(data) - len(data) // 2)  # right length, garbage scan data
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda: b"", "The file is empty.", id="zero-bytes"),
        pytest.param(lambda: b"%PDF-1.7\n" + b"0" * 4000, "not an image we can read", id="pdf-named-jpg"),
        pytest.param(lambda: b"<!doctype html><script>alert(1)</script>", "not an image we can read", id="html"),
        pytest.param(lambda: corpus.encode(corpus.quadrants((60, 40)), "BMP"), "not an image we can read", id="bmp"),
        pytest.param(lambda: corpus.encode(corpus.quadrants((60, 40)), "TIFF"), "not an image we can read", id="tiff"),
        pytest.param(lambda: corpus.oriented_jpeg(1, (600, 400))[:3000], "incomplete or corrupt", id="truncated-jpeg"),
        pytest.param(_truncated_png, "incomplete or corrupt", id="truncated-png"),
        pytest.param(_corrupt_jpeg, "incomplete or corrupt", id="corrupt-jpeg"),
        pytest.param(corpus.corrupt_png, "incomplete or corrupt", id="corrupt-png"),
        pytest.param(lambda: corpus.animation("GIF", 3)[:200], "incomplete or corrupt", id="truncated-gif"),
        pytest.param(lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image we can read", id="png-signature-only"),
    ],
)
def test_refusals_say_why(make, reason):
    with pytest.raises(imaging.RejectedImage) as refused:
        imaging.make_variants(make())
    assert reason in str(refused.value)


def test_a_pixel_bomb_is_refused_from_its_header_before_any_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    data = corpus.png_bomb()
    assert len(data) < 200
    with pytest.raises(imaging.RejectedImage, match="too many pixels"):
        imaging.make_variants(data)


def test_dimensions_over_the_configured_limit():
    data = corpus.encode(Image.new("RGB", (3000, 3000)), "PNG")  # 9 MP, 4.5x the limit below
    with pytest.raises(imaging.RejectedImage, match="limit is 2 megapixels"):
        imaging.make_variants(data, imaging.Options(max_pixels=2_000_000))


# --- outputs -------------------------------------------------------------------------------------------------------


def test_placeholder_and_dominant_colour():
    im = Image.new("RGB", (1200, 900), (30, 120, 60))
    im.paste((250, 250, 250), (0, 0, 200, 150))  # a small bright corner must not win
    p = imaging.make_variants(corpus.encode(im, "JPEG", quality=95))
    assert dominant_is(p.dominant_color, (30, 120, 60), 12), p.dominant_color
    prefix = "data:image/webp;base64,"
    assert p.placeholder.startswith(prefix)
    tiny = base64.b64decode(p.placeholder[len(prefix) :])
    assert len(tiny) < 400
    assert Image.open(io.BytesIO(tiny)).size == (16, 12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_placeholder_is_upright(orientation):
    # Stored sideways, mirrored or upside down: the placeholder shows the upright quadrants, like the variants.
    p = imaging.make_variants(corpus.oriented_jpeg(orientation))
    tiny = Image.open(io.BytesIO(base64.b64decode(p.placeholder.split(",", 1)[1]))).convert("RGB")
    assert tiny.size == (16, 12)
    for name, (x, y) in {
        "top_left": (4, 3),
        "top_right": (12, 3),
        "bottom_left": (4, 9),
        "bottom_right": (12, 9),
    }.items():
        got = tiny.getpixel((x, y))
        assert near(got, corpus.UPRIGHT_QUADRANTS[name]), f"orientation {orientation}: placeholder's {name} is {got}"


def test_a_small_original_is_never_upscaled_and_coinciding_sizes_are_encoded_once():
    p = imaging.make_variants(corpus.encode(Image.new("RGB", (200, 100), (9, 9, 9)), "PNG"))
    v = by_key(p)
    assert (v["large", "webp"].width, v["large", "webp"].height) == (200, 100)
    assert v["medium", "webp"].data is v["large", "webp"].data
    assert (v["thumb", "jpeg"].width, v["thumb", "jpeg"].height) == (100, 100)


def test_extreme_aspect_ratios():
    p = imaging.make_variants(corpus.encode(Image.new("RGB", (4000, 3), (9, 9, 9)), "PNG"))
    sizes = {(v.name, v.width, v.height) for v in p.variants}
    assert sizes == {("large", 1920, 1), ("medium", 960, 1), ("thumb", 3, 3)}


def test_avif_when_configured():
    p = imaging.make_variants(corpus.oriented_jpeg(6), imaging.Options(formats=("avif", "jpeg")))
    assert {v.format for v in p.variants} == {"avif", "jpeg"}
    for v in p.variants:
        assert_quadrants(v)
        assert_no_metadata(v.data)


@pytest.mark.parametrize(
    "config",
    [
        "a=252:square,c=274,d=262:square,e=78:square,f=60",
        "s=40:square,m=120,t=20:square,l=400,x=10",
    ],
)
def test_any_variant_configuration_gets_its_own_sizes(config):
    from offload.config import parse_variants

    specs = parse_variants(config)
    data = corpus.oriented_jpeg(6, (400, 300))
    for _ in range(5):  # the outputs are many small images: a mix-up between them must not depend on luck
        p = imaging.make_variants(data, imaging.Options(variants=specs, formats=("webp",)))
        for spec in specs:
            (v,) = [v for v in p.variants if v.name == spec.name]
            side = imaging.square_side(400, 300, spec.size)
            expected = (side, side) if spec.square else imaging.fit_within(400, 300, spec.size)
            assert (v.width, v.height) == expected, spec
            assert Image.open(io.BytesIO(v.data)).size == expected


def test_stored_placeholder_and_colour_accept_only_what_the_processor_makes():
    from boardsite.images.results import _colour, _placeholder

    good = imaging.make_variants(corpus.oriented_jpeg(1, (200, 150)))
    assert _placeholder(good.placeholder) == good.placeholder
    assert _colour(good.dominant_color) == good.dominant_color
    for hostile in ('data:image/webp;base64,AAAA"); background:url(//evil.example/x', "javascript:alert(1)", 5, None):
        assert _placeholder(hostile) == ""
    for hostile in ("red", "#12345g", "#1234567", "#123456; x", None):
        assert _colour(hostile) == ""


def test_failed_results_carry_cost_figures_too(people, board, s3, settings):
    from django.test import Client

    from tests.helpers import post_to_s3, ticket

    c = Client()
    c.force_login(people["contributor"])
    _, not_an_image = send_original(c, board.pk, b"%PDF-1.7 " * 100, s3, settings.BOARDSITE_BUCKET)
    body = ticket(c, board.pk, b"x" * 10)
    post_to_s3(body["upload"], b"x" * 20)  # more than declared: refused from the HEAD, before any download
    from offload.events import s3_object_created_event

    key = body["upload"]["fields"]["key"]
    etag = s3.head_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)["ETag"]
    larger = s3_object_created_event(bucket=settings.BOARDSITE_BUCKET, key=key, size=20, etag=etag)
    reported = []
    process_image.handler(not_an_image, None, report=reported.append)
    process_image.handler(larger, None, report=reported.append)
    assert [r["status"] for r in reported] == ["failed", "failed"]
    assert "not an image" in reported[0]["error"]
    assert "declared 10 bytes" in reported[1]["error"]
    for result in reported:
        assert result["duration_ms"] >= 0
        assert result["peak_rss_mb"] > 0


def test_result_event_carries_cost_figures(people, board, s3, settings):
    from django.test import Client

    c = Client()
    c.force_login(people["contributor"])
    _, event = send_original(c, board.pk, corpus.oriented_jpeg(6), s3, settings.BOARDSITE_BUCKET)
    reported = []
    process_image.handler(event, None, report=reported.append)
    (result,) = reported
    assert result["status"] == "ready"
    assert 0 < result["duration_ms"] < 60_000
    assert 10 < result["peak_rss_mb"] < 2048
    assert set(result["timings_ms"]) >= {"decode", "resize", "encode"}
    assert result["placeholder"].startswith("data:image/webp;base64,")
    assert {(v["name"], v["format"]) for v in result["variants"]} == {(n, f) for n in NAMES for f in ("webp", "jpeg")}


# --- WebP shrink-on-load (offload/webp_shrink.py) ------------------------------------------------------------------


def _psnr(a: Image.Image, b: Image.Image) -> float:
    import math

    from PIL import ImageChops, ImageStat

    stat = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB")))
    mse = sum(stat.sum2) / (3 * a.width * a.height)
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_webp_scaled_decoding_matches_a_full_decode_and_resize(mode):
    from offload import webp_shrink

    im = corpus.quadrants((2400, 1800)).convert(mode)
    if mode == "RGBA":
        im.putalpha(Image.new("L", im.size, 128))
    data = corpus.encode(im, "WEBP", quality=95)
    assert webp_shrink.features(data) == (2400, 1800, mode == "RGBA", False)
    shrunk = webp_shrink.decode_scaled(data, (1200, 900))
    assert shrunk is not None
    assert (shrunk.mode, shrunk.size) == (mode, (1200, 900))
    reference = Image.open(io.BytesIO(data)).resize((1200, 900), Image.Resampling.LANCZOS)
    assert _psnr(shrunk, reference) > 35


def test_webp_scaled_decoding_is_used_for_large_stills_and_pillow_takes_over_otherwise(monkeypatch):
    from offload import webp_shrink

    data = corpus.encode(corpus.quadrants((3000, 2250)), "WEBP", quality=90)
    calls = []
    real = webp_shrink.decode_scaled
    monkeypatch.setattr(webp_shrink, "decode_scaled", lambda d, size: calls.append(size) or real(d, size))
    scaled = imaging.make_variants(data)
    assert calls == [(1920, 1440)], "decoded straight at the largest variant's size"
    assert webp_shrink.decode_scaled(corpus.animation("WEBP", 3), (10, 10)) is None, "animations go to Pillow"
    with pytest.raises(imaging.RejectedImage, match="incomplete or corrupt"):  # the scaled path fails, Pillow says why
        imaging.make_variants(data[: len(data) // 2])
    monkeypatch.setattr(webp_shrink, "_library", lambda: None)  # as if libwebp were not found: Pillow decodes
    full = imaging.make_variants(data)
    for a, b in zip(scaled.variants, full.variants, strict=True):
        assert (a.name, a.width, a.height) == (b.name, b.width, b.height)
        assert_quadrants(a)
        assert_quadrants(b)
    with pytest.raises(imaging.RejectedImage, match="incomplete or corrupt"):
        imaging.make_variants(data[: len(data) // 2])
