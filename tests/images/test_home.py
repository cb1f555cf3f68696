"""The home page at any number of boards (issue 10): capped lists with "See all" pages, a cover (the newest ready
photo's thumbnail) and a photo count on every card, at a query count that does not grow with the boards; and
``core``, the ground floor, imports no app above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boardsite.boards.selectors import HOME_LIST_MAX
from tests.factories import add_images, add_thumb, make_boards

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def test_home_costs_the_same_queries_with_ten_or_a_thousand_boards(local_aws, client, people):
    owner, member = people["owner"], people["viewer"]
    make_boards(owner, member, 10)
    make_boards(member, owner, 10)
    client.force_login(owner)
    client.get("/")
    with CaptureQueriesContext(connection) as few:
        small = client.get("/")
    make_boards(owner, member, 1000)
    make_boards(member, owner, 1000)
    with CaptureQueriesContext(connection) as many:
        large = client.get("/")
    assert len(many) == len(few)
    html = large.content.decode()
    assert html.count('class="card-board"') <= 3 * HOME_LIST_MAX
    assert 'href="/boards/mine/"' in html
    assert 'href="/boards/shared/"' in html
    assert 'href="/boards/mine/"' in small.content.decode()  # 20 owned already passes the cap of 12


def test_cards_show_the_newest_ready_photo_and_the_count_of_ready_photos(local_aws, client, people):
    from boardsite.boards.services import board_create

    board = board_create(user=people["owner"], title="Trip", visibility="private")
    older, newest = add_images(board, people["owner"], 2, ties=1)
    for image in (older, newest):
        add_thumb(image)
    add_images(board, people["owner"], 3, status="processing", start=timezone.now())  # newer, not ready: no cover
    client.force_login(people["owner"])
    html = client.get("/").content.decode()
    assert "2 photos" in html
    assert f"{newest.pk}/thumb.webp" in html
    assert f"{older.pk}/thumb.webp" not in html


def test_see_all_pages_list_every_board_a_page_at_a_time(client, people):
    make_boards(people["owner"], people["viewer"], 60)
    client.force_login(people["viewer"])
    first = client.get("/boards/shared/")
    assert first.status_code == 200
    assert first.content.decode().count('class="card-board"') == 48
    assert client.get("/boards/shared/", {"page": 2}).content.decode().count('class="card-board"') == 12
    client.logout()
    assert client.get("/boards/mine/").status_code == 302  # log in first
    assert client.get("/boards/public/").status_code == 200


def test_core_imports_no_app_above_it():
    apps = ("boardsite.accounts", "boardsite.boards", "boardsite.images", "boardsite.notifications")
    climbing = []
    for path in sorted((ROOT / "boardsite" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            climbing += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith(apps)]
    assert climbing == []
