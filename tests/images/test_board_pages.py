"""Board pages of bounded cost (issue 10): keyset pages newest first, every image exactly once while others are added
and deleted between pages, the first page's queries independent of the board's size, the tile endpoint guarded like
the board page, and ``?until=`` rendering down to where the back button returns."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boardsite.images import selectors
from boardsite.images.models import Image
from tests.factories import add_images
from tests.helpers import walk

pytestmark = pytest.mark.django_db


def test_pages_walk_every_image_once_newest_first_while_others_come_and_go(board, people):
    images = add_images(board, people["contributor"], 200)
    original = {i.pk for i in images}
    deleted = set()

    def churn(page_number):
        add_images(board, people["contributor"], 5, start=timezone.now())  # newer: before the cursor, not walked
        if page_number < 3:  # 200 images: pages 1-3 of 60 leave the oldest 20 for page 4
            victim = images[page_number * 5]  # among the oldest: not walked yet
            deleted.add(victim.pk)
            victim.delete()

    seen = walk(board, people["owner"], "owner", between=churn)
    assert len(seen) == len(set(seen))  # exactly once
    assert set(seen) == original - deleted
    order = {i.pk: (i.created_at, i.pk) for i in Image.objects.filter(pk__in=seen)}
    assert seen == sorted(seen, key=lambda pk: order[pk], reverse=True)


def test_the_first_page_costs_the_same_queries_at_any_size(client, board, people):
    client.force_login(people["viewer"])
    add_images(board, people["contributor"], selectors.BOARD_PAGE_SIZE + 5)
    client.get(f"/boards/{board.pk}/")
    with CaptureQueriesContext(connection) as small:
        small_page = client.get(f"/boards/{board.pk}/")
    add_images(board, people["contributor"], 600)
    with CaptureQueriesContext(connection) as large:
        large_page = client.get(f"/boards/{board.pk}/")
    assert len(large) == len(small)
    count = large_page.content.decode().count('class="tile"')
    assert count == small_page.content.decode().count('class="tile"') == selectors.BOARD_PAGE_SIZE


def test_failed_uploads_are_left_out_in_the_query_so_pages_stay_full(board, people):
    add_images(board, people["contributor"], selectors.BOARD_PAGE_SIZE)
    add_images(board, people["contributor"], 10, status="failed", start=timezone.now())
    viewer_page = selectors.board_tiles_page(board=board, user=people["viewer"], role="viewer")
    assert len(viewer_page.images) == selectors.BOARD_PAGE_SIZE
    assert all(i.status == "ready" for i in viewer_page.images)
    assert viewer_page.next_cursor is None
    for who, role in (("owner", "owner"), ("contributor", "contributor")):
        page = selectors.board_tiles_page(board=board, user=people[who], role=role)
        assert sum(i.status == "failed" for i in page.images) == 10


def test_the_tile_endpoint_gives_the_next_page_and_refuses_strangers_like_the_board(client, board, people):
    add_images(board, people["contributor"], selectors.BOARD_PAGE_SIZE + 7)
    client.force_login(people["viewer"])
    first = client.get(f"/boards/{board.pk}/")
    cursor = first.context["page"].next_cursor
    assert f'data-next="{cursor}"' in first.content.decode()
    r = client.get(f"/boards/{board.pk}/tiles", {"after": cursor})
    assert r.status_code == 200
    assert r.json()["next"] is None
    assert r.json()["html"].count('class="tile"') == 7
    client.force_login(people["stranger"])
    assert client.get(f"/boards/{board.pk}/").status_code == 404
    refused = client.get(f"/boards/{board.pk}/tiles", {"after": cursor})
    missing = client.get("/boards/999999/tiles", {"after": cursor})
    assert (refused.status_code, refused.json()) == (missing.status_code, missing.json())
    assert refused.status_code == 404
    client.logout()
    assert client.get(f"/boards/{board.pk}/tiles").status_code == 404


def test_until_renders_down_to_the_position_the_back_button_returns_to(client, board, people):
    add_images(board, people["contributor"], 3 * selectors.BOARD_PAGE_SIZE)
    client.force_login(people["owner"])
    first = selectors.board_tiles_page(board=board, user=people["owner"], role="owner")
    second = selectors.board_tiles_page(board=board, user=people["owner"], role="owner", after=first.next_cursor)
    page = client.get(f"/boards/{board.pk}/", {"until": second.last_cursor})
    html = page.content.decode()
    assert html.count('class="tile"') == 2 * selectors.BOARD_PAGE_SIZE
    assert f'data-next="{second.next_cursor}"' in html
    # Down to the very last tile: no "More photos".
    everything = walk(board, people["owner"], "owner")
    last = selectors.tile_cursor(Image.objects.get(pk=everything[-1]))
    assert 'id="more"' not in client.get(f"/boards/{board.pk}/", {"until": last}).content.decode()


def test_a_page_of_its_own_without_script_and_a_bad_position_is_a_clear_400(client, board, people):
    add_images(board, people["contributor"], selectors.BOARD_PAGE_SIZE + 1)
    client.force_login(people["owner"])
    cursor = selectors.board_tiles_page(board=board, user=people["owner"], role="owner").next_cursor
    html = client.get(f"/boards/{board.pk}/", {"after": cursor}).content.decode()
    assert html.count('class="tile"') == 1
    assert "Newest photos" in html
    for bad in ("x", "12.zz", "999999999999999999999999.00"):
        r = client.get(f"/boards/{board.pk}/tiles", {"after": bad})
        assert r.status_code == 400
        assert "not valid" in r.json()["error"]


def test_after_and_until_together_render_from_the_position_down_to_the_other(client, board, people):
    """A "More photos" page opened in its own tab and scrolled further: ``?after=X&until=Y`` (the address board.js
    keeps) renders the tiles after X down to Y, not the board from the top."""
    add_images(board, people["contributor"], 3 * selectors.BOARD_PAGE_SIZE + 5)
    client.force_login(people["owner"])
    first = selectors.board_tiles_page(board=board, user=people["owner"], role="owner")
    second = selectors.board_tiles_page(board=board, user=people["owner"], role="owner", after=first.next_cursor)
    third = selectors.board_tiles_page(board=board, user=people["owner"], role="owner", after=second.next_cursor)
    r = client.get(f"/boards/{board.pk}/", {"after": first.next_cursor, "until": third.last_cursor})
    assert [t["image"].pk for t in r.context["tiles"]] == [i.pk for i in second.images + third.images]
    html = r.content.decode()
    assert f'data-next="{third.next_cursor}"' in html
    assert "Newest photos" in html
