"""Property tests for the processor's size arithmetic, and its configuration parsing."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from offload import imaging
from offload.config import VariantSpec, parse_formats, parse_variants

dims = st.integers(min_value=1, max_value=60_000)
edges = st.integers(min_value=1, max_value=5_000)


@given(dims, dims, edges)
def test_fit_within_never_upscales_and_keeps_the_aspect_ratio(width, height, edge):
    w, h = imaging.fit_within(width, height, edge)
    assert 1 <= w <= width, "never larger than the source"
    assert 1 <= h <= height, "never larger than the source"
    assert max(w, h) == min(edge, max(width, height)), "the long edge is the target (or the source's, if smaller)"
    # Within 1 px of the exact proportional size, on the short side (the long side is exact).
    assert abs(h - w * height / width) <= 1 or abs(w - h * width / height) <= 1
    if width >= height:
        assert w == min(edge, width)
        assert abs(h - height * w / width) <= 1
    else:
        assert h == min(edge, height)
        assert abs(w - width * h / height) <= 1


@given(dims, dims)
def test_center_square_is_inside_the_image_and_centred(width, height):
    left, top, right, bottom = imaging.center_square(width, height)
    assert 0 <= left < right <= width, "inside the bounds"
    assert 0 <= top < bottom <= height, "inside the bounds"
    assert right - left == bottom - top == min(width, height), "a square, as large as fits"
    assert abs(left - (width - right)) <= 1, "centred"
    assert abs(top - (height - bottom)) <= 1, "centred"


@given(dims, dims, edges)
def test_square_side_never_upscales(width, height, edge):
    side = imaging.square_side(width, height, edge)
    assert 1 <= side <= min(width, height, edge)
    assert side == edge or side == min(width, height)


specs = st.lists(st.builds(VariantSpec, name=st.just("v"), size=edges, square=st.booleans()), min_size=1, max_size=4)


@given(dims, dims, specs)
def test_the_draft_scale_covers_every_variant(width, height, variants):
    scale = imaging.scale_needed(width, height, variants)
    assert 0 < scale <= 1
    w, h = width * scale, height * scale
    for spec in variants:
        if spec.square:
            assert min(w, h) >= imaging.square_side(width, height, spec.size) - 1e-6
        else:
            tw, th = imaging.fit_within(width, height, spec.size)
            assert w >= tw - 1e-6
            assert h >= th - 1e-6


variant_sets = st.lists(st.tuples(st.integers(min_value=1, max_value=300), st.booleans()), min_size=1, max_size=5).map(
    lambda items: tuple(VariantSpec(f"v{i}", size, square) for i, (size, square) in enumerate(items))
)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=700),
    st.integers(min_value=1, max_value=700),
    st.sampled_from([1, 3, 6, 8]),
    st.sampled_from(["JPEG", "PNG", "WEBP"]),
    variant_sets,
)
def test_real_variants_have_exactly_the_computed_sizes(width, height, orientation, fmt, variants):
    """The arithmetic above is what the pixels get: through draft / WebP shrink-on-load, the cascade and rotation."""
    im = Image.new("RGB", (width, height), (120, 60, 200))
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, fmt, exif=exif)
    p = imaging.make_variants(buf.getvalue(), imaging.Options(variants=variants, formats=("webp",)))
    upright = (height, width) if orientation in (6, 8) else (width, height)
    assert (p.width, p.height) == upright
    got = {v.name: (v.width, v.height) for v in p.variants}
    expected = {}
    for spec in variants:
        side = imaging.square_side(width, height, spec.size)
        expected[spec.name] = (side, side) if spec.square else imaging.fit_within(*upright, spec.size)
    assert got == expected
    for v in p.variants:
        assert Image.open(io.BytesIO(v.data)).size == (v.width, v.height)


def test_variant_configuration():
    assert parse_variants(None) == (
        VariantSpec("thumb", 320, square=True),
        VariantSpec("medium", 960),
        VariantSpec("large", 1920),
    )
    assert parse_variants("small=200, big=2400") == (VariantSpec("small", 200), VariantSpec("big", 2400))
    for bad in ("thumb", "thumb=0", "thumb=abc", "thumb=320:round", "a=1,a=2", "=5"):
        with pytest.raises(ValueError, match="BOARDSITE_VARIANTS"):
            parse_variants(bad)


def test_format_configuration():
    assert parse_formats(None) == ("webp", "jpeg")
    assert parse_formats("JPEG, avif") == ("avif", "jpeg"), "kept in the page's order of preference"
    assert parse_formats("") == ("webp", "jpeg"), "an empty variable means the default"
    for bad in ("gif", " , ", "webp,bmp"):
        with pytest.raises(ValueError, match="BOARDSITE_IMAGE_FORMATS"):
            parse_formats(bad)


@pytest.mark.parametrize(
    ("name", "value"),
    [("BOARDSITE_JPEG_QUALITY", "101"), ("BOARDSITE_WEBP_QUALITY", "0"), ("BOARDSITE_MAX_FRAMES", "0"),
     ("MAX_IMAGE_PIXELS", "-5"), ("BOARDSITE_MAX_FRAMES", "many")],
)  # fmt: skip
def test_numbers_out_of_range_are_refused_with_the_variable_named(monkeypatch, name, value):
    from offload import config

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        config.load()
