"""The weekly digest (issue 9): its cron schedule in every mode, its content for a fixed week (time injected), once
per person and week, resumable, and one digest really accepted by the local SES (moto) and read back.

The one stand-in: "a run that died half way" is recreated as the rows such a run leaves (claims nobody finishes),
and a run stopped by its time budget (budget 0), since a process cannot be killed mid-test without losing the test.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from boardsite.boards.services import board_create
from boardsite.core import jobs
from boardsite.images.models import Image, Status
from boardsite.mail.backends import MESSAGE_KEY_HEADER
from boardsite.notifications import digest, services
from boardsite.notifications.models import Delivery, Digest, DigestState, Kind
from deploy import lint
from devstack import runner
from offload import registry
from tests.factories import confirm_address, make_image
from tests.helpers import run_in_thread
from tests.mail_helpers import BACKEND, parts, sent_mail

UTC = dt.UTC
MON = dt.datetime(2026, 11, 16, 23, 0, tzinfo=UTC)  # a Monday, 23:00 UTC: the end of the week under test
START = MON - dt.timedelta(days=7)
RUN = MON + dt.timedelta(minutes=3)  # the scheduled run, a little late
CRON = registry.Cron.parse("cron(0 23 ? * MON *)")


# --- the schedule --------------------------------------------------------------------------------------------------


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 11, 16, 22, 59, 59), at(2026, 11, 16, 23)),  # Monday, just before
        (at(2026, 11, 16, 23), at(2026, 11, 23, 23)),  # exactly at 23:00: the next one, a week later
        (at(2026, 11, 16, 23, 0, 1), at(2026, 11, 23, 23)),
        (at(2026, 11, 17, 3), at(2026, 11, 23, 23)),  # Tuesday
        (at(2026, 11, 22, 23, 30), at(2026, 11, 23, 23)),  # Sunday night
        (at(2026, 11, 16, 0, 0), at(2026, 11, 16, 23)),  # Monday morning
        (at(2026, 12, 28, 23, 30), at(2027, 1, 4, 23)),  # across a year
        (at(2027, 3, 29, 12), at(2027, 3, 29, 23)),  # after Europe's DST change: UTC does not move
    ],
)
def test_next_monday_2300_utc(now, expected):
    assert CRON.next_after(now) == expected
    assert runner.next_run(registry.get("weekly_digest").trigger, now.timestamp()) == expected.timestamp()


def test_a_time_in_another_zone_is_read_in_utc():
    berlin = dt.timezone(dt.timedelta(hours=1))
    # 00:30 Tuesday in UTC+1 is 23:30 Monday UTC: past this week's time.
    assert CRON.next_after(dt.datetime(2026, 11, 17, 0, 30, tzinfo=berlin)) == at(2026, 11, 23, 23)
    assert CRON.latest_at_or_before(dt.datetime(2026, 11, 17, 0, 30, tzinfo=berlin)) == at(2026, 11, 16, 23)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 11, 16, 23), at(2026, 11, 16, 23)),  # exactly at: this one
        (at(2026, 11, 16, 22, 59), at(2026, 11, 9, 23)),
        (at(2026, 11, 20, 12), at(2026, 11, 16, 23)),
    ],
)
def test_the_latest_monday_2300_at_or_before(now, expected):
    assert CRON.latest_at_or_before(now) == expected
    assert digest.digest_week(now) == (expected - dt.timedelta(days=7), expected)


def test_rate_schedules_keep_their_period():
    sweep = registry.get("sweep_uploads").trigger
    assert sweep.cron is None
    assert runner.next_run(sweep, 1000.0) == 1300.0


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0/5 * * * ? *)",  # steps
        "cron(0 23 ? * 2 *)",  # a numbered week day (EventBridge SUN=1, Celery SUN=0: ambiguous)
        "cron(0 23 1 * ? *)",  # a day of the month
        "cron(0 23 ? * MON 2027)",  # a year
        "cron(0 23 ? * MON-FRI *)",  # a range
        "cron(0 24 ? * MON *)",
        "cron(0 23 ? * MON)",  # five fields
        "cron(0 23 * * MON *)",  # EventBridge wants '?' in day-of-month with a week day
    ],
)
def test_unsupported_cron_forms_are_refused_with_a_clear_error(expression):
    with pytest.raises(ValueError, match=r"expected cron|supported"):
        registry.ScheduleTrigger(expression=expression)


def test_a_schedule_must_be_one_thing():
    with pytest.raises(ValueError, match="no every_seconds"):
        registry.ScheduleTrigger(expression="cron(0 23 ? * MON *)", every_seconds=60)
    # rate(): every_seconds follows from it (beat and the runner read it); a second value must agree.
    assert registry.ScheduleTrigger(expression="rate(5 minutes)").every_seconds == 300
    with pytest.raises(ValueError, match="is every 120s, not every_seconds=60"):
        registry.ScheduleTrigger(expression="rate(2 minutes)", every_seconds=60)
    for bad in ("rate(2 minute)", "rate(1 minutes)", "rate(0 minutes)", "rate(5 weeks)", "every 5 minutes"):
        with pytest.raises(ValueError, match="expected rate"):
            registry.ScheduleTrigger(expression=bad)
    assert registry.Cron.parse("cron(30 6 * * ? *)") == registry.Cron(30, 6, ())
    assert registry.Cron.parse("cron(0 23 ? * MON,fri *)").weekdays == (0, 4)


def test_the_registry_declares_the_digest_once_for_every_mode():
    job = registry.get("weekly_digest")
    assert job.trigger.expression == "cron(0 23 ? * MON *)"
    assert job.handler == "boardsite.notifications.digest.handler"
    assert job.side == "web"


def test_celery_beat_gets_the_crontab(settings):
    settings.OFFLOAD_MODES = {"weekly_digest": "celery"}
    entry = jobs.beat_schedule()["weekly_digest"]
    assert entry["task"] == "boardsite.run_job"
    assert entry["args"][0] == "weekly_digest"
    assert entry["options"]["queue"] == "jobs.weekly_digest"
    schedule = entry["schedule"]
    assert (schedule.minute, schedule.hour, schedule.day_of_week) == ({0}, {23}, {1})  # Celery: Monday is 1
    from boardsite.celery import app

    schedule.app = app  # beat binds its schedules to the app: the app's timezone must be UTC, as EventBridge's
    assert str(schedule.tz) == "UTC"
    # Last run the Monday before: due again exactly at 23:00 UTC the next Monday, not before.
    schedule.nowfun = lambda: at(2026, 11, 23, 22, 59)
    assert schedule.is_due(at(2026, 11, 16, 23)).is_due is False
    schedule.nowfun = lambda: at(2026, 11, 23, 23, 0, 1)
    assert schedule.is_due(at(2026, 11, 16, 23)).is_due is True
    settings.OFFLOAD_MODES = {"weekly_digest": "lambda"}
    assert "weekly_digest" not in jobs.beat_schedule()


def test_zappa_schedules_it_on_the_web_stage():
    from deploy import config, generate

    events = generate.events(config.DeployConfig(), "web")
    assert {"function": "boardsite.notifications.digest.handler", "expression": "cron(0 23 ? * MON *)"} in events
    assert lint.check_zappa_settings(generate.build_settings(config.DeployConfig())) == []


# --- content -------------------------------------------------------------------------------------------------------


def photo(board, user, created_at, *, status=Status.READY, filename=None, caption="", error="") -> Image:
    return make_image(
        board,
        user,
        status=status,
        original_key=f"originals/{uuid.uuid4()}",
        filename=filename or f"{uuid.uuid4().hex[:6]}.jpg",
        declared_size=10,
        size=None,
        variants=(),
        created_at=created_at,
        caption=caption,
        error=error,
    )


@pytest.fixture
def week(board, people):
    """A fixed week on the owner's board 'Holiday', and another owner's board with a photo the same week."""
    confirm_address(people["owner"], "owner@example.org")
    day = START + dt.timedelta(days=2)
    photo(board, people["contributor"], day, filename="beach.jpg", caption="The beach")
    photo(board, people["contributor"], day + dt.timedelta(hours=1), filename="sunset.jpg")
    photo(board, people["owner"], day + dt.timedelta(hours=2), filename="dinner.jpg")
    photo(board, people["contributor"], day, status=Status.FAILED, filename="broken.heic", error="Not an image file.")
    photo(board, people["contributor"], day, status=Status.PENDING, filename="lost.jpg")
    photo(board, people["owner"], START - dt.timedelta(hours=1), filename="last-week.jpg")  # the week before
    photo(board, people["owner"], MON + dt.timedelta(minutes=1), filename="next-week.jpg")  # after the week's end
    other = board_create(user=people["stranger"], title="Stranger things", visibility="private")
    photo(other, people["stranger"], day, filename="not-yours.jpg")
    return board


def the_digest(to: str = "owner@example.org") -> mail.EmailMessage:
    found = [m for m in mail.outbox if m.to == [to]]
    assert len(found) == 1, [(m.to, m.subject) for m in mail.outbox]
    return found[0]


def html_of(message) -> str:
    return next(content for content, mimetype in message.alternatives if mimetype == "text/html")


def test_the_digest_of_a_fixed_week(week, people, settings):
    result = digest.digest_send_week(now=RUN)
    assert result["sent"] == 1
    assert result["unfinished"] is False
    message = the_digest()
    text = message.body
    assert message.subject == "Your boards this week (to 16 Nov): 3 new photos, 2 missing uploads"
    assert "== Holiday ==" in text
    assert f"{settings.SITE_URL}/boards/{week.pk}/" in text
    assert "3 photos added: 2 by contributor, 1 by owner." in text
    assert "  - beach.jpg: The beach" in text
    assert "  - sunset.jpg" in text
    assert "  - dinner.jpg" in text
    assert "  - broken.heic (by contributor): Not an image file." in text
    assert f"  - lost.jpg (by contributor): {digest.NEVER_ARRIVED}" in text
    assert "last-week.jpg" not in text
    assert "next-week.jpg" not in text
    assert "Stranger things" not in text
    assert "not-yours.jpg" not in text
    html = html_of(message)
    assert f'<a href="{settings.SITE_URL}/boards/{week.pk}/">Holiday</a>' in html
    assert "broken.heic (by contributor): Not an image file." in html
    assert message.extra_headers[MESSAGE_KEY_HEADER] == f"digest-{people['owner'].pk}-{START.date().isoformat()}"
    row = Digest.objects.get(user=people["owner"], week_start=START)
    assert (row.state, row.photos, row.missing, row.notifications) == (DigestState.SENT, 3, 2, 0)
    assert row.sent_at is not None
    # The stranger owns a board with a photo but has no confirmed address: nothing sent, nothing recorded.
    assert not Digest.objects.filter(user=people["stranger"]).exists()


def test_an_upload_still_inside_its_ticket_is_not_missing_yet(board, people):
    confirm_address(people["owner"], "owner@example.org")
    photo(board, people["contributor"], MON - dt.timedelta(minutes=1), status=Status.PROCESSING, filename="late.jpg")
    assert digest.digest_send_week(now=MON)["empty"] == 1  # still inside its ticket at the run: no report
    assert mail.outbox == []


def test_no_mail_for_an_owner_with_nothing_to_report(board, people):
    confirm_address(people["owner"], "owner@example.org")
    photo(board, people["contributor"], START - dt.timedelta(days=1))  # only the week before
    result = digest.digest_send_week(now=RUN)
    assert (result["sent"], result["empty"]) == (0, 1)
    assert mail.outbox == []
    assert Digest.objects.get(user=people["owner"]).state == DigestState.EMPTY


def test_digest_off_means_no_mail(week, people):
    services.preference_set(user=people["owner"], kind=Kind.DIGEST, delivery=Delivery.OFF)
    assert digest.digest_send_week(now=RUN)["sent"] == 0
    assert mail.outbox == []
    assert not Digest.objects.exists()


def test_a_second_run_for_the_same_week_sends_nothing(week, people):
    assert digest.digest_send_week(now=RUN)["sent"] == 1
    later_in_the_week = RUN + dt.timedelta(days=3)
    assert digest.digest_send_week(now=later_in_the_week)["sent"] == 0
    assert len(mail.outbox) == 1
    # The next week is another digest (this one has nothing new: the photo after MON is a single new photo).
    assert digest.digest_send_week(now=RUN + dt.timedelta(days=7))["sent"] == 1
    assert len(mail.outbox) == 2


def owners_with_photos(board, people, n: int) -> list:
    """``n`` more owners, each with an address and a photo of the week on a board of their own."""
    users = []
    for k in range(n):
        user = people["owner"].__class__.objects.create_user(username=f"owner{k}", password="a-long-test-password")
        confirm_address(user, f"owner{k}@example.org")
        own = board_create(user=user, title=f"Board {k}", visibility="private")
        photo(own, user, START + dt.timedelta(days=1))
        users.append(user)
    return users


def test_a_run_that_died_half_way_is_finished_by_the_next_run_once(week, people):
    others = owners_with_photos(week, people, 3)
    long_ago = timezone.now() - dt.timedelta(seconds=digest.CLAIM_STALE_SECONDS + 60)
    # What a run that died leaves: owner0 sent and recorded, owner1 and owner2 claimed and never finished. A claim
    # still fresh belongs to a run that may be alive: owner2's is fresh, owner1's stale.
    Digest.objects.create(user=others[0], week_start=START, state=DigestState.SENT, claimed_at=long_ago)
    Digest.objects.create(user=others[1], week_start=START, state=DigestState.CLAIMED, claimed_at=long_ago)
    Digest.objects.create(user=others[2], week_start=START, state=DigestState.CLAIMED, claimed_at=timezone.now())
    result = digest.digest_send_week(now=RUN)
    assert sorted(m.to[0] for m in mail.outbox) == ["owner1@example.org", "owner@example.org"]
    assert result["sent"] == 2
    assert Digest.objects.get(user=others[1]).state == DigestState.SENT
    assert Digest.objects.get(user=others[2]).state == DigestState.CLAIMED  # left to its live run
    # Once that claim is stale too, a run takes it over; nobody gets a second digest.
    Digest.objects.filter(user=others[2]).update(claimed_at=long_ago)
    digest.digest_send_week(now=RUN)
    digest.digest_send_week(now=RUN)
    assert sorted(m.to[0] for m in mail.outbox) == ["owner1@example.org", "owner2@example.org", "owner@example.org"]


def test_a_run_out_of_time_says_so_and_the_retry_sends_the_rest(week, people, monkeypatch):
    owners_with_photos(week, people, 2)
    first = digest.digest_send_week(now=RUN, budget_seconds=0)  # stops after the first person
    assert first["unfinished"] is True
    assert first["sent"] == 1
    # The handler fails the invoke, so Lambda retries it with the same event (the same time: the same week).
    monkeypatch.setattr(digest, "TIME_BUDGET_SECONDS", 0)
    with pytest.raises(digest.DigestUnfinished, match="run it again"):
        digest.handler({"time": RUN.strftime("%Y-%m-%dT%H:%M:%SZ")}, None)
    assert len(mail.outbox) == 2
    monkeypatch.setattr(digest, "TIME_BUDGET_SECONDS", 20)
    assert digest.handler({"time": RUN.strftime("%Y-%m-%dT%H:%M:%SZ")}, None)["sent"] == 1
    assert sorted(m.to[0] for m in mail.outbox) == ["owner0@example.org", "owner1@example.org", "owner@example.org"]


def test_a_failed_send_gives_the_claim_back(week, people, settings):
    settings.EMAIL_BACKEND = BACKEND  # the real job backend, with send_email inline and no local AWS: it fails
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the mail path raises, the claim must not stay
        digest.digest_send_week(now=RUN)
    assert not Digest.objects.filter(user=people["owner"]).exists()


def test_notifications_chosen_for_the_digest_are_in_it(week, people):
    # The viewer owns no board: with photos_added "in the digest", the week's bursts reach them only this way.
    confirm_address(people["viewer"], "viewer@example.org")
    services.preference_set(user=people["viewer"], kind=Kind.PHOTOS_ADDED, delivery=Delivery.DIGEST)
    services.preference_set(user=people["owner"], kind=Kind.PHOTOS_ADDED, delivery=Delivery.DIGEST)
    members = [m.user for m in week.memberships.select_related("user")]
    services.notify_photos_added(  # the week before: not in this digest
        board=week, actor=people["contributor"], recipients=members, now=START - dt.timedelta(hours=5)
    )
    for n in range(3):
        services.notify_photos_added(
            board=week, actor=people["contributor"], recipients=members, now=START + dt.timedelta(hours=5, seconds=n)
        )
    digest.digest_send_week(now=RUN)
    viewer = the_digest("viewer@example.org")
    assert "contributor added 3 photos to Holiday" in viewer.body
    assert "contributor added 1 photo " not in viewer.body
    assert "== Holiday ==" not in viewer.body  # not their board: no photo list, no missing list
    assert viewer.subject.endswith(": 1 update")
    assert "you chose to get some notifications in the weekly digest" in viewer.body
    owner = the_digest()
    assert "== Also this week ==" in owner.body
    assert "contributor added 3 photos to Holiday" in owner.body
    assert Digest.objects.get(user=people["owner"]).notifications == 1
    # The contributor chose nothing: their notifications (none here) and no board of their own: no digest.
    assert not [m for m in mail.outbox if m.to == ["contributor@example.org"]]


def test_the_digests_list_unsubscribe_turns_the_digest_off(week, people, client):
    digest.digest_send_week(now=RUN)
    message = the_digest()
    header = message.extra_headers["List-Unsubscribe"]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = urlsplit(header.strip("<>")).path
    assert path in message.body  # the same link in the footer
    response = client.post(path, {"List-Unsubscribe": "One-Click"})  # RFC 8058, no log-in
    assert response.status_code == 200
    assert services.preferences_for(people["owner"])[Kind.DIGEST] == Delivery.OFF
    assert services.preferences_for(people["owner"])[Kind.PHOTOS_ADDED] == Delivery.IMMEDIATELY
    # Next week's run leaves them out.
    photo(week, people["contributor"], MON + dt.timedelta(days=1))
    digest.digest_send_week(now=RUN + dt.timedelta(days=7))
    assert len(mail.outbox) == 1


def test_the_handler_reports_the_week_of_its_events_time(week, people):
    out = digest.handler({"time": (RUN + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}, None)
    assert out["week"] == START.date().isoformat()
    assert out["sent"] == 1


def test_an_event_time_is_read_in_utc_and_a_bad_one_refused(people):
    assert digest.event_time({"time": "2026-11-17T10:00:00Z"}) == at(2026, 11, 17, 10)
    assert digest.event_time({"time": "2026-11-17T10:00:00"}) == at(2026, 11, 17, 10)  # EventBridge's are UTC
    assert digest.event_time({"detail": {}}) is None  # Celery beat's event: now
    for bad in ("next monday", "2026-13-40T10:00:00Z"):
        with pytest.raises(ValueError, match="not an ISO 8601"):
            digest.handler({"time": bad}, None)
    assert not Digest.objects.exists()


# --- real local SES, and the modes that run it ---------------------------------------------------------------------


def test_the_digest_is_accepted_by_the_local_ses(week, people, local_aws, settings):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    digest.digest_send_week(now=RUN)
    digest.digest_send_week(now=RUN)  # a second run: still one mail
    (msg,) = sent_mail(local_aws)
    assert msg["To"] == "owner@example.org"
    assert msg["Subject"] == "Your boards this week (to 16 Nov): 3 new photos, 2 missing uploads"
    body = parts(msg)
    assert "3 photos added: 2 by contributor, 1 by owner." in body["text/plain"]
    assert "broken.heic (by contributor): Not an image file." in body["text/html"]
    token = services.unsubscribe_token(people["owner"], Kind.DIGEST).split(":")[0]
    assert msg["List-Unsubscribe"].startswith(f"<{settings.SITE_URL}/unsubscribe/{token}")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_celery_runs_it_as_beat_would(week, people, settings):
    # Beat enqueues the entry's task with the entry's args; run that task body (the worker's) on them.
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "weekly_digest": "celery"}
    entry = jobs.beat_schedule()["weekly_digest"]
    from boardsite.celery import run_job_task

    event = {**entry["args"][1], "time": RUN.strftime("%Y-%m-%dT%H:%M:%SZ")}
    run_job_task.run(entry["args"][0], event)
    assert the_digest().subject.startswith("Your boards this week (to 16 Nov)")


@pytest.mark.django_db(transaction=True)
def test_the_local_runner_sends_the_last_weeks_digest_at_start(board, people):
    # The runner runs the cron job once at start (the digest is idempotent per week), then at the next Monday 23:00.
    confirm_address(people["owner"], "owner@example.org")
    start, _end = digest.digest_week(timezone.now())
    photo(board, people["contributor"], start + dt.timedelta(hours=1), filename="runner.jpg")
    stop = threading.Event()
    thread = run_in_thread(runner.run, [registry.get("weekly_digest")], stop)
    try:
        for _ in range(100):
            if Digest.objects.filter(user=people["owner"], state=DigestState.SENT).exists():
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert "runner.jpg" in the_digest().body
    assert Digest.objects.get(user=people["owner"]).week_start == start
