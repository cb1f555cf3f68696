"""What an outside review found at the edges of the control room: bounds on what staff type, a watch that keeps
watching, a form that changes only what was changed, a 404 before a CSRF 403, and retries that default sensibly."""

from __future__ import annotations

import datetime as dt
import html
import json
import re

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.control import watch
from boardsite.core import jobs, routing
from boardsite.core.models import JobRoute, RouteChange
from offload import aws, registry
from offload.events import s3_object_created_event
from tests.control.runs import add_runs
from tests.factories import make_user

ROUTE = "/control/jobs/process_image/route/"


@pytest.fixture
def staff(db, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    client = Client()
    client.force_login(make_user("ada", is_staff=True))
    return client


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(bake_seconds=10**12), "from 0 to 2592000 seconds"),
        (dict(shadow_daily_cap=10**20), "from 0 to 1000000"),
        (dict(steps=[10_000, 500]), "steps go up"),
        (dict(steps=[0]), "steps go up"),
        (dict(steps=[500, 500]), "steps go up"),
        (dict(share=500, why="because\x00"), "invisible or control character"),
        (dict(share=500, why="x" * 1001), "at most 1000 characters"),
        (dict(force={"originals/1/a b.jpg": "lambda"}), "unit key"),
        (dict(force={"originals/1/a\nb.jpg": "lambda"}), "unit key"),
        (dict(force={"x" * 256: "lambda"}), "unit key"),
    ],
)
def test_what_staff_type_is_bounded_and_refused_with_a_reason(staff, change, message):
    with pytest.raises(routing.RouteError, match=message):
        routing.route_set(job="process_image", by="ada", source="page", **{"why": "x", **change})
    assert not RouteChange.objects.exists()


def test_a_forced_key_is_stored_as_the_door_sees_it_and_wins_when_the_photo_is_started_again(staff, monkeypatch):
    route = routing.route_set(
        job="process_image", by="ada", source="page", why="x", force={"originals/celery/3/abc.jpg": "inline"}
    )
    assert route.forced == {"originals/3/abc.jpg": "inline"}
    ran = []
    monkeypatch.setattr(jobs, "_run_or_enqueue", lambda job, runtime, event: ran.append(runtime))
    jobs.object_created("originals/celery/3/abc.jpg", size=1, etag="e")  # its first start keeps its placement
    jobs.object_created("originals/celery/3/abc.jpg", size=1, etag="e", redelivery=True)  # started again: forced
    assert ran == ["celery", "inline"]


def test_one_broken_route_does_not_stop_the_watch_and_a_rollback_stops_shadow_copies(staff, monkeypatch):
    routing.route_set(job="process_image", by="ada", source="page", why="x", share=500, shadow_share=1000)
    JobRoute.objects.filter(job="process_image").update(moved_at=timezone.now() - dt.timedelta(minutes=10))
    settings_modes = {"send_email": "celery"}
    monkeypatch.setattr(routing, "configured_mode", lambda job: settings_modes.get(job, "lambda"))
    JobRoute.objects.create(job="send_email", baseline="celery", canary="lambda", share=500)
    real = watch.verdict
    monkeypatch.setattr(
        watch,
        "verdict",
        lambda job, *a: (_ for _ in ()).throw(OverflowError("x")) if job == "send_email" else real(job, *a),
    )
    add_runs("celery", 100)
    add_runs("lambda", 60, failed=30)
    assert watch.watch()["rolled_back"] == ["process_image"]
    route = routing.route("process_image")
    assert (route.share, route.shadow_share) == (0, 0)


def test_apply_changes_only_what_was_changed(staff):
    staff.post(ROUTE, {"canary": "lambda", "steps": "5,25,100", "bake": "600", "why": "start"})
    page = staff.get("/control/jobs/process_image/").content.decode()
    assert 'name="share" inputmode="decimal" value="5"' in page
    # The form as rendered (share 5 shown), with only a forced key added: the steps to come stay.
    staff.post(
        ROUTE, {"share": "5", "bake": "600", "force_key": "originals/1/x.jpg", "force_runtime": "lambda", "why": "f"}
    )
    assert routing.route("process_image").steps == (2500, 10_000)
    answer = staff.post(ROUTE, {"share": "10", "bake": "600", "why": "by hand"}, follow=True).content.decode()
    assert routing.route("process_image").steps == ()
    assert "the steps still to come were dropped" in answer
    assert "Back to celery" in answer
    staff.post(ROUTE, {"action": "back", "why": "back"})
    assert "Back to celery" not in staff.get("/control/jobs/process_image/").content.decode()


def test_a_stranger_gets_404_before_any_csrf_check_and_staff_still_need_the_token(db):
    stranger = Client(enforce_csrf_checks=True)
    for url in (ROUTE, "/control/alerts/1/ack/", "/control/dead-letters/act/", "/control/dead-letters/retry-set/"):
        assert stranger.post(url, {"why": "x"}).status_code == 404, url
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(make_user("ada", is_staff=True))
    assert staff.post(ROUTE, {"share": "5", "why": "x"}).status_code == 403
    assert not RouteChange.objects.exists()


def test_retrying_a_set_on_no_runtime_is_refused_before_the_confirmation(staff, local_aws):
    queue = registry.get("process_image").dead_letter.resolved()
    page = staff.get("/control/dead-letters/retry-set/", {"queue": queue, "runtime": "bogus"})
    assert page.status_code == 302  # back to the list, no confirmation page
    text = html.unescape(staff.get(page["Location"]).content.decode())
    assert "'bogus' is not a runtime" in text
    # The runtime a letter is retried on defaults to the job's baseline (celery here), not the first in the list.
    assert routing.route("process_image").baseline == "celery"
    event = s3_object_created_event(bucket="b", key="originals/1/x.jpg", size=1, etag="e")
    aws.client("sqs").send_message(QueueUrl=aws.queue_url(queue), MessageBody=json.dumps(event))
    text = staff.get("/control/dead-letters/").content.decode()
    assert text.count('name="runtime"') == 2  # the set's form and the letter's
    assert text.count("<option selected>celery</option>") == text.count('name="runtime"')


def test_a_share_on_a_canary_that_is_the_baseline_is_refused_and_the_way_back_never_is(staff):
    for change in (dict(canary="celery", share=500), dict(canary="celery", steps=[500, 10_000])):
        with pytest.raises(routing.RouteError, match="the canary and the baseline are both celery"):
            routing.route_set(job="process_image", by="ada", source="page", why="x", **change)
    answer = staff.post(ROUTE, {"baseline": "celery", "canary": "celery", "share": "5", "why": "x"}, follow=True)
    assert "the canary and the baseline are both celery" in html.unescape(answer.content.decode())
    assert not RouteChange.objects.exists()
    # A shadow on the same runtime twice moves nothing and measures the noise: allowed.
    routing.route_set(job="process_image", by="ada", source="page", why="noise", canary="celery", shadow_share=100)
    # A route stored that way (before this check) still goes back.
    JobRoute.objects.filter(job="process_image").update(canary="celery", baseline="celery", share=500, steps=[2500])
    routing.forget()
    assert routing.route_set(job="process_image", by="ada", source="page", why="back", share=0).share == 0
    JobRoute.objects.filter(job="process_image").update(share=500)
    routing.forget()
    staff.post(ROUTE, {"action": "back", "why": "back again"})
    assert routing.route("process_image").share == 0


@pytest.mark.parametrize(
    ("job", "key"),
    [
        ("process_image", "foo"),
        ("process_image", "variants/1/x/thumb.jpg"),
        ("process_image", "originals/x.jpg"),
        ("process_image", "originals/lambda/x.jpg"),
        ("process_image", "originals/1/"),
        ("process_image", "originals/1/2/3/x.jpg"),
        ("issue_upload_ticket", "originals/1/x.jpg"),
        ("issue_upload_ticket", "user:ada"),
    ],
)
def test_a_forced_key_that_cannot_name_a_unit_of_the_job_is_refused_with_what_one_looks_like(staff, job, key):
    with pytest.raises(routing.RouteError, match="cannot name a unit of") as refused:
        routing.route_set(job=job, by="ada", source="page", why="x", force={key: "lambda"})
    assert ("originals/<board>/<image id>.<ext>" if job == "process_image" else "user:<user id>") in str(refused.value)
    assert not RouteChange.objects.exists()


def test_the_units_a_job_has_can_be_forced(staff):
    for job, key, unit in [
        ("process_image", "originals/lambda/3/abc.jpg", "originals/3/abc.jpg"),
        ("process_image", "originals/avatars/7/abc.png", "originals/avatars/7/abc.png"),
        ("process_image", "originals/celery/avatars/7/abc.png", "originals/avatars/7/abc.png"),
        ("send_email", "notification-42-a1b2", "notification-42-a1b2"),  # a message id: whatever its sender chose
        ("send_email", "3f0c9a4e5d6b7c8d", "3f0c9a4e5d6b7c8d"),
        ("issue_upload_ticket", "user:42", "user:42"),
    ]:
        route = routing.route_set(job=job, by="ada", source="page", why="x", force={key: "inline"})
        assert route.forced[unit] == "inline", (job, key)


def test_removing_a_forced_key_that_is_not_there_is_refused(staff, capsys):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=re.escape("no forced key 'originals/1/nothere.jpg' to remove")):
        call_command("route", "process_image", "--unforce", "originals/1/nothere.jpg", "--why", "x")
    with pytest.raises(CommandError, match="no forced key 'nothere' to remove"):
        call_command("route", "process_image", "--unforce", "nothere", "--why", "x")
    answer = staff.post(ROUTE, {"force_key": "nothere", "force_runtime": "follow", "why": "x"}, follow=True)
    assert "no forced key &#x27;nothere&#x27; to remove" in answer.content.decode()
    assert not RouteChange.objects.exists()
    # One that is there goes, by its key with or without its runtime part; and so does one stored before keys were
    # checked (whatever it looks like, the way to remove it stays open).
    call_command("route", "process_image", "--force", "originals/lambda/1/a.jpg=celery", "--why", "x")
    JobRoute.objects.filter(job="process_image").update(forced={"originals/1/a.jpg": "celery", "foo": "lambda"})
    routing.forget()
    call_command("route", "process_image", "--unforce", "originals/celery/1/a.jpg", "--unforce", "foo", "--why", "y")
    assert routing.route("process_image").forced == {}


def test_the_form_says_what_a_unit_key_of_the_job_looks_like(staff):
    for job, shape in [("process_image", "originals/&lt;board&gt;/&lt;image id&gt;"), ("send_email", "a message id")]:
        page = staff.get(f"/control/jobs/{job}/").content.decode()
        assert f'<small id="force_key_shape">A unit key looks like {shape}' in page
