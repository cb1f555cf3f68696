"""No upload lost, in any mode: the trigger is lost on purpose, and the sweep gets the photo processed anyway.

lambda: the bucket notification is removed during the upload (S3's event never comes); the result message is
dropped (processed, never applied). celery: the queued message is purged before a worker takes it. inline: the
request dies mid-processing (as a Lambda time-out kills it). And a photo whose processing never finishes fails after
the configured number of attempts, with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from urllib.parse import unquote_plus

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.celery import app as celery_app
from boardsite.core.jobs import celery_queue, celery_worker_command
from boardsite.images.models import Image
from boardsite.images.sweep import gave_up, image_sweep_stale
from devstack import runner
from offload import aws as offload_aws
from offload import registry
from offload.functions import process_image
from offload.results import variants_prefix
from tests.helpers import database_url, post_to_s3, settled, start_process, stop_process, ticket, wait_for

LATER = dt.timedelta(minutes=6)  # past PROCESSING_RETRY_SECONDS (5 min) for a first attempt


@pytest.fixture(autouse=True)
def _retry_settings(settings):
    settings.PROCESSING_RETRY_SECONDS = 300
    settings.PROCESSING_MAX_ATTEMPTS = 4


@pytest.fixture
def uploader(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


def send_and_report(client: Client, board_id: int, data: bytes) -> str:
    body = ticket(client, board_id, data)
    post_to_s3(body["upload"], data)
    r = client.post(body["image"]["complete_url"])
    assert r.status_code == 200, r.content
    return body["image"]["id"]


def drain_uploads_queue() -> None:
    """S3's test event (sent when the notification was configured) out of the way."""
    while runner.poll_once(registry.get("process_image"), handler=lambda *a: None, wait_seconds=0):
        pass


def lose_s3_events(s3, bucket: str) -> None:
    """As the review did: the bucket notification is gone while photos are uploaded."""
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    drain_uploads_queue()


def queue_depth(name: str) -> int:
    attrs = offload_aws.client("sqs").get_queue_attributes(
        QueueUrl=offload_aws.queue_url(name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_lambda_mode_s3_event_lost(settings, uploader, board, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    lose_s3_events(s3, settings.BOARDSITE_BUCKET)
    image_id = send_and_report(uploader, board.pk, jpeg())
    assert queue_depth(registry.get("process_image").queue.resolved()) == 0, "no S3 event arrived"
    assert Image.objects.get(pk=image_id).status == "processing"

    assert image_sweep_stale()["restarted"] == 0, "the first attempt still has its time"
    assert image_sweep_stale(now=timezone.now() + LATER)["restarted"] == 1
    # Redelivered as S3 would have delivered it, to the function, whose result reaches the site.
    assert runner.poll_once(registry.get("process_image"), wait_seconds=1) == 1
    # The photo's result, and the runs' records (offload/runs.py: the drain's and the function's) beside it.
    assert runner.poll_once(registry.get("apply_results"), wait_seconds=1) >= 2
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.attempts) == ("ready", 2)


def test_lambda_mode_result_lost(settings, uploader, board, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    drain_uploads_queue()
    image_id = send_and_report(uploader, board.pk, jpeg())
    assert runner.poll_once(registry.get("process_image"), wait_seconds=1) == 1
    # The result message is lost (say it kept failing and went to the dead-letter queue).
    sqs = offload_aws.client("sqs")
    sqs.purge_queue(QueueUrl=offload_aws.queue_url(registry.RESULTS.resolved()))
    assert Image.objects.get(pk=image_id).status == "processing"
    counts = image_sweep_stale(now=timezone.now() + LATER)
    assert (counts["recovered"], counts["restarted"]) == (1, 0), "applied from the stored result, not processed again"
    assert Image.objects.get(pk=image_id).status == "ready"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_mode_message_lost(settings, uploader, board, s3, jpeg, tmp_path):
    modes = {"process_image": "celery", "apply_results": "inline"}
    settings.OFFLOAD_MODES = modes
    queue = celery_queue("process_image")
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)  # leftovers of an earlier run
        image_id = send_and_report(uploader, board.pk, jpeg())
        assert conn.default_channel.queue_purge(queue) == 1, "the queued job is lost before any worker takes it"
    assert Image.objects.get(pk=image_id).status == "processing"

    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OFFLOAD_MODES": ",".join(f"{k}={v}" for k, v in modes.items()),
    }
    log = tmp_path / "worker.log"
    worker = start_process(celery_worker_command(sys.executable), env, log)
    try:
        wait_for(lambda: " ready." in log.read_text(), timeout=60)
        assert image_sweep_stale(now=timezone.now() + LATER)["restarted"] == 1
        image = wait_for(lambda: settled(image_id), timeout=60)
    finally:
        print(stop_process(worker, log)[-3000:])
    assert (image.status, image.attempts) == ("ready", 2)


class LambdaTimeout(BaseException):
    """Stands for the runtime killing the request: nothing after it runs, no ``except Exception`` sees it."""


def test_inline_mode_request_cut_off(settings, uploader, board, s3, jpeg, monkeypatch):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}

    def killed(**kwargs):
        raise LambdaTimeout

    monkeypatch.setattr(process_image, "process_object", killed)
    body = ticket(uploader, board.pk, data := jpeg())
    post_to_s3(body["upload"], data)
    with pytest.raises(LambdaTimeout):
        uploader.post(body["image"]["complete_url"])
    monkeypatch.undo()
    assert Image.objects.get(pk=body["image"]["id"]).status == "processing"
    assert image_sweep_stale(now=timezone.now() + LATER)["restarted"] == 1
    assert Image.objects.get(pk=body["image"]["id"]).status == "ready"


def test_gives_up_after_the_attempts_with_the_reason(
    settings, uploader, board, s3, jpeg, django_capture_on_commit_callbacks
):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    lose_s3_events(s3, settings.BOARDSITE_BUCKET)
    image_id = send_and_report(uploader, board.pk, jpeg())
    now = timezone.now()
    # Every redelivery is lost too (no function runs); attempts 2, 3 and 4 wait 5, 10 and 20 minutes.
    for minutes, expected in ((6, 2), (17, 3), (38, 4)):
        assert image_sweep_stale(now=now + dt.timedelta(minutes=minutes))["restarted"] == 1
        assert Image.objects.get(pk=image_id).attempts == expected
    assert queue_depth(registry.get("process_image").queue.resolved()) == 3
    assert image_sweep_stale(now=now + dt.timedelta(minutes=60))["gave_up"] == 0, "the last attempt has 40 minutes"
    with django_capture_on_commit_callbacks(execute=True):
        assert image_sweep_stale(now=now + dt.timedelta(minutes=79))["gave_up"] == 1
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.error) == ("failed", gave_up(4))
    # Never finished is a passing reason, not a refused file: the original stays for a retry from the control room
    # (FAILED_RETRY_DAYS), and nothing else of it does.
    assert image.retryable_until is not None
    assert s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=image.original_key)["KeyCount"] == 1
    assert (
        s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=variants_prefix(image.original_key))["KeyCount"]
        == 0
    )


def test_s3_notifies_only_for_uploads_placed_for_lambda(local_aws, s3, settings):
    # Outside lambda mode the site starts the job itself, once: S3's event running the function too would hide a lost
    # Celery message. The runtime is in the key (jobs.place), and S3 notifies only under the trigger's notify_prefix.
    from devstack import provision

    provision.provision(origins=["http://127.0.0.1"])
    config = s3.get_bucket_notification_configuration(Bucket=settings.BOARDSITE_BUCKET)
    [notification] = config["QueueConfigurations"]
    assert notification["Id"] == "boardsite-originals-lambda"
    assert notification["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "originals/lambda/"}]
    sqs = offload_aws.client("sqs")
    uploads = offload_aws.queue_url(registry.get("process_image").queue.resolved())
    sqs.purge_queue(QueueUrl=uploads)
    for runtime in ("celery", "inline", "lambda"):
        s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=f"originals/{runtime}/1/{runtime}.jpg", Body=b"x")
    keys = []
    for _ in range(3):
        for message in sqs.receive_message(QueueUrl=uploads, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = json.loads(message["Body"])
            keys += [unquote_plus(record["s3"]["object"]["key"]) for record in body.get("Records", [])]
    assert keys == ["originals/lambda/1/lambda.jpg"]
