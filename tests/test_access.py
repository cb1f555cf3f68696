"""The access matrix: anonymous, stranger, viewer, contributor, owner x every action, through the real views."""

from __future__ import annotations

import pytest
from django.test import Client

from boardsite.boards.services import board_create
from boardsite.images.models import Image

ROLES = ["anonymous", "stranger", "viewer", "contributor", "owner"]


@pytest.fixture
def image(board, people):
    return Image.objects.create(
        board=board,
        uploaded_by=people["contributor"],
        original_key=f"originals/{board.pk}/00000000-0000-0000-0000-000000000001.jpg",
        filename="x.jpg",
        content_type="image/jpeg",
        declared_size=10,
        status="ready",
    )


def client_for(role: str, people) -> Client:
    c = Client()
    if role != "anonymous":
        c.force_login(people[role])
    return c


def _login_redirect(r) -> bool:
    return r.status_code == 302 and r["Location"].startswith("/login/")


EXPECTED = {
    # action: anonymous, stranger, viewer, contributor, owner
    "view": [404, 404, 200, 200, 200],
    "status": [404, 404, 200, 200, 200],
    "upload": [403, 404, 403, 201, 201],
    "caption": [404, 404, 403, 302, 302],
    "delete_image": ["login", 404, 403, 302, 302],
    "add_member": ["login", 404, 403, 403, 302],
    "remove_member": ["login", 404, 403, 403, 302],
    "edit_board": ["login", 404, 403, 403, 200],
    "delete_board": ["login", 404, 403, 403, 302],
}


def do(action: str, c: Client, board, image):
    if action == "view":
        return c.get(f"/boards/{board.pk}/")
    if action == "status":
        return c.get(f"/api/images/{image.pk}")
    if action == "upload":
        body = {"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 100}
        return c.post("/api/uploads", body, content_type="application/json")
    if action == "caption":
        return c.post(f"/images/{image.pk}/", {"caption": "hello"})
    if action == "delete_image":
        return c.post(f"/images/{image.pk}/delete/")
    if action == "add_member":
        return c.post(f"/boards/{board.pk}/members/", {"username": "stranger", "role": "viewer"})
    if action == "remove_member":
        return c.post(f"/boards/{board.pk}/members/remove/", {"username": "viewer"})
    if action == "edit_board":
        return c.get(f"/boards/{board.pk}/edit/")
    if action == "delete_board":
        return c.post(f"/boards/{board.pk}/delete/")
    raise AssertionError(action)


@pytest.mark.parametrize("action", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(action, role, people, board, image, local_aws):
    expected = EXPECTED[action][ROLES.index(role)]
    r = do(action, client_for(role, people), board, image)
    if expected == "login":
        assert _login_redirect(r), (r.status_code, r.get("Location"))
    else:
        assert r.status_code == expected, r.content[:300]
    if action == "upload" and r.status_code != 201:
        assert "error" in r.json()


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
