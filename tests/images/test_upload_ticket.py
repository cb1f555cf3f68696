"""The upload ticket: a presigned POST whose policy pins key, type, size range, expiry and encryption."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from django.test import Client

from boardsite.core import jobs
from boardsite.images.models import Image
from offload.tickets import UNCONFIRMED_TAGGING


@pytest.fixture
def owner_client(people):
    c = Client()
    c.force_login(people["owner"])
    return c


def request_ticket(c, **body):
    return c.post("/api/uploads", body, content_type="application/json")


def test_ticket_pins_every_condition(owner_client, board, local_aws, settings):
    r = request_ticket(owner_client, board=board.pk, filename="../Beach Day.JPG", content_type="image/jpeg", size=12345)
    assert r.status_code == 201
    body = r.json()
    image = Image.objects.get(pk=body["image"]["id"])
    assert body["image"]["status"] == "pending"
    assert body["image"]["status_url"] == f"/api/images/{image.pk}"
    assert image.filename == "Beach Day.JPG"
    assert image.original_key == f"originals/{jobs.mode('process_image')}/{board.pk}/{image.pk}.jpg"  # placed
    assert body["upload"]["url"].startswith(local_aws)

    fields = body["upload"]["fields"]
    assert fields["key"] == image.original_key
    assert fields["Content-Type"] == "image/jpeg"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # s3v4, not SigV2
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": settings.BOARDSITE_BUCKET} in conditions
    assert {"key": image.original_key} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 12345, 12345] in conditions, "exactly the declared size"
    assert [c for c in conditions if isinstance(c, list) and c[0] == "content-length-range"] == [
        ["content-length-range", 12345, 12345]
    ]
    # Unprocessed originals carry a tag that the bucket's lifecycle rule expires (the processor removes it).
    assert fields["tagging"] == UNCONFIRMED_TAGGING
    assert {"tagging": UNCONFIRMED_TAGGING} in conditions
    assert "<Key>boardsite-state</Key><Value>unconfirmed</Value>" in UNCONFIRMED_TAGGING
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"x-amz-meta-declared-size": "12345"} in conditions
    # No condition is left open (no starts-with wildcards).
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]

    expires = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    remaining = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < remaining <= 600
    assert dt.datetime.fromisoformat(body["upload"]["expires_at"]) <= expires + dt.timedelta(seconds=2)


def test_each_ticket_is_its_own_key_and_row(owner_client, board, local_aws):
    bodies = [
        request_ticket(owner_client, board=board.pk, filename="a.png", content_type="image/png", size=9).json()
        for _ in range(2)
    ]
    keys = {b["upload"]["fields"]["key"] for b in bodies}
    assert len(keys) == 2
    assert all(k.endswith(".png") for k in keys)
    assert Image.objects.filter(board=board).count() == 2


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"filename": "a.txt", "content_type": "text/plain", "size": 10}, 400, "not accepted"),
        ({"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}, 400, "not accepted"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 0}, 400, "size"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": -5}, 400, "size"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": "12"}, 400, "size"),
        ({"filename": "a.jpg", "content_type": "image/jpeg"}, 400, "size"),
        ({"filename": "", "content_type": "image/jpeg", "size": 10}, 400, "filename"),
        ({"filename": "a.jpg", "content_type": "image/jpeg", "size": 25 * 1024 * 1024 + 1}, 413, "limit"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(owner_client, board, local_aws, body, status, says):
    r = request_ticket(owner_client, board=board.pk, **body)
    assert r.status_code == status
    assert says in r.json()["error"]
    assert not Image.objects.exists()


@pytest.mark.parametrize("board_id", [999999, "nope", None])
def test_unknown_board(owner_client, local_aws, board_id):
    r = request_ticket(owner_client, board=board_id, filename="a.jpg", content_type="image/jpeg", size=10)
    assert r.status_code == (400 if board_id is None else 404)
    assert r.json()["error"]


def test_body_must_be_json(owner_client, local_aws):
    r = owner_client.post("/api/uploads", "board=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]


def test_configured_maximum_applies(owner_client, board, local_aws, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    r = request_ticket(owner_client, board=board.pk, filename="a.jpg", content_type="image/jpeg", size=1001)
    assert r.status_code == 413


def test_a_long_file_name_keeps_its_extension(owner_client, board, local_aws):
    r = request_ticket(owner_client, board=board.pk, filename="a" * 10000 + ".jpeg", content_type="image/jpeg", size=9)
    assert r.status_code == 201
    name = Image.objects.get(pk=r.json()["image"]["id"]).filename
    assert len(name) == 255
    assert name.endswith("a.jpeg")
