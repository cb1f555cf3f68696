"""The pages and requests of "many photos at once": the board page's checkboxes and bar, the no-script flow through a
confirmation page and back with an Undo, the JSON requests the script makes (CSRF-protected like every session
POST), and the image page's "Download original"."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client

from boardsite.boards.models import Role
from boardsite.images.models import Image
from tests.factories import make_board, make_image, stored_image

pytestmark = pytest.mark.django_db


def ids(images: list[Image]) -> list[str]:
    return [str(i.pk) for i in images]


def client_for(user, *, csrf: bool = False) -> Client:
    c = Client(enforce_csrf_checks=csrf)
    c.force_login(user)
    return c


def csrf_token(c: Client, board) -> str:
    c.get(f"/boards/{board.pk}/")
    return c.cookies["csrftoken"].value


@pytest.fixture
def photos(s3, settings, board, people) -> list[Image]:
    owner, contributor = people["owner"], people["contributor"]
    bucket = settings.BOARDSITE_BUCKET
    return [stored_image(s3, bucket, board, owner) for _ in range(3)] + [stored_image(s3, bucket, board, contributor)]


def checkboxes(html: str) -> list[str]:
    return re.findall(r'<input type="checkbox" class="select" name="image" value="([0-9a-f-]+)" form="bulk"', html)


def hidden(photos: list[Image]) -> list[bool]:
    return [Image.objects.get(pk=p.pk).deleting_until is not None for p in photos]


def test_the_board_page_offers_checkboxes_for_what_each_may_delete_and_moving_to_owners(board, people, photos):
    make_board(people["owner"], title="Elsewhere")
    owner_page = client_for(people["owner"]).get(f"/boards/{board.pk}/").content.decode()
    assert sorted(checkboxes(owner_page)) == sorted(ids(photos))
    assert "Delete selected" in owner_page
    assert '<option value="' in owner_page
    assert "Elsewhere" in owner_page
    contributor_page = client_for(people["contributor"]).get(f"/boards/{board.pk}/").content.decode()
    assert checkboxes(contributor_page) == [str(photos[3].pk)]
    assert "Move selected to" not in contributor_page
    # More tiles, loaded as one scrolls, carry them too.
    tiles = client_for(people["owner"]).get(f"/boards/{board.pk}/tiles").json()["html"]
    assert sorted(checkboxes(tiles)) == sorted(ids(photos))
    viewer_page = client_for(people["viewer"]).get(f"/boards/{board.pk}/").content.decode()
    assert checkboxes(viewer_page) == []
    assert "Delete selected" not in viewer_page


def test_without_script_a_confirmation_page_then_the_board_with_an_undo(board, people, photos):
    owner = client_for(people["owner"], csrf=True)
    token = csrf_token(owner, board)
    chosen = ids(photos[:2])
    asked = owner.post(
        f"/boards/{board.pk}/photos/", {"csrfmiddlewaretoken": token, "action": "delete", "image": chosen}
    )
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Delete 2 photos?" in page
    assert sorted(re.findall(r'name="image" value="([0-9a-f-]+)"', page)) == sorted(chosen)
    assert hidden(photos) == [False] * 4  # asking changes nothing

    done = owner.post(
        f"/boards/{board.pk}/photos/",
        {"csrfmiddlewaretoken": token, "action": "delete", "image": chosen, "confirm": "1"},
    )
    assert done.status_code == 302
    assert hidden(photos) == [True, True, False, False]
    board_page = owner.get(done["Location"]).content.decode()
    assert "2 photos deleted." in board_page
    undo = re.search(r'action="(/batches/[0-9a-f-]+/undo/)"', board_page).group(1)
    assert sorted(checkboxes(board_page)) == sorted(ids(photos[2:]))

    assert owner.post(undo, {"csrfmiddlewaretoken": token}).status_code == 302
    assert hidden(photos) == [False] * 4
    # The offer is gone once used.
    assert undo not in owner.get(done["Location"]).content.decode()


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(board, people, photos):
    owner = client_for(people["owner"], csrf=True)
    token = csrf_token(owner, board)
    form = {"action": "delete", "image": ids(photos), "confirm": "1"}
    assert owner.post(f"/boards/{board.pk}/photos/", form).status_code == 403
    body = {"action": "delete", "ids": ids(photos)}
    api = owner.post(f"/api/boards/{board.pk}/photos", body, content_type="application/json")
    assert api.status_code == 403
    assert "CSRF" in api.json()["error"]
    assert hidden(photos) == [False] * 4
    made = owner.post(
        f"/api/boards/{board.pk}/photos", body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert made.status_code == 201
    assert owner.post(made.json()["undo_url"]).status_code == 403  # the undo too
    assert hidden(photos) == [True] * 4


def test_the_scripts_requests_delete_undo_and_finish(
    settings, board, people, photos, django_capture_on_commit_callbacks
):
    owner = client_for(people["owner"])
    made = owner.post(
        f"/api/boards/{board.pk}/photos",
        {"action": "delete", "ids": ids(photos[:3])},
        content_type="application/json",
    )
    assert made.status_code == 201
    batch = made.json()
    assert sorted(batch["ids"]) == sorted(ids(photos[:3]))
    assert batch["count"] == 3
    assert owner.post(batch["finish_url"]).json() == {"deleted": 0}  # not before the window ends
    assert owner.post(batch["undo_url"]).json()["restored"] == 3
    assert hidden(photos) == [False] * 4
    # Someone else cannot undo or finish it.
    again = owner.post(
        f"/api/boards/{board.pk}/photos", {"action": "delete", "ids": ids(photos[:1])}, content_type="application/json"
    ).json()
    contributor = client_for(people["contributor"])
    assert contributor.post(again["undo_url"]).status_code == 404
    assert contributor.post(again["finish_url"]).status_code == 404
    Image.objects.filter(pk=photos[0].pk).update(deleting_until=Image.objects.get(pk=photos[0].pk).created_at)
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(again["finish_url"]).json() == {"deleted": 1}
    assert not Image.objects.filter(pk=photos[0].pk).exists()


def test_refusals_are_sentences_on_pages_and_in_json(settings, s3, board, people, photos):
    settings.BULK_MAX_PHOTOS = 2
    owner = client_for(people["owner"])
    page = owner.post(f"/boards/{board.pk}/photos/", {"action": "delete", "image": ids(photos)})
    assert page.status_code == 400
    assert "At most 2 photos at once: you chose 4" in page.content.decode()
    other = make_board(people["owner"], title="Other", members={people["contributor"]: Role.CONTRIBUTOR})
    contributor = client_for(people["contributor"])
    moved = contributor.post(
        f"/api/boards/{board.pk}/photos",
        {"action": "move", "ids": ids(photos[3:]), "target": other.pk},
        content_type="application/json",
    )
    assert moved.status_code == 403
    assert "owns both boards" in moved.json()["error"]
    stranger = client_for(people["stranger"])
    assert stranger.post(f"/boards/{board.pk}/photos/", {"action": "delete", "image": ids(photos)}).status_code == 404
    # An action that is neither, confirmed: refused, never taken for a delete.
    odd = owner.post(f"/boards/{board.pk}/photos/", {"action": "bogus", "image": ids(photos[:1]), "confirm": "1"})
    assert odd.status_code == 400
    assert "The action is one of: delete, move." in odd.content.decode()
    assert hidden(photos) == [False] * 4


def test_moving_without_script_confirms_then_moves(board, people, photos):
    other = make_board(people["owner"], title="Other")
    owner = client_for(people["owner"])
    form = {"action": "move", "image": ids(photos[:2]), "target": other.pk}
    asked = owner.post(f"/boards/{board.pk}/photos/", form)
    assert "Move 2 photos to “Other”?" in asked.content.decode()
    done = owner.post(f"/boards/{board.pk}/photos/", {**form, "confirm": "1"})
    assert done.status_code == 302
    assert "moved to “Other”" in owner.get(done["Location"]).content.decode()
    assert list(Image.objects.filter(board=other).order_by("pk").values_list("pk", flat=True)) == sorted(
        p.pk for p in photos[:2]
    )


def test_download_original_for_owners_and_the_uploader_only(s3, settings, board, people, photos):
    theirs = photos[3]  # the contributor's
    page = client_for(people["owner"]).get(f"/images/{theirs.pk}/").content.decode()
    assert "Download original" in page
    for who in ("owner", "contributor"):
        r = client_for(people[who]).get(f"/images/{theirs.pk}/original")
        assert r.status_code == 302
        assert r["Cache-Control"] == "no-store"
        query = parse_qs(urlsplit(r["Location"]).query)
        assert query["X-Amz-Expires"] == ["300"]
        assert requests.get(r["Location"], timeout=10).content == b"original " + theirs.pk.bytes
    # A contributor who did not upload it, and a viewer: refused, and no link on the page.
    owners_photo = photos[0]
    assert client_for(people["contributor"]).get(f"/images/{owners_photo.pk}/original").status_code == 403
    assert client_for(people["viewer"]).get(f"/images/{theirs.pk}/original").status_code == 403
    assert "Download original" not in client_for(people["viewer"]).get(f"/images/{theirs.pk}/").content.decode()
    assert (
        "Download original" not in client_for(people["contributor"]).get(f"/images/{owners_photo.pk}/").content.decode()
    )
    # A stranger to the private board: as if it did not exist.
    assert client_for(people["stranger"]).get(f"/images/{theirs.pk}/original").status_code == 404
    assert Client().get(f"/images/{theirs.pk}/original").status_code == 302  # to the login page
    # Not yet processed: nothing to download.
    pending = make_image(board, people["owner"], status="processing")
    assert client_for(people["owner"]).get(f"/images/{pending.pk}/original").status_code == 400
