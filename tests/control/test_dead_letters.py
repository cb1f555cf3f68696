"""Dead letters in the control room: listed with their job, unit, first error and attempts; retried on a chosen
runtime, discarded, or retried as a confirmed set; every action audited (boardsite/control/deadletters.py)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.control.models import Action
from boardsite.core.models import JobRun
from boardsite.images.models import Image
from offload import aws, registry
from offload.events import s3_object_created_event
from tests.factories import make_user
from tests.helpers import post_to_s3, ticket

PROCESS_DLQ = "boardsite-process-image-dlq"


@pytest.fixture
def staff(db):
    client = Client()
    client.force_login(make_user("ada", is_staff=True))
    return client


def put_letter(queue: str, body: dict | str, error: str | None = None) -> str:
    sqs = aws.client("sqs")
    attributes = {"ErrorMessage": {"DataType": "String", "StringValue": error}} if error else {}
    text = body if isinstance(body, str) else json.dumps(body)
    return sqs.send_message(QueueUrl=aws.queue_url(queue), MessageBody=text, MessageAttributes=attributes)["MessageId"]


def waiting(queue: str) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_lost_photo_is_listed_and_retried_inline_until_ready(staff, settings, people, board, local_aws, jpeg):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "lambda", "apply_results": "inline"}
    uploader = Client()
    uploader.force_login(people["contributor"])
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    key = body["upload"]["fields"]["key"]
    head = aws.client("s3").head_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)
    event = s3_object_created_event(
        bucket=settings.BOARDSITE_BUCKET, key=key, size=head["ContentLength"], etag=head["ETag"]
    )
    message_id = put_letter(PROCESS_DLQ, event, error="Task timed out after 60.00 seconds")
    for _ in range(3):  # the function's three tries, as recorded (offload/runs.py)
        JobRun.objects.create(
            run_id=str(uuid.uuid4()),
            job="process_image",
            runtime="lambda",
            outcome="failed",
            error_class="TimeoutError",
            started_at=timezone.now(),
            duration_ms=60_000,
            billed_ms=60_000,
            memory_mb=1024,
            unit=registry.unplaced(key),
        )
    staff.get("/control/dead-letters/")  # looking (SQS counts a receive) does not add attempts
    page = staff.get("/control/dead-letters/").content.decode()
    assert '<td class="num">3</td>' in page, "attempts: the failed runs recorded for its unit"
    assert registry.unplaced(key) in page, "the letter's unit: the photo's key"
    assert "Task timed out after 60.00 seconds" in page
    r = staff.post(
        "/control/dead-letters/act/",
        {"queue": PROCESS_DLQ, "message_id": message_id, "runtime": "inline", "action": "retry"},
    )
    assert r.status_code == 302
    assert Image.objects.get(pk=body["image"]["id"]).status == "ready"
    assert waiting(PROCESS_DLQ) == 0
    action = Action.objects.get()
    assert (action.by, action.action, action.job, action.detail["runtime"]) == (
        "ada",
        "retry",
        "process_image",
        "inline",
    )


def test_a_mail_letter_goes_back_to_lambda_or_is_discarded(staff, local_aws):
    mail_dlq = registry.redrive_queue(registry.get("send_email").queue.resolved())
    first = put_letter(mail_dlq, {"Type": "Notification", "Message": json.dumps({"to": "a@example.com"})})
    second = put_letter(mail_dlq, "not json at all")
    page = staff.get("/control/dead-letters/").content.decode()
    assert "2 waiting" in page
    staff.post(
        "/control/dead-letters/act/", {"queue": mail_dlq, "message_id": first, "runtime": "lambda", "action": "retry"}
    )
    mail_queue = registry.get("send_email").queue.resolved()
    messages = aws.client("sqs").receive_message(QueueUrl=aws.queue_url(mail_queue), WaitTimeSeconds=1)["Messages"]
    assert json.loads(messages[0]["Body"])["Type"] == "Notification", "the body as it was, on the job's own queue"
    staff.post("/control/dead-letters/act/", {"queue": mail_dlq, "message_id": second, "action": "discard"})
    assert waiting(mail_dlq) == 0
    assert [a.action for a in Action.objects.order_by("pk")] == ["retry", "discard"]
    assert Action.objects.get(action="discard").detail["body"] == "not json at all"
    r = staff.post(
        "/control/dead-letters/act/", {"queue": mail_dlq, "message_id": second, "action": "discard"}, follow=True
    )
    assert "no longer in the queue" in r.content.decode()


def test_a_set_is_retried_only_after_a_confirmation(staff, local_aws):
    mail_dlq = registry.redrive_queue(registry.get("send_email").queue.resolved())
    for i in range(3):
        put_letter(mail_dlq, {"Type": "Notification", "Message": json.dumps({"n": i})})
    query = {"queue": mail_dlq, "error": "", "runtime": "lambda"}
    page = staff.get("/control/dead-letters/retry-set/", query).content.decode()
    assert "Retry 3 letters" in page
    assert waiting(mail_dlq) == 3, "looking changes nothing"
    assert staff.post("/control/dead-letters/retry-set/", query).status_code == 200, "no confirmation: asks again"
    assert waiting(mail_dlq) == 3
    r = staff.post("/control/dead-letters/retry-set/", {**query, "confirm": "yes"}, follow=True)
    assert "Retried 3 on lambda" in r.content.decode()
    assert waiting(mail_dlq) == 0
    assert Action.objects.filter(action="retry").count() == 3


def test_only_staff_reach_dead_letters(db, people):
    person = Client()
    person.force_login(people["owner"])
    assert person.get("/control/dead-letters/").status_code == 404
    assert person.post("/control/dead-letters/act/", {"queue": PROCESS_DLQ, "message_id": "x"}).status_code == 404
    assert person.get("/control/dead-letters/retry-set/", {"queue": PROCESS_DLQ}).status_code == 404
