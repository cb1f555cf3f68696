"""``GET /api/images?ids=…`` (issue 10): one status request for a page's pending tiles. It answers only for images
the caller may see, lists every other id (unknown, malformed, not visible) alike in ``missing``, gives a tile only
what it draws, and costs the same few queries for 3 ids or 60."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boardsite.boards.models import Membership, Role
from boardsite.boards.services import board_create
from tests.factories import make_image
from tests.helpers import status

pytestmark = pytest.mark.django_db


def test_a_member_gets_the_tiles_and_only_the_tile_variants(local_aws, client, board, people):
    ready = make_image(board, people["contributor"])
    pending = make_image(board, people["contributor"], status="processing")
    client.force_login(people["viewer"])
    r = status(client, [ready.pk, pending.pk])
    assert r.status_code == 200
    by_id = {i["id"]: i for i in r.json()["images"]}
    assert r.json()["missing"] == []
    assert by_id[str(pending.pk)]["status"] == "processing"
    assert set(by_id[str(ready.pk)]["variants"]) == {"thumb", "medium"}  # no "large": a tile never draws it
    assert set(by_id[str(ready.pk)]["variants"]["thumb"]["formats"]) == {"webp", "jpeg"}


def test_images_one_may_not_see_are_answered_exactly_like_unknown_ids(local_aws, client, board, people):
    private = make_image(board, people["contributor"], status="processing")
    failed = make_image(board, people["contributor"], status="failed", error="Not an image.")
    unknown = uuid.uuid4()
    client.force_login(people["stranger"])
    r = status(client, [private.pk, unknown, "not-a-uuid"])
    assert r.status_code == 200
    assert r.json() == {"images": [], "missing": [str(private.pk), str(unknown), "not-a-uuid"]}
    # A failed upload: its uploader and the owners see it, other members do not (as on the board page).
    client.force_login(people["viewer"])
    assert status(client, [failed.pk]).json()["missing"] == [str(failed.pk)]
    for who in ("contributor", "owner"):
        client.force_login(people[who])
        assert status(client, [failed.pk]).json()["images"][0]["error"] == "Not an image."


def test_public_boards_answer_anonymous_callers(local_aws, client, people):
    public = board_create(user=people["owner"], title="Open", visibility="public")
    image = make_image(public, people["owner"], status="pending")
    assert status(client, [image.pk]).json()["images"][0]["status"] == "pending"


def test_the_query_count_does_not_grow_with_the_ids(local_aws, client, board, people):
    other = board_create(user=people["owner"], title="Other", visibility="private")
    Membership.objects.create(board=other, user=people["viewer"], role=Role.VIEWER)
    client.force_login(people["viewer"])
    few = [make_image(board, people["contributor"]).pk for _ in range(3)]
    many = few + [make_image(b, people["owner"]).pk for b in (board, other) for _ in range(30)]
    status(client, few)  # the session and user are loaded the same way each time: warm nothing else
    with CaptureQueriesContext(connection) as small:
        assert len(status(client, few).json()["images"]) == 3
    with CaptureQueriesContext(connection) as large:
        assert len(status(client, many).json()["images"]) == 63
    assert len(large) == len(small)


def test_no_ids_or_too_many_is_a_clear_400(client, people):
    client.force_login(people["owner"])
    r = client.get("/api/images")
    assert r.status_code == 400
    assert "ids" in r.json()["error"]
    r = status(client, [uuid.uuid4() for _ in range(101)])
    assert r.status_code == 400
    assert "At most 100" in r.json()["error"]


def test_ids_are_stripped_of_the_spaces_around_them(local_aws, client, board, people):
    a, b = make_image(board, people["owner"]), make_image(board, people["owner"], status="processing")
    client.force_login(people["viewer"])
    r = client.get("/api/images", {"ids": f" {a.pk}, {b.pk} ,"})
    assert r.status_code == 200
    assert r.json()["missing"] == []
    assert {i["id"] for i in r.json()["images"]} == {str(a.pk), str(b.pk)}


def test_verify_asks_storage_whether_the_tiles_files_are_there(local_aws, s3, settings, client, board, people):
    """``verify=1`` (a tile whose photo would not load): each ready image says whether the file the tile shows is in
    storage, from a HEAD, so the page claims "missing" only when it is so."""
    present, gone = make_image(board, people["owner"]), make_image(board, people["owner"])
    pending = make_image(board, people["owner"], status="processing")
    # The tile's plain <img src>: the smallest tile variant in the fallback format (thumb.jpeg).
    s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=f"variants/{board.pk}/{present.pk}/thumb.jpeg", Body=b"x")
    client.force_login(people["viewer"])
    r = client.get("/api/images", {"ids": f"{present.pk},{gone.pk},{pending.pk}", "verify": "1"})
    assert r.status_code == 200
    files = {i["id"]: i.get("files") for i in r.json()["images"]}
    assert files == {str(present.pk): "present", str(gone.pk): "missing", str(pending.pk): None}
    assert "files" not in status(client, [present.pk]).json()["images"][0]  # only when asked: it costs a HEAD
    # A stranger learns nothing, files or not.
    client.force_login(people["stranger"])
    assert client.get("/api/images", {"ids": f"{present.pk},{gone.pk}", "verify": "1"}).json() == {
        "images": [],
        "missing": [str(present.pk), str(gone.pk)],
    }


def test_verify_checks_a_few_ids_at_most_and_says_so_otherwise(local_aws, client, people):
    from boardsite.images.selectors import STATUS_VERIFY_MAX

    client.force_login(people["owner"])
    ids = ",".join(str(uuid.uuid4()) for _ in range(STATUS_VERIFY_MAX + 1))
    r = client.get("/api/images", {"ids": ids, "verify": "1"})
    assert r.status_code == 400
    assert f"At most {STATUS_VERIFY_MAX} ids with verify=1" in r.json()["error"]
    assert client.get("/api/images", {"ids": ids}).status_code == 200  # without it, the batch's own limit


def test_verify_is_a_503_when_storage_does_not_answer(local_aws, client, board, people, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    from boardsite.images import services

    image = make_image(board, people["owner"])

    real = services.aws.client

    class Down:  # signs URLs as before; its HEADs do not get through
        def __init__(self, service, **kwargs):
            self._client = real(service, **kwargs)

        def __getattr__(self, name):
            return getattr(self._client, name)

        def head_object(self, **kwargs):
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    monkeypatch.setattr(services.aws, "client", Down)
    client.force_login(people["owner"])
    r = client.get("/api/images", {"ids": str(image.pk), "verify": "1"})
    assert r.status_code == 503  # nobody knows: the page says "could not be loaded", never "missing"
