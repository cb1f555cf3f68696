"""The partial batch response of every SQS-triggered job (``ReportBatchItemFailures`` on the deployed mappings, set
by ``python -m deploy wire``): each record handled on its own, the failed ones reported and redelivered (after
``maxReceiveCount``, the dead-letter queue), the others deleted. A small loop rather than aws-lambda-powertools'
BatchProcessor: the same contract without another package in either zip."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class MalformedRecord(ValueError):
    """A body the job cannot read: redelivery cannot fix it, the dead-letter queue keeps it (logged without a
    traceback)."""


class ItemFailed(Exception):
    """A record the job could not handle now, with what the job says of it (``outcome``, kept in the answer), logged
    at ``level`` without a traceback: the job already said why."""

    def __init__(self, outcome: Any, *, level: int = logging.WARNING, message: str = "") -> None:
        super().__init__(message or str(outcome))
        self.outcome, self.level = outcome, level


class BatchFailed(RuntimeError):
    """Every record of the batch failed: raised (as Powertools' BatchProcessor does) so that a caller running one
    message (inline, Celery, the local runner) sees a failure, and Lambda retries the whole batch."""


def sqs_batch[T](
    event: dict[str, Any],
    handle: Callable[[dict[str, Any]], T],
    *,
    what: str,
    raise_if_all_failed: bool = True,
) -> tuple[list[T], list[dict[str, str]]]:
    """``handle(record)`` for each SQS record of ``event``; (what each success returned and each ``ItemFailed``
    carried, in order; ``batchItemFailures``)."""
    records = [r for r in event.get("Records") or [] if r.get("eventSource") == "aws:sqs"]
    done: list[Any] = []
    failures: list[dict[str, str]] = []
    first_error: Exception | None = None
    for record in records:
        message_id = record.get("messageId") or ""
        try:
            done.append(handle(record))
        except Exception as exc:  # one record's failure must not cost the others theirs
            first_error = first_error or exc
            if isinstance(exc, ItemFailed):
                log.log(exc.level, "%s %s failed: %s", what, message_id, exc)
                done.append(exc.outcome)
            elif isinstance(exc, MalformedRecord):
                log.error("%s %s cannot be read, reported as failed: %s", what, message_id, exc)
            else:
                log.exception("%s %s could not be applied, reported as failed", what, message_id)
            failures.append({"itemIdentifier": message_id})
    if raise_if_all_failed and records and len(failures) == len(records):
        raise BatchFailed(f"all {len(records)} {what}(s) failed: {first_error}") from first_error
    return done, failures


def unwrap_sns(body: Any) -> Any:
    """A queue message's body as JSON, out of SNS's envelope when a topic delivered it (a subscription without raw
    delivery wraps every message): the same value whoever put it on the queue. Raises ValueError on a body that is
    not JSON."""
    data = json.loads(body)
    if isinstance(data, dict) and "Type" in data and "Message" in data:
        message = data["Message"]
        # SNS's own envelope carries the message as a string; moto's SES notifications as the object itself.
        data = json.loads(message) if isinstance(message, str) else message
    return data
