"""The notifications model and services (issue 9): bursts of "photos added" batched, the uploader never notified,
the header count one indexed query, unsubscribe links signed and expiring."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boardsite.notifications import services
from boardsite.notifications.models import Delivery, Kind, MailState, Notification
from tests.factories import confirm_address, members

pytestmark = pytest.mark.django_db


def test_a_burst_makes_one_notification_per_member_and_none_for_the_uploader(board, people):
    t0 = timezone.now()
    for n in range(5):
        services.notify_photos_added(
            board=board, actor=people["contributor"], recipients=members(board), now=t0 + dt.timedelta(seconds=30 * n)
        )
    rows = Notification.objects.filter(kind=Kind.PHOTOS_ADDED)
    assert sorted(r.user.username for r in rows) == ["owner", "viewer"]
    assert {r.count for r in rows} == {5}
    assert not rows.filter(user=people["contributor"]).exists()


def test_a_photo_after_a_quiet_spell_starts_a_new_burst(board, people):
    t0 = timezone.now()
    services.notify_photos_added(board=board, actor=people["contributor"], recipients=members(board), now=t0)
    later = t0 + dt.timedelta(seconds=services.NOTIFY_BURST_SECONDS + 1)
    services.notify_photos_added(board=board, actor=people["contributor"], recipients=members(board), now=later)
    assert Notification.objects.filter(user=people["owner"], kind=Kind.PHOTOS_ADDED).count() == 2


def test_mail_of_a_burst_is_due_after_it_went_quiet_and_only_with_a_confirmed_address(board, people):
    confirm_address(people["owner"], "owner@example.org")
    t0 = timezone.now()
    for n in range(3):
        services.notify_photos_added(
            board=board, actor=people["contributor"], recipients=members(board), now=t0 + dt.timedelta(seconds=n)
        )
    owner = Notification.objects.get(user=people["owner"])
    viewer = Notification.objects.get(user=people["viewer"])
    assert owner.mail_state == MailState.DUE
    assert owner.mail_due_at == t0 + dt.timedelta(seconds=2 + services.NOTIFY_BURST_SECONDS)
    assert viewer.mail_state == MailState.NONE  # no confirmed address: in the site only


def test_preferences_decide_the_mail(board, people):
    confirm_address(people["owner"], "owner@example.org")
    services.preference_set(user=people["owner"], kind=Kind.PHOTOS_ADDED, delivery=Delivery.DIGEST)
    services.notify_photos_added(board=board, actor=people["contributor"], recipients=members(board))
    assert Notification.objects.get(user=people["owner"]).mail_state == MailState.NONE
    assert services.preferences_for(people["owner"])[Kind.PHOTOS_ADDED] == Delivery.DIGEST
    # A failed upload is mailed only when chosen.
    assert services.notify(user=people["owner"], kind=Kind.UPLOAD_FAILED).mail_state == MailState.NONE
    services.preference_set(user=people["owner"], kind=Kind.UPLOAD_FAILED, delivery=Delivery.IMMEDIATELY)
    assert services.notify(user=people["owner"], kind=Kind.UPLOAD_FAILED).mail_state == MailState.DUE
    with pytest.raises(ValueError, match="nonsense"):
        services.preference_set(user=people["owner"], kind="nonsense", delivery=Delivery.OFF)


def test_a_suppressed_address_is_not_mailed(people):
    confirm_address(people["owner"], "Owner@Example.org")
    assert services.mail_address(people["owner"]) == "Owner@Example.org"
    services.Suppression.objects.create(address_key="owner@example.org", reason="bounce")
    assert services.mail_address(people["owner"]) is None


def test_the_unread_count_is_one_query_and_mark_read_touches_only_ones_own(people):
    for _ in range(3):
        services.notify(user=people["owner"], kind=Kind.BOARD_ADDED)
    other = services.notify(user=people["viewer"], kind=Kind.BOARD_ADDED)
    with CaptureQueriesContext(connection) as queries:
        assert services.unread_count(people["owner"]) == 3
    assert len(queries) == 1
    assert not services.notification_mark_read(user=people["owner"], notification_id=other.pk)
    assert services.unread_count(people["viewer"]) == 1
    first = Notification.objects.filter(user=people["owner"]).first()
    assert services.notification_mark_read(user=people["owner"], notification_id=first.pk)
    assert services.unread_count(people["owner"]) == 2
    assert services.notifications_mark_all_read(user=people["owner"]) == 2
    assert services.unread_count(people["owner"]) == 0


def test_unsubscribe_tokens_round_trip_and_refuse_tampering_and_age(people):
    token = services.unsubscribe_token(people["owner"], Kind.PHOTOS_ADDED)
    assert services.read_unsubscribe_token(token) == (people["owner"].pk, "photos_added")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(services.BadUnsubscribeLink, match="not valid"):
        services.read_unsubscribe_token(tampered)
    with pytest.raises(services.BadUnsubscribeLink, match="expired"):
        services.read_unsubscribe_token(token, max_age=-1)


def test_an_unsubscribe_link_older_than_the_default_max_age_is_refused(client, people, monkeypatch):
    """``UNSUBSCRIBE_MAX_AGE`` applies when the caller (the link's page) gives no max_age: a link signed longer ago
    than that is refused as expired and changes nothing; one signed a little less long ago still works."""
    real_time = signing.time.time

    def token_signed(seconds_ago: int) -> str:
        with monkeypatch.context() as m:
            m.setattr(signing.time, "time", lambda: real_time() - seconds_ago)
            return services.unsubscribe_token(people["owner"], Kind.PHOTOS_ADDED)

    old = token_signed(services.UNSUBSCRIBE_MAX_AGE + 60)
    with pytest.raises(services.BadUnsubscribeLink, match="expired"):
        services.read_unsubscribe_token(old)
    r = client.post(f"/unsubscribe/{old}/")
    assert r.status_code == 400
    assert "expired" in r.content.decode()
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.IMMEDIATELY
    recent = token_signed(services.UNSUBSCRIBE_MAX_AGE - 60)
    assert services.read_unsubscribe_token(recent) == (people["owner"].pk, "photos_added")


def test_unsubscribe_without_login_get_shows_a_button_and_post_unsubscribes(client, people):
    token = services.unsubscribe_token(people["owner"], Kind.PHOTOS_ADDED)
    page = client.get(f"/unsubscribe/{token}/")
    assert page.status_code == 200
    assert "Unsubscribe" in page.content.decode()
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.IMMEDIATELY  # a GET changes nothing
    done = client.post(f"/unsubscribe/{token}/")
    assert done.status_code == 200
    assert "no longer email you" in done.content.decode()
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.OFF
    assert services.delivery_for(people["owner"], Kind.BOARD_ADDED) == Delivery.IMMEDIATELY  # only that kind


def test_the_rfc8058_one_click_post_needs_no_csrf_token_or_cookie(people):
    from django.test import Client

    token = services.unsubscribe_token(people["viewer"], Kind.DIGEST)
    c = Client(enforce_csrf_checks=True)
    r = c.post(f"/unsubscribe/{token}/", "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    assert services.delivery_for(people["viewer"], Kind.DIGEST) == Delivery.OFF


def test_a_tampered_unsubscribe_link_changes_nothing(client, people):
    token = services.unsubscribe_token(people["owner"], Kind.PHOTOS_ADDED)
    bad = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    r = client.post(f"/unsubscribe/{bad}/")
    assert r.status_code == 400
    assert "not valid" in r.content.decode()
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.IMMEDIATELY


def test_the_preferences_page_saves_each_kind(client, people):
    client.force_login(people["owner"])
    page = client.get("/notifications/preferences/")
    assert page.status_code == 200
    assert "no confirmed email address" in page.content.decode()
    r = client.post("/notifications/preferences/", {"photos_added": "digest", "upload_failed": "immediately"})
    assert r.status_code == 302
    prefs = services.preferences_for(people["owner"])
    assert (prefs["photos_added"], prefs["upload_failed"], prefs["board_added"]) == (
        "digest",
        "immediately",
        "immediately",
    )
    client.logout()
    assert client.get("/notifications/preferences/").status_code == 302  # log-in first


def test_a_burst_that_never_goes_quiet_is_mailed_by_its_maximum_delay(board, people):
    confirm_address(people["owner"], "owner@example.org")
    t0 = timezone.now()
    step = services.NOTIFY_BURST_SECONDS - 10  # always within the burst: it never goes quiet
    n = services.NOTIFY_BURST_MAX_SECONDS // step + 3
    for i in range(n):
        services.notify_photos_added(
            board=board, actor=people["contributor"], recipients=members(board), now=t0 + dt.timedelta(seconds=i * step)
        )
    row = Notification.objects.get(user=people["owner"])
    assert row.count == n
    assert row.mail_due_at == t0 + dt.timedelta(seconds=services.NOTIFY_BURST_MAX_SECONDS)


def test_added_again_and_again_to_a_board_is_one_notification_a_day(board, people):
    from boardsite.boards.services import board_member_add, board_member_remove

    confirm_address(people["stranger"], "stranger@example.org")
    for role in ("viewer", "contributor", "viewer"):
        board_member_add(board=board, user=people["owner"], username="stranger", role=role)
        board_member_remove(board=board, user=people["owner"], username="stranger")
    rows = Notification.objects.filter(user=people["stranger"], kind=Kind.BOARD_ADDED)
    assert rows.count() == 1
    assert rows.get().data == {"role": "viewer"}
    assert rows.get().mail_state == MailState.DUE  # mailed once, with the latest role


def test_a_choice_that_is_not_offered_saves_nothing_and_says_so(client, people):
    client.force_login(people["owner"])
    r = client.post(
        "/notifications/preferences/", {"photos_added": "bogus", "upload_failed": "immediately"}, follow=True
    )
    assert "Nothing was saved" in r.content.decode()
    assert services.preferences_for(people["owner"])["upload_failed"] == "off"


def test_head_on_an_unsubscribe_link_changes_nothing(client, people):
    token = services.unsubscribe_token(people["owner"], Kind.PHOTOS_ADDED)
    assert client.head(f"/unsubscribe/{token}/").status_code == 200
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.IMMEDIATELY
