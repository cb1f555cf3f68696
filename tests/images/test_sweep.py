"""sweep_uploads: no image stays pending or processing forever."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.utils import timezone

from boardsite.core import jobs
from boardsite.images.sweep import NEVER_ARRIVED, gave_up, image_sweep_stale
from devstack import runner
from offload import registry
from tests import factories
from tests.helpers import run_in_thread


def make_image(
    board, user, *, status="pending", minutes_ago=0.0, body: bytes | None = None, s3=None, attempts=0, attempt_ago=None
):
    """An upload ``minutes_ago`` old (tests/factories.py's photo, back-dated), its original in S3 when ``body``."""
    image = factories.make_image(
        board,
        user,
        status=status,
        filename=f"{status}-{minutes_ago}.jpg",
        declared_size=len(body) if body else 10,
        size=None,
        variants=(),
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        attempts=attempts,
        attempt_started_at=None if attempt_ago is None else timezone.now() - dt.timedelta(minutes=attempt_ago),
    )
    if body is not None:
        s3.put_object(
            Bucket="boardsite-media",
            Key=image.original_key,
            Body=body,
            ContentType="image/jpeg",
            Metadata={"declared-size": str(len(body))},
        )
    return image


def status_of(image):
    image.refresh_from_db()
    return image.status, image.error


@pytest.fixture(autouse=True)
def _lifetimes(settings):
    # The ages below are chosen against these, whatever the environment says.
    settings.UPLOAD_TICKET_SECONDS = 600
    settings.PROCESSING_RETRY_SECONDS = 300
    settings.PROCESSING_MAX_ATTEMPTS = 4


def test_sweep_settles_every_stale_upload_and_leaves_fresh_ones(
    board, people, s3, jpeg, settings, django_capture_on_commit_callbacks
):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    owner = people["owner"]
    never_sent = make_image(board, owner, minutes_ago=15)
    sent_not_reported = make_image(board, owner, minutes_ago=15, body=jpeg(), s3=s3)
    lost_trigger = make_image(
        board, owner, status="processing", minutes_ago=8, body=jpeg(), s3=s3, attempts=1, attempt_ago=6
    )
    out_of_attempts = make_image(
        board, owner, status="processing", minutes_ago=90, body=jpeg(), s3=s3, attempts=4, attempt_ago=41
    )
    # Within its ticket (10 min) but past the sweep's grace: the bytes may still be on their way.
    still_sending = make_image(board, owner, minutes_ago=5)
    fresh_processing = make_image(board, owner, status="processing", minutes_ago=5, attempts=1, attempt_ago=4)
    waiting_for_retry = make_image(
        board, owner, status="processing", minutes_ago=20, body=jpeg(), s3=s3, attempts=2, attempt_ago=9
    )

    with django_capture_on_commit_callbacks(execute=True):  # as after each commit outside a test transaction
        counts = image_sweep_stale()

    assert counts == {
        "never_arrived": 1,
        "started": 1,
        "restarted": 1,
        "recovered": 0,
        "gave_up": 1,
        "refused": 0,
        "batch_deleted": 0,  # photos deleted in a batch, past their undo window (tests/images/test_bulk.py)
        "cleaned": 0,  # deletions of this run happen right after their commits, not in the run's own pass
    }
    assert status_of(never_sent) == ("failed", NEVER_ARRIVED)
    assert status_of(sent_not_reported) == ("ready", "")
    assert status_of(lost_trigger) == ("ready", "")
    assert status_of(out_of_attempts) == ("failed", gave_up(4))
    assert "after 4 attempts" in gave_up(4)
    # A photo given up on keeps only its original, for a retry from the control room (until retryable_until).
    assert s3.list_objects_v2(Bucket="boardsite-media", Prefix=out_of_attempts.original_key)["KeyCount"] == 1
    out_of_attempts.refresh_from_db()
    assert out_of_attempts.retryable_until is not None
    assert status_of(still_sending) == ("pending", "")
    assert status_of(fresh_processing) == ("processing", "")
    assert status_of(waiting_for_retry) == ("processing", ""), "attempt 2 waits twice the base delay (10 min)"
    again = image_sweep_stale()
    assert not any(again.values()), again  # idempotent


def test_each_attempt_waits_twice_as_long_and_counts(board, people, s3, jpeg, settings):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    image = make_image(
        board, people["owner"], status="processing", minutes_ago=30, body=jpeg(), s3=s3, attempts=2, attempt_ago=9
    )
    now = timezone.now()
    assert image_sweep_stale(now=now)["restarted"] == 0
    assert image_sweep_stale(now=now + dt.timedelta(minutes=1, seconds=5))["restarted"] == 1
    image.refresh_from_db()
    assert (image.status, image.attempts) == ("ready", 3)


def test_in_lambda_mode_the_sweep_redelivers_the_lost_s3_event(board, people, s3, jpeg, settings):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    lost = make_image(board, people["owner"], minutes_ago=15, body=jpeg(), s3=s3)
    s3_events = registry.get("process_image")
    while runner.poll_once(s3_events, handler=lambda *a: None, wait_seconds=0):
        pass  # S3's own notification is "lost"
    assert image_sweep_stale()["started"] == 1
    assert status_of(lost)[0] == "processing"
    # The redelivered event reaches the function the way S3's would, and its result the site.
    assert runner.poll_once(s3_events, wait_seconds=1) == 1
    # The photo's result, and the runs' records (offload/runs.py: the drain's and the function's) beside it.
    assert runner.poll_once(registry.get("apply_results"), wait_seconds=1) >= 2
    assert status_of(lost) == ("ready", "")


@pytest.mark.django_db(transaction=True)
def test_the_local_runner_runs_the_schedule_at_start(board, people, local_aws, settings):
    stale = make_image(board, people["owner"], minutes_ago=15)
    stop = threading.Event()
    thread = run_in_thread(runner.run, [registry.get("sweep_uploads")], stop)
    try:
        for _ in range(100):
            if status_of(stale)[0] == "failed":
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert status_of(stale) == ("failed", NEVER_ARRIVED)


@pytest.mark.parametrize(("mode", "scheduled"), [("celery", "['sweep_uploads']"), ("lambda", "[]")])
def test_the_celery_app_loads_the_beat_schedule_from_the_registry(mode, scheduled):
    import os
    import subprocess
    import sys

    code = (
        "from boardsite.celery import app; app.loader.import_default_modules(); print(sorted(app.conf.beat_schedule))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "boardsite.settings", "OFFLOAD_MODES": f"sweep_uploads={mode}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == scheduled, out.stderr


def test_celery_mode_schedules_it_with_beat(settings):
    settings.OFFLOAD_MODES = {"sweep_uploads": "celery"}
    entry = jobs.beat_schedule()["sweep_uploads"]
    assert entry["task"] == "boardsite.run_job"
    assert entry["schedule"] == registry.get("sweep_uploads").trigger.every_seconds
    assert entry["options"]["queue"] == "jobs.sweep_uploads"
    assert "-B" in jobs.celery_worker_command("python")
    settings.OFFLOAD_MODES = {"sweep_uploads": "lambda"}
    assert jobs.beat_schedule() == {}
    assert "-B" not in jobs.celery_worker_command("python")
