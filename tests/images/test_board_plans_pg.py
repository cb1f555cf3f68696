"""Board pages stay bounded on PostgreSQL at 5,000+ photos (issue 10): the very queries Django sends for a board's
pages (both orders, owner and non-member, first and deep pages, "is there more"), the image page's newer / older
links and the home page's cards are EXPLAINed (ANALYZE, JSON) on a board of 5,200 photos among 6,000 of other boards,
and the plans must walk the board's index in order under a Limit: no Seq Scan of images_image, no Sort of the board's
rows, and only about a page of index entries read whatever the depth.

SQLite's planner is another program (its own check is in test_notifications_inapp.py): this file runs on PostgreSQL
only, as CI does (DATABASE_URL=postgres://…).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from boardsite.boards.models import Board, Membership, Order, Role
from boardsite.boards.selectors import HOME_LIST_MAX, board_list_owned
from boardsite.images import selectors
from boardsite.images.models import Image, Status
from boardsite.images.selectors import board_cards

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL query plans: run with DATABASE_URL=postgres://…"
    ),
]

BIG = 5_200  # photos on the board under test
OTHER_BOARDS, OTHER_PHOTOS = 30, 200  # the owner's other boards: the index must pick the board's rows out of all
PAGE = selectors.BOARD_PAGE_SIZE
RECENT, TAKEN = "image_board_recent", "image_board_taken"
SCANS = {"Index Scan", "Index Only Scan"}


@dataclass
class Data:
    owner: object
    contributor: object
    stranger: object
    board: Board


def _rows(board: Board, n: int, *, start: dt.datetime, owner, contributor) -> list[Image]:
    rows = []
    for i in range(n):
        created = start + dt.timedelta(seconds=60 * (i // 2))  # pairs share a created_at: the id breaks the tie
        failed = i % 25 == 7  # 4 % failed uploads, the contributor's: hidden from everyone else but the owner
        rows.append(
            Image(
                id=uuid.uuid4(),
                board=board,
                uploaded_by=contributor if failed or i % 2 else owner,
                original_key=f"originals/{board.pk}/{uuid.uuid4()}.jpg",
                filename=f"{i}.jpg",
                content_type="image/jpeg",
                declared_size=1,
                status=Status.FAILED if failed else Status.PROCESSING if i % 97 == 3 else Status.READY,
                created_at=created,
                # Three photos in four have a date taken, in another order than added; the rest sort by date added.
                taken_at=None if i % 4 == 0 else created - dt.timedelta(days=(i * 7919) % 400, seconds=i % 7),
            )
        )
    return rows


@pytest.fixture(scope="module")
def data(django_db_setup, django_db_blocker) -> Iterator[Data]:
    """Committed (ANALYZE and the visibility map see what a live database has), removed again at the end."""
    users = get_user_model().objects
    with django_db_blocker.unblock():
        made_users = [users.create_user(username=f"plan-{name}", password="a-long-test-password") for name in "ocs"]
        owner, contributor, stranger = made_users
        start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        created_at = Image._meta.get_field("created_at")
        with transaction.atomic(), mock.patch.object(created_at, "auto_now_add", False):  # our dates, not now()
            others = Board.objects.bulk_create(
                [Board(title=f"Other {i}", created_by=owner) for i in range(OTHER_BOARDS)]
            )
            # Made last, so that it is the newest and among the home page's cards.
            board = Board.objects.create(title="Family album", visibility="public", created_by=owner)
            Membership.objects.bulk_create(
                [Membership(board=b, user=owner, role=Role.OWNER) for b in [*others, board]]
                + [Membership(board=board, user=contributor, role=Role.CONTRIBUTOR)]
            )
            rows = _rows(board, BIG, start=start, owner=owner, contributor=contributor)
            for b in others:
                rows += _rows(b, OTHER_PHOTOS, start=start, owner=owner, contributor=contributor)
            Image.objects.bulk_create(rows, batch_size=2_000)
        with connection.cursor() as cursor:
            for table in ("images_image", "boards_board", "boards_membership"):
                cursor.execute(f"VACUUM ANALYZE {table}")
        try:
            yield Data(owner=owner, contributor=contributor, stranger=stranger, board=board)
        finally:
            with transaction.atomic():
                Image.objects.filter(board__in=[*others, board])._raw_delete(connection.alias)
                Board.objects.filter(pk__in=[b.pk for b in [*others, board]]).delete()
                users.filter(pk__in=[u.pk for u in made_users]).delete()


# --- plans ------------------------------------------------------------------------------------------------------------


def explain(sql: str) -> dict:
    """The plan PostgreSQL runs for ``sql`` (Django's query as sent, parameters inlined), with actual row counts."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        (raw,) = cursor.fetchone()
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def image_scans(plan: dict) -> list[dict]:
    return [n for n in nodes(plan) if n.get("Relation Name") == "images_image"]


def read(node: dict) -> float:
    """Index entries (rows) a scan node went through per loop: those returned and those its filter threw away."""
    return node["Actual Rows"] + node.get("Rows Removed by Filter", 0)


def summary(name: str, plan: dict) -> str:
    parts = []
    for n in nodes(plan):
        what = n["Node Type"] + (f" {n['Index Name']}" if "Index Name" in n else "")
        parts.append(f"{what} (est {n['Plan Rows']}, actual {n['Actual Rows']}x{n['Actual Loops']}")
        if n.get("Rows Removed by Filter"):
            parts[-1] += f", filtered {n['Rows Removed by Filter']}"
        parts[-1] += ")"
    return f"{name}: " + " > ".join(parts)


def assert_bounded(name: str, plan: dict, *, index: str, limit: int, in_order: bool = True) -> None:
    """Reads about ``limit`` entries of the board's range of ``index``, never the whole board, and with ``in_order``
    walks it in order straight under the Limit (no Sort). Without ``in_order`` (a query that returns every row it
    reads) a Sort is fine as long as all it sorts is that bounded range."""
    text = summary(name, plan)
    print(text)
    assert plan["Node Type"] == "Limit", text
    assert not [n for n in nodes(plan) if n["Node Type"] == "Seq Scan"], text
    used = [n for n in nodes(plan) if "Index Name" in n]
    assert len(used) == 1, text  # images_image is read through one index, once
    (scan,) = used
    assert scan["Index Name"] == index, text
    assert "board_id" in scan["Index Cond"], text  # the board's range of it
    # A page's worth of the board, a few hidden failures aside: the depth of the page must not count.
    assert read(scan) <= 2 * limit + 10, text
    if in_order:
        assert plan["Plans"][0] is scan, text  # Limit > Index Scan: the index gives the order
        assert scan["Node Type"] in SCANS, text
    for node in nodes(plan):
        if node["Node Type"] in {"Sort", "Incremental Sort"}:
            assert not in_order, text
            assert node["Plans"][0]["Actual Rows"] <= limit, text


def sent(call) -> list[str]:
    """The SQL of the images_image queries ``call`` sends."""
    with CaptureQueriesContext(connection) as queries:
        call()
    return [q["sql"] for q in queries if 'FROM "images_image"' in q["sql"]]


# --- the tests -----------------------------------------------------------------------------------------------------


def _position(board: Board, depth: int) -> Image:
    return selectors._in_order(board, board.images.all()).order_by("-sort_at", "-id")[depth]


VIEWERS = {
    "owner": lambda d: (d.owner, "owner"),
    "stranger": lambda d: (d.stranger, None),  # signed in, not a member: the board is public; failures hidden
    "anonymous": lambda d: (AnonymousUser(), None),
}


@pytest.mark.parametrize("order", [Order.ADDED, Order.TAKEN])
@pytest.mark.parametrize("viewer", list(VIEWERS))
def test_board_pages_walk_the_boards_index_at_any_depth(data, order, viewer):
    board = data.board
    board.order = order
    user, role = VIEWERS[viewer](data)
    index = TAKEN if order == Order.TAKEN else RECENT

    def page(**kw):
        return selectors.board_tiles_page(board=board, user=user, role=role, **kw)

    first = page()
    assert len(first.images) == PAGE
    assert first.next_cursor
    (sql,) = sent(page)
    assert_bounded(f"{order} {viewer} first page", explain(sql), index=index, limit=PAGE + 1)

    # The next page, and one near the bottom of the board (a keyset page must cost what the first costs).
    deep = selectors.tile_cursor(_position(board, BIG - 3 * PAGE))
    for name, cursor in (("second page", first.next_cursor), ("deep page", deep)):
        assert len(page(after=cursor).images) == PAGE
        (sql,) = sent(lambda cursor=cursor: page(after=cursor))
        assert_bounded(f"{order} {viewer} {name}", explain(sql), index=index, limit=PAGE + 1)

    # ``?until=`` a position (the back button's page: at most BOARD_UNTIL_MAX tiles), the page ending there: whether
    # tiles follow it is its own query (the next tile after it).
    until = selectors.tile_cursor(_position(board, selectors.BOARD_UNTIL_MAX - PAGE))
    assert page(until=until).next_cursor
    main, more = sent(lambda: page(until=until))
    until_rows = selectors.BOARD_UNTIL_MAX - PAGE + 1  # every tile down to the position, and no more
    assert_bounded(f"{order} {viewer} until", explain(main), index=index, limit=until_rows, in_order=False)
    assert_bounded(f"{order} {viewer} is there more", explain(more), index=index, limit=1)


@pytest.mark.parametrize("order", [Order.ADDED, Order.TAKEN])
@pytest.mark.parametrize("viewer", list(VIEWERS))
def test_the_image_pages_newer_and_older_links_walk_the_index(data, order, viewer):
    board = data.board
    board.order = order
    user, role = VIEWERS[viewer](data)
    index = TAKEN if order == Order.TAKEN else RECENT
    for depth in (PAGE, BIG // 2, BIG - PAGE):  # near the top, the middle, near the bottom
        image = _position(board, depth)
        image.board = board
        # Two queries, one per link (a deferred board_id once cost one more per link).
        got = sent(lambda image=image: selectors.image_neighbours(image=image, user=user, role=role))
        assert len(got) == 2, got
        newer_sql, older_sql = got
        assert_bounded(f"{order} {viewer} newer of #{depth}", explain(newer_sql), index=index, limit=1)
        assert_bounded(f"{order} {viewer} older of #{depth}", explain(older_sql), index=index, limit=1)


def test_home_cards_cover_and_count_use_the_boards_ready_index(data):
    boards = board_list_owned(user=data.owner)[: HOME_LIST_MAX + 1]
    with CaptureQueriesContext(connection) as queries:
        cards = board_cards(boards)
    assert len(cards) == HOME_LIST_MAX + 1
    ready = Image.objects.filter(board=data.board, status=Status.READY).count()
    assert next(c["count"] for c in cards if c["board"].pk == data.board.pk) == ready
    plan = explain(queries[0]["sql"])  # the boards with their counts and cover ids
    text = summary("home cards", plan)
    print(text)
    for node in nodes(plan):
        whole_table = node["Node Type"] in {"Seq Scan", "Bitmap Heap Scan"}
        assert not (whole_table and node["Relation Name"] == "images_image"), text
        if node["Node Type"] in {"Sort", "Incremental Sort"}:
            assert not image_scans(node), text  # sorting the boards is fine; their photos, not
    count, cover = sorted(image_scans(plan), key=read, reverse=True)  # once per board each
    for scan in (count, cover):
        assert scan["Node Type"] in SCANS, text
        assert scan["Index Name"] == "image_board_ready", text
        assert "board_id" in scan["Index Cond"], text
        assert scan["Actual Loops"] == HOME_LIST_MAX + 1, text
    # The count reads the board's ready entries and nothing else: an index-only scan (no row fetched from the table).
    assert count["Node Type"] == "Index Only Scan", text
    assert count["Heap Fetches"] == 0, text
    assert read(count) <= ready, text
    # The cover: the first entry of the board's range.
    cover_limit = next(n for n in nodes(plan) if n["Node Type"] == "Limit" and cover in n.get("Plans", []))
    assert cover_limit["Plan Rows"] == 1, text
    assert read(cover) <= 1, text
