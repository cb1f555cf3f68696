"""Notifications in the site (issue 9): the events that make them, through the real upload pipeline (inline mode,
moto's S3 over HTTP), the header's count, the notifications page, mark read and mark all read."""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid

import pytest
from django.db import IntegrityError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from boardsite.boards.models import Membership, Role
from boardsite.boards.services import board_create, board_member_add, board_member_remove
from boardsite.images.models import Image
from boardsite.images.results import image_result_apply
from boardsite.images.services import NOT_CONTRIBUTOR, image_delete
from boardsite.images.sweep import GONE, NEVER_ARRIVED, image_sweep_stale
from boardsite.notifications import events, selectors, services
from boardsite.notifications.models import Kind, Notification
from offload import aws as offload_aws
from offload import results
from tests.factories import failed_result, make_user, processing_image, ready_result
from tests.helpers import run_in_thread, ticket, upload

pytestmark = pytest.mark.django_db

NOT_A_PHOTO = b"%PDF-1.7 this is not a photo\n" * 200


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def inline(settings):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}


@pytest.fixture
def contributor(people, inline) -> Client:
    return client_for(people["contributor"])


def notes(user, kind=None):
    rows = Notification.objects.filter(user=user)
    return list(rows.filter(kind=kind) if kind else rows)


# --- photos added ----------------------------------------------------------------------------------------------------


def test_photos_uploaded_through_the_pipeline_notify_each_member_once_per_burst_never_the_uploader(
    contributor, board, people, s3, jpeg
):
    second_owner = make_user("second_owner")
    Membership.objects.create(board=board, user=second_owner, role=Role.OWNER)
    bodies = [upload(contributor, board.pk, jpeg(), name=f"beach-{n}.jpg") for n in range(3)]
    assert {Image.objects.get(pk=b["image"]["id"]).status for b in bodies} == {"ready"}

    assert notes(people["contributor"]) == [], "the uploader is not told of their own photos"
    assert notes(people["stranger"]) == []
    for member in (people["owner"], second_owner, people["viewer"]):
        (row,) = notes(member)
        assert (row.kind, row.count, row.board_id, row.actor_id) == (
            Kind.PHOTOS_ADDED,
            3,
            board.pk,
            people["contributor"].pk,
        )
        assert str(row.image_id) == bodies[-1]["image"]["id"]  # the latest photo of the burst

    page = client_for(people["owner"]).get("/notifications/")
    assert "contributor added 3 photos to Holiday" in page.content.decode()


def test_a_photo_after_the_burst_went_quiet_is_a_new_notification(contributor, board, people, s3, jpeg):
    upload(contributor, board.pk, jpeg())
    quiet = dt.timedelta(seconds=services.NOTIFY_BURST_SECONDS + 5)
    Notification.objects.update(updated_at=timezone.now() - quiet)
    upload(contributor, board.pk, jpeg())
    assert sorted(n.count for n in notes(people["owner"])) == [1, 1]


def test_a_duplicated_result_notifies_nobody_a_second_time(contributor, board, people, s3, jpeg, settings):
    body = upload(contributor, board.pk, jpeg())
    image = Image.objects.get(pk=body["image"]["id"])
    # The very result the processor stored beside the variants, delivered again (SQS is at-least-once).
    stored = results.read_manifest(
        offload_aws.client("s3"), settings.BOARDSITE_BUCKET, results.variants_prefix(image.original_key)
    )
    assert stored is not None
    assert stored["status"] == "ready"
    assert image_result_apply(result=stored) is False
    assert [(n.kind, n.count) for n in notes(people["owner"])] == [(Kind.PHOTOS_ADDED, 1)]


def test_a_result_rolled_back_notifies_nobody(board, people):
    image = processing_image(board, people["contributor"])
    # A negative width breaks the variant table's CHECK constraint: the result's transaction is rolled back whole.
    with pytest.raises(IntegrityError):
        image_result_apply(result=ready_result(image, width=-5))
    assert Notification.objects.count() == 0
    assert image_result_apply(result=ready_result(image)) is True
    assert [n.user.username for n in Notification.objects.order_by("user__username")] == ["owner", "viewer"]


@pytest.mark.django_db(transaction=True)
def test_results_applied_side_by_side_grow_one_burst(board, people, monkeypatch):
    """Lambda applies results of one board in parallel. The first result's transaction is held open just after it
    recorded the burst; the second must wait for it (the board's row lock) and grow that burst, not start another.
    Meaningful on PostgreSQL (``.ci/run``); SQLite serializes whole write transactions anyway."""
    first, second = (processing_image(board, people["contributor"]) for _ in range(2))
    recorded, release = threading.Event(), threading.Event()
    photo_ready = events.photo_ready

    def held_open(*, image):
        touched = photo_ready(image=image)
        if image.pk == first.pk:
            recorded.set()
            release.wait(10)  # still inside the first result's transaction
        return touched

    monkeypatch.setattr(events, "photo_ready", held_open)
    a = run_in_thread(image_result_apply, result=ready_result(first))
    assert recorded.wait(10)
    b = run_in_thread(image_result_apply, result=ready_result(second))
    b.join(1.0)
    assert b.is_alive(), "the second result waits for the first one's commit"
    release.set()
    a.join(10)
    b.join(10)
    assert Image.objects.filter(status="ready").count() == 2
    rows = Notification.objects.order_by("user__username")
    assert [(n.user.username, n.count) for n in rows] == [("owner", 2), ("viewer", 2)]


# --- uploads that fail -----------------------------------------------------------------------------------------------


def test_a_failed_upload_notifies_its_uploader_once_with_the_reason(contributor, board, people, s3):
    body = upload(contributor, board.pk, NOT_A_PHOTO, name="notes.jpg")
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "failed"
    assert "not an image" in image.error

    (row,) = notes(people["contributor"])
    assert row.kind == Kind.UPLOAD_FAILED
    assert row.data == {"filename": "notes.jpg", "reason": image.error}
    assert (row.board_id, row.image_id) == (board.pk, image.pk)
    assert Notification.objects.exclude(user=people["contributor"]).count() == 0, "nobody else hears of it"

    # The same failed result again, a late report, a sweep: it failed once, so once it is told.
    assert image_result_apply(result=failed_result(image)) is False
    assert contributor.post(body["image"]["complete_url"]).status_code == 200
    image_sweep_stale(now=timezone.now() + dt.timedelta(days=1))
    assert len(notes(people["contributor"])) == 1

    page = contributor.get("/notifications/").content.decode()
    assert f"Your upload notes.jpg failed: {image.error}" in page.replace("&#x27;", "'")
    # It leads to the failed photo's page, which its uploader may see (with the reason).
    r = contributor.post(f"/notifications/{row.pk}/read/")
    assert r["Location"] == f"/images/{image.pk}/"
    assert contributor.get(r["Location"]).status_code == 200


def test_every_way_an_upload_fails_notifies_once_but_abandoning_it_does_not(board, people, s3, settings, jpeg):
    settings.UPLOAD_TICKET_SECONDS, settings.PROCESSING_RETRY_SECONDS = 600, 300
    contributor = people["contributor"]
    c = client_for(contributor)
    # 1. The bytes never arrived before the ticket expired: the sweep's NEVER_ARRIVED.
    never_sent = Image.objects.get(pk=ticket(c, board.pk, jpeg(), name="never.jpg")["image"]["id"])
    # 2. Processing, and the original is gone: the sweep gives up through image_fail (GONE).
    gone = processing_image(board, contributor)
    # 3. The browser gave up sending: abandoned by the uploader, who saw it fail there.
    abandoned = ticket(c, board.pk, jpeg(), name="abandoned.jpg")
    r = c.post(abandoned["image"]["abandon_url"], {"reason": "network"}, content_type="application/json")
    assert r.json()["status"] == "failed"

    later = timezone.now() + dt.timedelta(hours=2)
    for _ in range(2):  # a second sweep finds nothing left to fail
        image_sweep_stale(now=later)

    failed = {n.image_id: n.data for n in notes(contributor, Kind.UPLOAD_FAILED)}
    assert failed == {
        never_sent.pk: {"filename": "never.jpg", "reason": NEVER_ARRIVED},
        gone.pk: {"filename": "p.jpg", "reason": GONE},
    }
    assert Notification.objects.exclude(user=contributor).count() == 0


def test_a_result_for_someone_removed_from_the_board_tells_them_without_naming_the_board(board, people):
    image = processing_image(board, people["contributor"])
    board_member_remove(board=board, user=people["owner"], username="contributor")
    board.title = "Renamed since"
    board.save()
    assert image_result_apply(result=ready_result(image)) is True
    image.refresh_from_db()
    assert (image.status, image.error) == ("failed", NOT_CONTRIBUTOR)

    (row,) = notes(people["contributor"])
    assert row.data["reason"] == NOT_CONTRIBUTOR
    assert notes(people["owner"]) == [], "a photo that was not added is no news to the members"
    (shown,) = selectors.notification_page(user=people["contributor"]).object_list
    assert shown.url is None, "a private board they left: nothing to link to"
    assert "Renamed since" not in shown.sentence


# --- added to a board ------------------------------------------------------------------------------------------------


def test_being_added_to_a_board_says_the_role_and_who(people):
    owner, stranger = people["owner"], people["stranger"]
    board = board_create(user=owner, title="Garden")
    assert Notification.objects.count() == 0, "making your own board is no news to you"

    r = client_for(owner).post(f"/boards/{board.pk}/members/", {"username": "stranger", "role": "contributor"})
    assert r.status_code == 302
    (row,) = notes(stranger)
    assert (row.kind, row.board_id, row.actor_id, row.data) == (
        Kind.BOARD_ADDED,
        board.pk,
        owner.pk,
        {"role": "contributor"},
    )

    # A changed role is not another "added"; nor is adding someone who is there already.
    board_member_add(board=board, user=owner, username="stranger", role="viewer")
    board_member_add(board=board, user=owner, username="stranger", role="viewer")
    assert len(notes(stranger)) == 1
    assert notes(owner) == []

    page = client_for(stranger).get("/notifications/").content.decode()
    assert "owner added you to Garden as contributor" in page
    assert f'href="/boards/{board.pk}/"' not in page, "unread: a button that marks it read, not a bare link"
    assert f'action="/notifications/{row.pk}/read/"' in page


def test_a_refused_member_add_notifies_nobody(board, people):
    with pytest.raises(Exception, match="owners"):
        board_member_add(board=board, user=people["contributor"], username="stranger", role="viewer")
    assert Notification.objects.count() == 0


# --- the header ------------------------------------------------------------------------------------------------------

HEADER_LINK = re.compile(r'<a class="notifications-link"([^>]*)>(.*?)</a>', re.S)


def _notification_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "notifications_notification" in q["sql"]]


def test_the_header_count_is_one_query_and_part_of_the_links_name(board, people):
    for _ in range(3):
        services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board)
    services.notify(user=people["viewer"], kind=Kind.BOARD_ADDED, board=board)
    owner = client_for(people["owner"])
    with CaptureQueriesContext(connection) as queries:
        page = owner.get(f"/boards/{board.pk}/")
    assert page.status_code == 200
    (sql,) = _notification_queries(queries)
    assert "COUNT(" in sql.upper()
    assert "read_at" in sql
    attrs, text = HEADER_LINK.search(page.content.decode()).groups()
    # The count is part of the link's name: screen readers say "Notifications, 3 unread" (the e2e test reads the
    # name from the browser's accessibility tree); the name holds the visible words (WCAG's "label in name").
    assert 'aria-label="Notifications, 3 unread"' in attrs
    assert text == 'Notifications<span class="count">3</span>'

    # The notifications page uses the count twice (the badge, "Mark all read"): still counted once.
    with CaptureQueriesContext(connection) as queries:
        assert owner.get("/notifications/").status_code == 200
    assert len([q for q in _notification_queries(queries) if "COUNT(" in q.upper() and "read_at" in q]) == 1

    services.notifications_mark_all_read(user=people["owner"])
    attrs, text = HEADER_LINK.search(owner.get("/").content.decode()).groups()
    assert (text, "aria-label" in attrs) == ("Notifications", False), "no count when nothing is unread"


def test_the_count_query_uses_the_partial_unread_index(people):
    if connection.vendor != "sqlite":
        pytest.skip("the plan's wording is SQLite's")
    services.notify(user=people["owner"], kind=Kind.BOARD_ADDED)
    with CaptureQueriesContext(connection) as queries:
        services.unread_count(people["owner"])
    (query,) = queries
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")  # the very query, as Django sent it
        plan = " ".join(str(r) for r in cursor.fetchall())
    assert "notification_unread" in plan, plan


def test_anonymous_visitors_cost_no_notification_query(board, people):
    services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board)
    with CaptureQueriesContext(connection) as queries:
        page = Client().get("/")
    assert page.status_code == 200
    assert _notification_queries(queries) == []
    assert "notifications-link" not in page.content.decode()


# --- the page --------------------------------------------------------------------------------------------------------


def _many(user, board, n: int, *, start: dt.datetime) -> list[Notification]:
    """``n`` notifications of every kind, one a minute from ``start``, each with its actor and photo."""
    actor = make_user(f"actor{uuid.uuid4().hex[:6]}")
    image = processing_image(board, user)
    made = []
    for i in range(n):
        kind = (Kind.PHOTOS_ADDED, Kind.BOARD_ADDED, Kind.UPLOAD_FAILED)[i % 3]
        made.append(
            services.notify(
                user=user,
                kind=kind,
                board=board,
                actor=actor,
                image=image,
                data={"role": "viewer", "filename": f"f{i}.jpg", "reason": "Broken."},
                now=start + dt.timedelta(minutes=i),
            )
        )
    return made


def _page_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'action="/notifications/(\d+)/read/"', html)]


def test_the_page_is_newest_first_paginated_and_its_queries_do_not_grow_with_it(board, people):
    owner = people["owner"]
    made = _many(owner, board, 45, start=timezone.now() - dt.timedelta(days=1))
    c = client_for(owner)

    first = c.get("/notifications/").content.decode()
    assert _page_ids(first) == [n.pk for n in reversed(made)][:20]
    assert '<span aria-current="page">1</span>' in first
    assert 'href="?page=2"' in first
    assert 'href="?page=3"' in first
    last = c.get("/notifications/?page=3").content.decode()
    assert _page_ids(last) == [n.pk for n in reversed(made)][40:]
    # A page number that is not one shows the first page; one past the end, the last.
    assert _page_ids(c.get("/notifications/?page=abc").content.decode()) == _page_ids(first)
    assert _page_ids(c.get("/notifications/?page=99").content.decode()) == _page_ids(last)

    def queries_for(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert c.get(url).status_code == 200
        return len(queries)

    # 20 rows of three kinds with actors, photos and boards cost what 5 rows cost: nothing is fetched per row.
    assert queries_for("/notifications/?page=1") == queries_for("/notifications/?page=3")
    other_board = board_create(user=owner, title="Another")
    _many(owner, other_board, 3, start=timezone.now())
    assert queries_for("/notifications/?page=1") == queries_for("/notifications/?page=3")


def test_unread_rows_say_so_in_words_and_the_page_links_to_preferences(board, people):
    owner = people["owner"]
    _unread, read = _many(owner, board, 2, start=timezone.now())
    services.notification_mark_read(user=owner, notification_id=read.pk)
    html = client_for(owner).get("/notifications/").content.decode()
    rows = re.findall(r'<li class="(unread|read)">(.*?)</li>', html, re.S)
    assert [cls for cls, _ in rows] == ["read", "unread"]  # newest first: the read one is newer
    assert ">New<" in rows[1][1]
    assert ">New<" not in rows[0][1]
    assert reverse("notification-preferences") in html


def test_the_page_needs_a_log_in(people):
    r = Client().get("/notifications/")
    assert r.status_code == 302
    assert r["Location"].startswith("/login/")


# --- mark read -------------------------------------------------------------------------------------------------------


def test_mark_one_read_goes_to_its_photo_or_its_board_once_the_photo_is_gone(board, people):
    owner, contributor = people["owner"], people["contributor"]
    image = processing_image(board, contributor)
    image_result_apply(result=ready_result(image))
    (row,) = notes(owner)
    c = client_for(owner)
    r = c.post(f"/notifications/{row.pk}/read/")
    assert r.status_code == 302
    assert r["Location"] == f"/images/{image.pk}/"
    assert c.get(r["Location"]).status_code == 200
    row.refresh_from_db()
    assert row.read_at is not None
    assert services.unread_count(owner) == 0

    image_delete(user=owner, image_id=image.pk)
    r = c.post(f"/notifications/{row.pk}/read/")  # read already: it still leads somewhere
    assert r["Location"] == f"/boards/{board.pk}/"
    assert f'<a class="sentence" href="/boards/{board.pk}/">' in c.get("/notifications/").content.decode()


def test_a_burst_leads_to_the_board(board, people):
    for _ in range(2):
        services.notify_photos_added(board=board, actor=people["contributor"], recipients=[people["owner"]])
    (row,) = notes(people["owner"])
    assert client_for(people["owner"]).post(f"/notifications/{row.pk}/read/")["Location"] == f"/boards/{board.pk}/"


def test_someone_elses_notification_is_a_404_and_stays_unread(board, people):
    theirs = services.notify(user=people["viewer"], kind=Kind.BOARD_ADDED, board=board, actor=people["owner"])
    c = client_for(people["stranger"])
    assert c.post(f"/notifications/{theirs.pk}/read/").status_code == 404
    assert c.post("/notifications/999999/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert c.get(f"/notifications/{theirs.pk}/read/").status_code == 405, "GET changes nothing (link scanners)"
    assert Client().post(f"/notifications/{theirs.pk}/read/").status_code == 302  # to the log-in page
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_marking_read_needs_the_csrf_token(board, people):
    row = services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board)
    c = Client(enforce_csrf_checks=True)
    c.force_login(people["owner"])
    assert c.post(f"/notifications/{row.pk}/read/").status_code == 403
    assert c.post("/notifications/read-all/").status_code == 403
    row.refresh_from_db()
    assert row.read_at is None


def test_mark_all_read_touches_only_ones_own(board, people):
    owner = people["owner"]
    _many(owner, board, 4, start=timezone.now())
    theirs = services.notify(user=people["viewer"], kind=Kind.BOARD_ADDED, board=board)
    c = client_for(owner)
    r = c.post("/notifications/read-all/")
    assert r.status_code == 302
    assert r["Location"] == "/notifications/"
    assert services.unread_count(owner) == 0
    theirs.refresh_from_db()
    assert theirs.read_at is None
    html = c.get("/notifications/").content.decode()
    assert "Marked 4 notifications read." in html
    assert ">New<" not in html
    assert "Mark all read" not in html
