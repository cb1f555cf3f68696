"""The dead-letter queues, as staff see and act on them: list, retry one on a chosen runtime, discard one, retry a
filtered set at a bounded rate. Every action is an ``Action`` row; message bodies stay JSON as they were.

Which queues: ``registry.dead_letters()`` (each trigger queue's redrive target, and the asynchronous invocations'
dead-letter queue). A letter's first error: for an asynchronous failure, Lambda's ``ErrorMessage`` attribute; for a
redriven message, the earliest failed run recorded for its unit (``core.JobRun``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from boardsite import aws
from boardsite.control.models import Action
from boardsite.core import jobs, routing
from boardsite.core.models import JobRun
from offload import registry
from offload import runs as offload_runs
from offload.events import sqs_event

log = logging.getLogger(__name__)

PEEK_ROUNDS = 5  # receives of up to 10 messages each per queue when listing
RETRY_RATE = 5.0  # messages a second when retrying a set
RETRY_MAX = 100  # messages per confirmed set


class DeadLetterError(Exception):
    """What a person is told when an action cannot be done."""


@dataclass(frozen=True)
class Letter:
    job: str
    queue: str
    how: str  # redrive, async
    message_id: str
    body: str
    unit: str
    attempts: int
    first_error: str
    sent_at: float | None

    @property
    def sent(self) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(self.sent_at, dt.UTC) if self.sent_at else None

    @property
    def pretty_body(self) -> str:
        try:
            return json.dumps(json.loads(self.body), indent=2, sort_keys=True)[:4000]
        except ValueError:
            return self.body[:4000]


@dataclass(frozen=True)
class DeadLetterQueue:
    job: str
    queue: str
    how: str
    waiting: int | None  # None: the queue is not there (or AWS did not answer)
    letters: list[Letter]

    @property
    def baseline(self) -> str:
        """Where a retry goes unless staff choose otherwise: the job's route's baseline (not inline by accident)."""
        return routing.route(self.job).baseline


def _url(queue: str) -> str | None:
    try:
        return aws.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError:
        return None


def queues(*, peek: bool = True) -> list[DeadLetterQueue]:
    out = []
    for job, queue, how in registry.dead_letters():
        url = _url(queue)
        if url is None:
            out.append(DeadLetterQueue(job.name, queue, how, None, []))
            continue
        try:
            attributes = aws.client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            waiting = int(attributes["ApproximateNumberOfMessages"])
            letters = _peek(job, queue, how, url) if peek and waiting else []
        except (BotoCoreError, ClientError):
            log.warning("could not read %s", queue, exc_info=True)
            out.append(DeadLetterQueue(job.name, queue, how, None, []))
            continue
        out.append(DeadLetterQueue(job.name, queue, how, waiting, letters))
    return out


def _peek(job: registry.Job, queue: str, how: str, url: str) -> list[Letter]:
    seen: dict[str, Letter] = {}
    for _ in range(PEEK_ROUNDS):
        # VisibilityTimeout 0: looking does not hide a letter from the next action.
        reply = aws.client("sqs").receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in seen]
        for message in new:
            seen[message["MessageId"]] = _letter(job, queue, how, message)
        if not new:
            break
    return sorted(seen.values(), key=lambda letter: letter.sent_at or 0)


def _letter(job: registry.Job, queue: str, how: str, message: dict[str, Any]) -> Letter:
    attributes = message.get("Attributes", {})
    event = _event(job, how, message)
    unit = offload_runs.unit_of(event)
    # Attempts are the failed runs recorded for its unit: SQS's receive count would also count every look at this
    # page (there is no peeking at a queue without receiving).
    failed = JobRun.objects.filter(job=job.name, unit=unit, shadow=False).exclude(outcome="ok") if unit else None
    attempts = failed.count() if failed is not None else 0
    if how == "async":
        error = message.get("MessageAttributes", {}).get("ErrorMessage", {}).get("StringValue", "")
    else:
        first = failed.order_by("started_at").first() if failed is not None else None
        error = first.error_class if first else ""
    sent = attributes.get("SentTimestamp")
    return Letter(
        job=job.name,
        queue=queue,
        how=how,
        message_id=message["MessageId"],
        body=message.get("Body", ""),
        unit=unit,
        attempts=attempts,
        first_error=error or "(not recorded)",
        sent_at=int(sent) / 1000 if sent else None,
    )


def _event(job: registry.Job, how: str, message: dict[str, Any]) -> dict[str, Any]:
    """The event the job gets for this letter: the body itself where it is an event (S3's, or what Lambda was
    invoked with), else the SQS event of the one message."""
    body = message.get("Body", "")
    if how == "async" or isinstance(job.trigger, registry.S3Trigger):
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if isinstance(event, dict):
            return event
    return sqs_event([(message["MessageId"], body)])


def _take(queue: str, message_id: str) -> tuple[str, dict[str, Any]]:
    """The letter's receipt (hidden for a minute while it is acted on) and message; DeadLetterError when gone."""
    url = _url(queue)
    if url is None:
        raise DeadLetterError(f"{queue} is not there")
    for _ in range(PEEK_ROUNDS * 2):
        reply = aws.client("sqs").receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, AttributeNames=["All"]
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        found = None
        for message in messages:
            if message["MessageId"] == message_id:
                found = message
            else:  # not this one: visible again at once
                aws.client("sqs").change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        if found is not None:
            return url, found
    raise DeadLetterError("that message is no longer in the queue (retried or discarded already?)")


def _entry(queue: str) -> tuple[registry.Job, str]:
    for job, name, how in registry.dead_letters():
        if name == queue:
            return job, how
    raise DeadLetterError(f"{queue!r} is not a dead-letter queue of this site")


def retry(*, queue: str, message_id: str, runtime: str, by: str) -> None:
    """Hand one letter to its job on ``runtime`` (the letter leaves the queue once handed over)."""
    job, how = _entry(queue)
    if runtime not in registry.MODES:
        raise DeadLetterError(f"{runtime!r} is not a runtime")
    url, message = _take(queue, message_id)
    event = _event(job, how, message)
    try:
        jobs.hand_over(job.name, runtime, event)
    except Exception as exc:
        aws.client("sqs").change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        raise DeadLetterError(f"could not hand it to {runtime}: {exc}") from None
    aws.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    Action.objects.create(
        by=by, action="retry", job=job.name, detail={"queue": queue, "message_id": message_id, "runtime": runtime}
    )


def discard(*, queue: str, message_id: str, by: str) -> None:
    job, _ = _entry(queue)
    url, message = _take(queue, message_id)
    aws.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    Action.objects.create(
        by=by,
        action="discard",
        job=job.name,
        detail={"queue": queue, "message_id": message_id, "body": message["Body"][:2000]},
    )


def matching(*, queue: str, error: str = "") -> list[Letter]:
    """The letters of ``queue`` whose first error contains ``error`` (all when empty)."""
    for entry in queues():
        if entry.queue == queue:
            return [letter for letter in entry.letters if error.lower() in letter.first_error.lower()]
    raise DeadLetterError(f"{queue!r} is not a dead-letter queue of this site")


def retry_matching(
    *, queue: str, error: str, runtime: str, by: str, rate: float = RETRY_RATE, sleep: Any = time.sleep
) -> tuple[int, list[str]]:
    """Retry every matching letter (at most ``RETRY_MAX``), at most ``rate`` a second. (retried, problems)."""
    done, problems = 0, []
    for i, letter in enumerate(matching(queue=queue, error=error)[:RETRY_MAX]):
        if i:
            sleep(1 / rate)
        try:
            retry(queue=queue, message_id=letter.message_id, runtime=runtime, by=by)
            done += 1
        except DeadLetterError as exc:
            problems.append(f"{letter.message_id}: {exc}")
    return done, problems
