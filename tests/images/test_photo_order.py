"""Boards shown by date taken (issue 10): the processor reads EXIF's DateTimeOriginal (with its offset), the web side
stores it, and a board whose owner chose "taken" pages and links its photos in that order, photos without a date by
when they were added."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone
from PIL import Image as PILImage

from boardsite.boards.models import Order
from boardsite.images import selectors
from boardsite.images.models import Image
from offload import imaging
from tests.factories import add_images
from tests.helpers import walk

UTC = dt.UTC


def jpeg_taken(date: str | None, offset: str | None = None, ifd0_only: bool = False) -> bytes:
    im = PILImage.new("RGB", (64, 48), (200, 40, 40))
    exif = im.getexif()
    if date is not None:
        if ifd0_only:
            exif[0x0132] = date
        else:
            ifd = exif.get_ifd(0x8769)
            ifd[0x9003] = date
            if offset:
                ifd[0x9011] = offset
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize(
    ("date", "offset", "ifd0_only", "expected"),
    [
        ("2021:07:14 18:30:05", "+02:00", False, "2021-07-14T18:30:05+02:00"),
        ("2021:07:14 18:30:05", None, False, "2021-07-14T18:30:05"),
        ("2019:01:02 03:04:05", None, True, "2019-01-02T03:04:05"),
        ("0000:00:00 00:00:00", None, False, None),
        ("yesterday", None, False, None),
        (None, None, False, None),
    ],
)
def test_the_processor_reads_the_date_taken(date, offset, ifd0_only, expected):
    assert imaging.make_variants(jpeg_taken(date, offset, ifd0_only)).taken_at == expected


@pytest.mark.django_db
def test_the_result_sets_taken_at_and_a_date_without_offset_is_the_cameras_clock(local_aws, board, people):
    from boardsite.images.results import _taken_at

    assert _taken_at("2021-07-14T18:30:05+02:00") == dt.datetime(2021, 7, 14, 16, 30, 5, tzinfo=UTC)
    assert _taken_at("2021-07-14T18:30:05") == dt.datetime(2021, 7, 14, 18, 30, 5, tzinfo=UTC)
    assert _taken_at("nonsense") is None
    assert _taken_at(12) is None


@pytest.mark.django_db
def test_a_board_by_date_taken_pages_and_links_in_that_order(client, board, people):
    board.order = Order.TAKEN
    board.save(update_fields=["order"])
    images = add_images(board, people["owner"], 130, ties=1)  # added one second apart, oldest first
    # Every third photo has a date taken, ten years back, in the reverse order of adding.
    dated = images[::3]
    base = timezone.now() - dt.timedelta(days=3650)
    for n, image in enumerate(reversed(dated)):
        image.taken_at = base + dt.timedelta(hours=n)
    Image.objects.bulk_update(dated, ["taken_at"])
    seen = walk(board, people["owner"], "owner")
    by_id = {i.pk: i for i in Image.objects.filter(board=board)}
    keys = [(by_id[pk].taken_at or by_id[pk].created_at, pk) for pk in seen]
    assert keys == sorted(keys, reverse=True)
    assert len(seen) == len(set(seen)) == 130
    assert seen[-len(dated) :] == [i.pk for i in dated]  # the old dated ones last, the first added dated newest

    client.force_login(people["owner"])
    middle = seen[60]
    html = client.get(f"/images/{middle}/").content.decode()
    assert f'href="/images/{seen[59]}/" rel="prev"' in html
    assert f'href="/images/{seen[61]}/" rel="next"' in html


@pytest.mark.django_db
def test_the_owner_chooses_the_order_on_the_edit_page(client, board, people):
    client.force_login(people["owner"])
    page = client.get(f"/boards/{board.pk}/edit/").content.decode()
    assert "Newest taken first" in page
    data = {"title": board.title, "description": "", "visibility": board.visibility, "order": "taken"}
    assert client.post(f"/boards/{board.pk}/edit/", data).status_code == 302
    board.refresh_from_db()
    assert board.order == Order.TAKEN
    client.force_login(people["contributor"])
    assert client.post(f"/boards/{board.pk}/edit/", {**data, "order": "added"}).status_code in (403, 404)
    board.refresh_from_db()
    assert board.order == Order.TAKEN
    assert selectors.board_tiles_page(board=board, user=people["viewer"], role="viewer").images == []


@pytest.mark.django_db(transaction=True)
def test_an_uploaded_photo_keeps_its_date_taken_through_the_pipeline(local_aws, client, board, people, settings):
    from tests.helpers import upload

    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    client.force_login(people["contributor"])
    body = upload(client, board.pk, jpeg_taken("2020:02:29 12:00:00", "-05:00"))
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "ready", image.error
    assert image.taken_at == dt.datetime(2020, 2, 29, 17, 0, tzinfo=UTC)
