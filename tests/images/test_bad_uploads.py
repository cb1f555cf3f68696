"""Bad uploads end ``failed`` with a reason a person can read; nothing is left pending, nothing crashes."""

from __future__ import annotations

import io
import os

import pytest
import requests
from django.test import Client
from PIL import Image as PILImage

from boardsite.images.models import Image
from tests.helpers import post_to_s3, ticket, upload


@pytest.fixture
def uploader(people, settings):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    c = Client()
    c.force_login(people["contributor"])
    return c


def _png_bomb() -> bytes:
    # 20000 x 20000 = 400 megapixels, a few KB on disk: refused from the header, before any pixel is decoded.
    buf = io.BytesIO()
    PILImage.new("1", (20000, 20000)).save(buf, "PNG")
    return buf.getvalue()


def _outcome(client, body):
    image = Image.objects.get(pk=body["image"]["id"])
    api = client.get(body["image"]["status_url"]).json()
    assert api["status"] == image.status
    assert api["error"] == (image.error or None)
    return image


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("notes.jpg", lambda jpeg: b"%PDF-1.7 this is not a photo\n" * 200, "not an image"),
        ("cut.jpg", lambda jpeg: jpeg()[: len(jpeg()) // 2], "incomplete or corrupt"),
        ("empty-ish.jpg", lambda jpeg: b"\xff\xd8\xff", "not an image"),
    ],
)
def test_undecodable_files_fail_with_a_reason(uploader, board, s3, jpeg, name, make, reason):
    body = upload(uploader, board.pk, make(jpeg), name=name)
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert reason in image.error
    assert not image.variants.exists()
    assert "Contents" not in s3.list_objects_v2(
        Bucket="boardsite-media", Prefix="variants/" + str(board.pk) + "/" + str(image.pk) + "/large"
    )


def test_pixel_bomb_is_refused_before_decoding(uploader, board, local_aws):
    bomb = _png_bomb()
    assert len(bomb) < 200_000
    body = upload(uploader, board.pk, bomb, content_type="image/png", name="bomb.png")
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert "too many pixels" in image.error


def test_dimensions_over_the_configured_limit(uploader, board, local_aws, jpeg, monkeypatch):
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "500000")  # 1200 x 800 = 960000 > limit, < 2x limit
    body = upload(uploader, board.pk, jpeg())
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert "too many pixels" in image.error or "limit" in image.error


def test_object_larger_than_declared(uploader, board, local_aws, jpeg):
    data = jpeg()
    body = ticket(uploader, board.pk, data[:1000])  # declares 1000 bytes...
    post_to_s3(body["upload"], data)  # ...sends more (real S3 would refuse; moto does not enforce the policy)
    assert uploader.post(body["image"]["complete_url"]).status_code == 200
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert f"{len(data)} bytes but the upload declared 1000 bytes" in image.error


def test_the_bytes_decide_the_type_not_the_name_or_declared_type(uploader, board, local_aws, jpeg):
    # A JPEG saved as .png (phones and chat apps do this) is still a photo: it is decoded as what it really is.
    body = upload(uploader, board.pk, jpeg(), content_type="image/png", name="really-a-jpeg.png")
    image = _outcome(uploader, body)
    assert image.status == "ready", image.error
    assert image.variants.count() == 6


def test_complete_before_the_bytes_arrived_is_a_clear_error(uploader, board, local_aws, jpeg):
    body = ticket(uploader, board.pk, jpeg())
    r = uploader.post(body["image"]["complete_url"])
    assert r.status_code == 400
    assert "has not arrived" in r.json()["error"]
    assert Image.objects.get(pk=body["image"]["id"]).status == "pending"


def test_failed_uploads_are_shown_to_the_uploader_only(uploader, board, people, local_aws):
    body = upload(uploader, board.pk, b"not an image at all", name="oops.jpg")
    page = uploader.get(f"/boards/{board.pk}/").content.decode()
    assert "oops.jpg" in page
    assert "not an image" in page
    viewer = Client()
    viewer.force_login(people["viewer"])
    assert "oops.jpg" not in viewer.get(f"/boards/{board.pk}/").content.decode()
    assert viewer.get(body["image"]["status_url"]).status_code == 404


def test_stored_content_type_is_checked_again(uploader, board, s3, jpeg):
    # Real S3 enforces the policy's Content-Type; a client is never trusted (and moto enforces nothing): an object
    # stored as text/html is refused even with a correct size and real JPEG bytes, so it is never served as HTML.
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    upload = body["upload"]
    requests.post(
        upload["url"],
        data={**upload["fields"], "Content-Type": "text/html"},
        files={"file": ("f", data, "text/html")},
        timeout=30,
    ).raise_for_status()
    head = s3.head_object(Bucket="boardsite-media", Key=upload["fields"]["key"])
    assert (head["ContentType"], head["ContentLength"]) == ("text/html", len(data)), "stored as the test means"
    assert head["Metadata"]["declared-size"] == str(len(data))
    assert uploader.post(body["image"]["complete_url"]).status_code == 200
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert "Files of type text/html are not accepted" in image.error
    assert not image.variants.exists()


def test_stored_size_is_checked_against_the_limit_again(uploader, board, s3, jpeg, settings):
    # The declared size matches the object, and the ticket was issued under a larger limit; the processor still
    # refuses what is over the limit in its own environment (inline, the site hands it its settings as on Lambda).
    data = jpeg()
    limit = len(data) - 1000
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    head = s3.head_object(Bucket="boardsite-media", Key=body["upload"]["fields"]["key"])
    assert head["ContentLength"] == len(data) > limit
    assert head["Metadata"]["declared-size"] == str(len(data))
    settings.UPLOAD_MAX_BYTES = limit
    assert uploader.post(body["image"]["complete_url"]).status_code == 200
    assert os.environ["UPLOAD_MAX_BYTES"] == str(limit), "the limit the function read"
    image = _outcome(uploader, body)
    assert image.status == "failed"
    assert f"more than the {limit / 1048576:.1f} MB limit" in image.error
    assert not image.variants.exists()
