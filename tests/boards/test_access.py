"""The access matrix: anonymous, stranger, viewer, contributor, owner x every action x private and public boards,
through the real views. Each case also checks what the request did: a success changed exactly what it should (rows
and S3 objects), a refusal changed nothing, and a GET on an endpoint that edits changes nothing either."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import requests
from django.test import Client

from boardsite import aws as web_aws
from boardsite.boards.models import Board, Membership
from boardsite.boards.services import board_create
from boardsite.images.models import Image, Variant
from devstack import provision
from offload import aws as offload_aws
from tests.factories import make_image

ROLES = ["anonymous", "stranger", "viewer", "contributor", "owner"]
BUCKET = "boardsite-media"
READY_ID = "00000000-0000-0000-0000-000000000001"
PENDING_ID = "00000000-0000-0000-0000-000000000002"
ABANDON_REASON = "the network went away"
LOGIN = "login"  # a redirect to the login page

# What each role gets, worked out from boardsite/boards/selectors.py, the services and the views: a private board is
# a 404 to non-members (no existence leak, except where login_required answers first); a public board is visible to
# everyone, so there a non-member who tries to act gets a 403 instead. Only the uploader reports (complete/abandon).
#         action: anonymous, stranger, viewer, contributor, owner
EXPECTED = {
    "private": {
        "view": [404, 404, 200, 200, 200],
        "image_page": [404, 404, 200, 200, 200],
        "status": [404, 404, 200, 200, 200],
        "upload": [403, 404, 403, 201, 201],
        "caption": [404, 404, 403, 302, 302],
        "delete_image": [LOGIN, 404, 403, 302, 302],
        "add_member": [LOGIN, 404, 403, 403, 302],
        "remove_member": [LOGIN, 404, 403, 403, 302],
        "edit_board": [LOGIN, 404, 403, 403, 302],
        "delete_board": [LOGIN, 404, 403, 403, 302],
        "complete": [404, 404, 403, 200, 403],
        "abandon": [404, 404, 403, 200, 403],
        # Edits are POSTs: the same endpoints answered by GET change nothing.
        "get_delete_image": [LOGIN, 405, 405, 405, 405],
        "get_add_member": [LOGIN, 405, 405, 405, 405],
        "get_remove_member": [LOGIN, 405, 405, 405, 405],
        "get_edit_board": [LOGIN, 404, 403, 403, 200],
        "get_delete_board": [LOGIN, 404, 403, 403, 200],
        "get_complete": [405, 405, 405, 405, 405],
        "get_abandon": [405, 405, 405, 405, 405],
    },
    "public": {
        "view": [200, 200, 200, 200, 200],
        "image_page": [200, 200, 200, 200, 200],
        "status": [200, 200, 200, 200, 200],
        "upload": [403, 403, 403, 201, 201],
        "caption": [403, 403, 403, 302, 302],
        "delete_image": [LOGIN, 403, 403, 302, 302],
        "add_member": [LOGIN, 403, 403, 403, 302],
        "remove_member": [LOGIN, 403, 403, 403, 302],
        "edit_board": [LOGIN, 403, 403, 403, 302],
        "delete_board": [LOGIN, 403, 403, 403, 302],
        "complete": [403, 403, 403, 200, 403],
        "abandon": [403, 403, 403, 200, 403],
        "get_delete_image": [LOGIN, 405, 405, 405, 405],
        "get_add_member": [LOGIN, 405, 405, 405, 405],
        "get_remove_member": [LOGIN, 405, 405, 405, 405],
        "get_edit_board": [LOGIN, 403, 403, 403, 200],
        "get_delete_board": [LOGIN, 403, 403, 403, 200],
        "get_complete": [405, 405, 405, 405, 405],
        "get_abandon": [405, 405, 405, 405, 405],
    },
}
assert all(set(table) == set(EXPECTED["private"]) for table in EXPECTED.values())
API_ACTIONS = {"status", "upload", "complete", "abandon", "get_complete", "get_abandon"}  # errors are JSON there


@pytest.fixture(scope="module")
def provisioned(moto_endpoint):
    """The local AWS, provisioned once for the module's ~200 cases (a reset and new clients per case cost ~0.3 s)."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    offload_aws.clear_caches()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in web_aws.offload_environment().items():
            patch.setenv(name, value)
        provision.provision(origins=["http://127.0.0.1"])
        yield


@pytest.fixture
def s3(provisioned):
    """An empty bucket for each case."""
    client = offload_aws.client("s3")
    offload_aws.delete_keys(BUCKET, offload_aws.list_keys(BUCKET, "", client), client)
    return client


def _put(s3, key: str, body: bytes = b"x", **extra) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)


@pytest.fixture
def image(board, people, s3):
    """A ready photo by the contributor, its original and variants in S3 (and its Variant rows)."""
    im = make_image(
        board,
        people["contributor"],
        image_id=READY_ID,
        variants=("thumb",),
        formats=(("webp", "webp"), ("jpeg", "jpg")),
    )
    _put(s3, im.original_key, ContentType="image/jpeg", Metadata={"declared-size": "1"})
    for variant in im.variants.order_by("pk"):
        _put(s3, variant.key)
    _put(s3, f"variants/{board.pk}/{READY_ID}/result.json", b"{}")
    return im


@pytest.fixture
def pending(board, people, s3):
    """An upload by the contributor whose bytes arrived but were not reported yet (for complete and abandon)."""
    im = make_image(board, people["contributor"], image_id=PENDING_ID, status="pending", filename="y.jpg", size=None)
    _put(s3, im.original_key, ContentType="image/jpeg", Metadata={"declared-size": "1"})
    return im


@pytest.fixture
def scene(board, people, image, pending, settings):
    # Lambda mode: `complete` only moves the row on (S3's own event would start the job), so nothing else runs.
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda", "sweep_uploads": "lambda"}
    # Someone else's board, which no action here may touch.
    board_create(user=people["stranger"], title="Elsewhere", visibility="private")
    return board


def client_for(role: str, people) -> Client:
    c = Client()
    if role != "anonymous":
        c.force_login(people[role])
    return c


def _login_redirect(r) -> bool:
    return r.status_code == 302 and r["Location"].startswith("/login/")


def snapshot(s3) -> dict[str, Any]:
    """Every row an action could change, and every object in the bucket."""
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        "boards": {b.pk: (b.title, b.description, b.visibility) for b in Board.objects.all()},
        "members": set(Membership.objects.values_list("board_id", "user__username", "role")),
        "images": {
            str(i.pk): {"board": i.board_id, "status": i.status, "caption": i.caption, "error": i.error}
            for i in Image.objects.all()
        },
        "variants": set(Variant.objects.values_list("key", flat=True)),
        "objects": {o["Key"] for o in listed},
    }


def _forget_image(state: dict[str, Any], image_id: str) -> None:
    del state["images"][image_id]
    state["variants"] = {k for k in state["variants"] if f"/{image_id}/" not in k}
    state["objects"] = {k for k in state["objects"] if image_id not in k}


def _forget_board(state: dict[str, Any], board_id: int) -> None:
    del state["boards"][board_id]
    state["members"] = {m for m in state["members"] if m[0] != board_id}
    for image_id in [i for i, row in state["images"].items() if row["board"] == board_id]:
        _forget_image(state, image_id)
    assert not any(k.startswith((f"originals/{board_id}/", f"variants/{board_id}/")) for k in state["objects"])


def _new_ticket(state: dict[str, Any], board_id: int, r) -> None:
    new_id = r.json()["image"]["id"]
    assert new_id not in state["images"]
    state["images"][new_id] = {"board": board_id, "status": "pending", "caption": "", "error": ""}


# What a successful action changes, applied to the snapshot taken before it.
EFFECTS: dict[str, Callable[[dict[str, Any], Board, Any], None]] = {
    "upload": lambda s, b, r: _new_ticket(s, b.pk, r),
    "caption": lambda s, b, r: s["images"][READY_ID].update(caption="hello"),
    "delete_image": lambda s, b, r: _forget_image(s, READY_ID),
    "add_member": lambda s, b, r: s["members"].add((b.pk, "stranger", "viewer")),
    "remove_member": lambda s, b, r: s["members"].remove((b.pk, "viewer", "viewer")),
    "edit_board": lambda s, b, r: s["boards"].update({b.pk: ("Renamed", "New words", b.visibility)}),
    "delete_board": lambda s, b, r: _forget_board(s, b.pk),
    "complete": lambda s, b, r: s["images"][PENDING_ID].update(status="processing"),
    "abandon": lambda s, b, r: _abandoned(s, b.pk),
}


def _abandoned(state: dict[str, Any], board_id: int) -> None:
    state["images"][PENDING_ID].update(
        status="failed", error=f"The upload did not finish ({ABANDON_REASON}). Please try again."
    )
    state["objects"].discard(f"originals/{board_id}/{PENDING_ID}.jpg")  # what did arrive is deleted


def do(action: str, c: Client, board: Board):
    ready, pending = f"/images/{READY_ID}/", f"/api/images/{PENDING_ID}"
    edit = {"title": "Renamed", "description": "New words", "visibility": board.visibility}
    add, remove = {"username": "stranger", "role": "viewer"}, {"username": "viewer"}
    requests = {
        "view": lambda: c.get(f"/boards/{board.pk}/"),
        # A caption in a GET's query string changes nothing.
        "image_page": lambda: c.get(ready, {"caption": "hello"}),
        "status": lambda: c.get(f"/api/images/{READY_ID}"),
        "upload": lambda: c.post(
            "/api/uploads",
            {"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 100},
            content_type="application/json",
        ),
        "caption": lambda: c.post(ready, {"caption": "hello"}),
        "delete_image": lambda: c.post(f"{ready}delete/"),
        "add_member": lambda: c.post(f"/boards/{board.pk}/members/", add),
        "remove_member": lambda: c.post(f"/boards/{board.pk}/members/remove/", remove),
        "edit_board": lambda: c.post(f"/boards/{board.pk}/edit/", edit),
        "delete_board": lambda: c.post(f"/boards/{board.pk}/delete/"),
        "complete": lambda: c.post(f"{pending}/complete"),
        "abandon": lambda: c.post(f"{pending}/abandon", {"reason": ABANDON_REASON}, content_type="application/json"),
        "get_delete_image": lambda: c.get(f"{ready}delete/"),
        "get_add_member": lambda: c.get(f"/boards/{board.pk}/members/", add),
        "get_remove_member": lambda: c.get(f"/boards/{board.pk}/members/remove/", remove),
        "get_edit_board": lambda: c.get(f"/boards/{board.pk}/edit/", edit),
        "get_delete_board": lambda: c.get(f"/boards/{board.pk}/delete/"),
        "get_complete": lambda: c.get(f"{pending}/complete"),
        "get_abandon": lambda: c.get(f"{pending}/abandon", {"reason": ABANDON_REASON}),
    }
    return requests[action]()


@pytest.mark.parametrize("action", list(EXPECTED["private"]))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("visibility", ["private", "public"])
def test_access_matrix(visibility, action, role, people, scene, s3, django_capture_on_commit_callbacks):
    board = scene
    board.visibility = visibility
    board.save()
    expected = EXPECTED[visibility][action][ROLES.index(role)]
    before = snapshot(s3)
    assert {READY_ID, PENDING_ID} <= set(before["images"])
    assert f"variants/{board.pk}/{READY_ID}/thumb.webp" in before["objects"]

    with django_capture_on_commit_callbacks(execute=True):  # storage deletions run once their transaction commits
        r = do(action, client_for(role, people), board)

    if expected == LOGIN:
        assert _login_redirect(r), (r.status_code, r.get("Location"))
    else:
        assert r.status_code == expected, r.content[:300]
    if action in API_ACTIONS and r.status_code >= 400:
        assert "error" in r.json()
    after = snapshot(s3)
    if r.status_code in (200, 201, 302) and action in EFFECTS and not _login_redirect(r):
        wanted = copy.deepcopy(before)
        EFFECTS[action](wanted, board, r)
        assert wanted != before, "the effect under test is a change"
        assert after == wanted
    else:
        assert after == before, f"{action} by {role} answered {r.status_code} but changed something"


@pytest.mark.parametrize("role", ROLES)
def test_lists_show_private_boards_only_to_members(role, people, board):
    html = client_for(role, people).get("/").content.decode()
    assert ("Holiday" in html) == (role in ("viewer", "contributor", "owner"))


def test_public_board_is_visible_to_everyone_but_open_to_upload_only_for_members(people, local_aws):
    public = board_create(user=people["owner"], title="Open house", visibility="public")
    assert Client().get(f"/boards/{public.pk}/").status_code == 200
    assert "Open house" in Client().get("/").content.decode()
    r = client_for("stranger", people).post(
        "/api/uploads",
        {"board": public.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 5},
        content_type="application/json",
    )
    assert r.status_code == 403
    assert "contributors" in r.json()["error"]


def test_owner_cannot_remove_the_last_owner(people, board):
    r = client_for("owner", people).post(f"/boards/{board.pk}/members/remove/", {"username": "owner"}, follow=True)
    assert "at least one owner" in r.content.decode()
    assert board.memberships.filter(role="owner").count() == 1


def test_api_needs_csrf_for_session_posts(people, board):
    c = Client(enforce_csrf_checks=True)
    c.force_login(people["owner"])
    body = {"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 100}
    r = c.post("/api/uploads", body, content_type="application/json")
    assert r.status_code == 403
    assert "CSRF" in r.json()["error"]
