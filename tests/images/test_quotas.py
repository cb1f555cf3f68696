"""Quotas: tickets outstanding per person (429), bytes per day per person (413), photos per board (403).

Counted in the database, so they hold across processes (checked with two real processes racing for the last places).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.images.models import Image, UploadTicket
from tests.helpers import database_url, post_to_s3, ticket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def contributor(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


def ask(client: Client, board_id: int, size: int = 100, name: str = "a.jpg"):
    return client.post(
        "/api/uploads",
        {"board": board_id, "filename": name, "content_type": "image/jpeg", "size": size},
        content_type="application/json",
    )


def test_outstanding_tickets_are_limited_with_a_retry_after(contributor, board, local_aws, settings, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    settings.UPLOAD_MAX_OUTSTANDING = 3
    data = jpeg()
    bodies = [ticket(contributor, board.pk, data) for _ in range(3)]
    r = ask(contributor, board.pk)
    assert r.status_code == 429
    assert "3 uploads started in the last 10 minutes and not sent" in r.json()["error"]
    assert 1 <= int(r["Retry-After"]) <= settings.UPLOAD_TICKET_SECONDS
    assert Image.objects.count() == 3, "a refused ticket leaves no row"

    # Sending one frees its place at once.
    post_to_s3(bodies[0]["upload"], data)
    assert contributor.post(bodies[0]["image"]["complete_url"]).json()["status"] == "ready"
    assert ask(contributor, board.pk).status_code == 201
    # So does a ticket's end: an expired ticket is not outstanding.
    UploadTicket.objects.filter(image_id=bodies[1]["image"]["id"]).update(
        created_at=timezone.now() - dt.timedelta(minutes=11)
    )
    assert ask(contributor, board.pk).status_code == 201
    assert ask(contributor, board.pk).status_code == 429
    # An abandoned ticket keeps its place until it expires: its presigned POST can still be used until then.
    contributor.post(bodies[2]["image"]["abandon_url"], {"reason": "x"}, content_type="application/json")
    assert ask(contributor, board.pk).status_code == 429


def test_a_browser_uploading_a_few_at_a_time_never_meets_the_limit(contributor, board, local_aws, settings, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    data = jpeg(size=(64, 48))
    in_flight = []
    for _ in range(3 * settings.UPLOAD_MAX_OUTSTANDING):  # many more than the limit, three at a time like board.js
        in_flight.append(ticket(contributor, board.pk, data))
        if len(in_flight) == 3:
            for body in in_flight:
                post_to_s3(body["upload"], data)
                assert contributor.post(body["image"]["complete_url"]).status_code == 200
            in_flight = []
    assert Image.objects.filter(status="ready").count() == 3 * settings.UPLOAD_MAX_OUTSTANDING


def test_deleting_the_photo_or_the_board_gives_no_place_back(contributor, people, board, local_aws, settings):
    # The tickets stay usable until they expire, whatever happens to their rows.
    settings.UPLOAD_MAX_OUTSTANDING = 2
    settings.UPLOAD_DAILY_BYTES = 10_000
    for _ in range(2):
        body = ask(contributor, board.pk, size=4000).json()
        assert contributor.post(f"/images/{body['image']['id']}/delete/").status_code == 302
    assert ask(contributor, board.pk).status_code == 429
    # Bytes too: the two deleted 4000-byte tickets still count for the day.
    UploadTicket.objects.update(created_at=timezone.now() - dt.timedelta(minutes=11))  # expired: places free again
    r = ask(contributor, board.pk, size=4000)
    assert r.status_code == 413
    assert "allowance" in r.json()["error"]

    # A whole board deleted gives its tickets' places back no sooner.
    owner = Client()
    owner.force_login(people["owner"])
    for title in ("First", "Second"):
        made = owner.post("/boards/new/", {"title": title, "description": "", "visibility": "private"})
        own_board = int(made["Location"].strip("/").split("/")[-1])
        if title == "First":
            assert [ask(owner, own_board).status_code for _ in range(2)] == [201, 201]
            owner.post(f"/boards/{own_board}/delete/")
    assert ask(owner, own_board).status_code == 429


def test_a_script_hoarding_tickets_is_stopped_quickly(contributor, board, local_aws, settings):
    statuses = [ask(contributor, board.pk).status_code for _ in range(settings.UPLOAD_MAX_OUTSTANDING + 5)]
    assert statuses == [201] * settings.UPLOAD_MAX_OUTSTANDING + [429] * 5


def test_bytes_per_day(contributor, board, local_aws, settings):
    settings.UPLOAD_DAILY_BYTES = 1000
    first = ask(contributor, board.pk, size=600)
    assert first.status_code == 201
    # The ticket above counts, sent or not.
    r = ask(contributor, board.pk, size=600)
    assert r.status_code == 413
    assert "allowance of" in r.json()["error"]
    assert "last 24 hours" in r.json()["error"]
    assert 0 < int(r["Retry-After"]) <= 24 * 3600
    # Every ticket counts, an abandoned one too (it could still be used to send its bytes).
    contributor.post(first.json()["image"]["abandon_url"], {"reason": "cancelled"}, content_type="application/json")
    assert ask(contributor, board.pk, size=600).status_code == 413
    # Yesterday's uploads are not counted.
    UploadTicket.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    assert ask(contributor, board.pk, size=900).status_code == 201


def test_photos_per_board(contributor, people, board, local_aws, settings):
    settings.BOARD_MAX_PHOTOS = 2
    assert ask(contributor, board.pk).status_code == 201
    assert ask(contributor, board.pk).status_code == 201
    owner = Client()
    owner.force_login(people["owner"])
    r = ask(owner, board.pk)
    assert r.status_code == 403
    assert "This board is full" in r.json()["error"]
    Image.objects.filter(pk=Image.objects.first().pk).update(status="failed")  # failed uploads take no place
    assert ask(owner, board.pk).status_code == 201


RACER = """
import os, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from boardsite.core.errors import RateLimited
from boardsite.images.services import image_upload_start
user = get_user_model().objects.get(pk=int(sys.argv[1]))
start_at = float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
granted = refused = 0
for _ in range(int(sys.argv[4])):
    try:
        image_upload_start(user=user, board_id=int(sys.argv[2]), filename="a.jpg", content_type="image/jpeg", size=10)
        granted += 1
    except RateLimited:
        refused += 1
print(granted, refused)
"""


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_two_processes(people, board, local_aws):
    limit, each = 20, 15
    env = {**os.environ, "DATABASE_URL": database_url(), "UPLOAD_MAX_OUTSTANDING": str(limit)}
    start_at = time.time() + 3  # both processes are set up by then and start asking in the same instant
    args = [str(people["contributor"].pk), str(board.pk), str(start_at), str(each)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        outcomes.append(tuple(int(n) for n in out.split()))
    assert sum(g for g, _ in outcomes) == limit, outcomes
    assert sum(r for _, r in outcomes) == 2 * each - limit
    assert Image.objects.filter(status="pending").count() == limit


def test_a_ticket_does_not_check_what_it_just_loaded_or_made(local_aws, board, people):
    """No existence query for the board and person it has in hand, no uniqueness query for a fresh uuid (issue 10)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from boardsite.core import routing
    from boardsite.images.services import image_upload_start

    routing.route("process_image")  # the routes, read once every 2 s per process (steady state: already read)
    with CaptureQueriesContext(connection) as queries:
        image_upload_start(
            user=people["contributor"], board_id=board.pk, filename="a.jpg", content_type="image/jpeg", size=10
        )
    pointless = [q["sql"] for q in queries if q["sql"].startswith('SELECT 1 AS "a"')]
    assert pointless == []
    real = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]
    # Board and role, two row locks, the live upload grants and three quota counts, two inserts (13 before: four
    # were validation).
    assert len(real) == 10, real
