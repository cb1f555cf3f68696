"""The partial batch response of the web side's SQS jobs (``ReportBatchItemFailures`` on their mappings, set by
``python -m deploy wire``): each record applied on its own, the failed ones reported and redelivered (after
``maxReceiveCount``, the dead-letter queue), the others deleted. A small loop rather than aws-lambda-powertools'
BatchProcessor: the same contract without another package in the web zip."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class MalformedRecord(ValueError):
    """A body the job cannot read: redelivery cannot fix it, the dead-letter queue keeps it (logged without a
    traceback)."""


class BatchFailed(RuntimeError):
    """Every record of the batch failed: raised (as Powertools' BatchProcessor does) so that a caller running one
    message (inline, Celery, the local runner) sees a failure, and Lambda retries the whole batch."""


def sqs_batch(event: dict[str, Any], apply: Callable[[Any], int], *, what: str) -> tuple[int, list[dict[str, str]]]:
    """``apply(body)`` for each SQS record of ``event``; (the sum of what it returned, ``batchItemFailures``)."""
    records = [r for r in event.get("Records") or [] if r.get("eventSource") == "aws:sqs"]
    done, failures, first_error = 0, [], None
    for record in records:
        message_id = record.get("messageId") or ""
        try:
            done += apply(record.get("body"))
        except Exception as exc:  # one record's failure must not cost the others theirs
            first_error = first_error or exc
            if isinstance(exc, MalformedRecord):
                log.error("%s %s cannot be read, reported as failed: %s", what, message_id, exc)
            else:
                log.exception("%s %s could not be applied, reported as failed", what, message_id)
            failures.append({"itemIdentifier": message_id})
    if records and len(failures) == len(records):
        raise BatchFailed(f"all {len(records)} {what}(s) failed: {first_error}") from first_error
    return done, failures
