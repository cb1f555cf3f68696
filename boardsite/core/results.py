"""Where the web side applies what jobs report: the ``apply_results`` job.

Every result is a type-tagged JSON object on the results channel (``registry.RESULTS``): Lambda mode, a Zappa SQS
event on the web app's function (locally ``manage.py runjobs``); inline and Celery modes, the site's own
``jobs.report``. Each is applied by the web-side function the reporting job's registry entry names for its type
(``registry.RESULT_APPLIERS``), loaded by its dotted path: core names no app. Appliers are idempotent: the same result
delivered twice changes nothing the second time.

The handler answers with a partial batch response (``ReportBatchItemFailures`` on the event source mapping, set by
``python -m deploy wire``): a record that failed (a body that is not a JSON object, a database error) is reported
and comes back (after ``maxReceiveCount`` tries: the dead-letter queue); the others are applied and deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from django.utils.module_loading import import_string

from boardsite import secrets
from offload import registry
from offload.batch import BatchFailed as BatchFailed  # re-exported: callers catch it from here
from offload.batch import MalformedRecord, sqs_batch

log = logging.getLogger(__name__)


class MalformedResult(MalformedRecord):
    """A message body that is not a JSON object: redelivery cannot fix it, the dead-letter queue keeps it."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Apply each SQS record; ``{"applied": n, "batchItemFailures": [{"itemIdentifier": messageId}, ...]}``.

    Lambda reads only ``batchItemFailures`` (an empty list: the whole batch succeeded); ``applied`` is for callers.
    """
    secrets.require()  # events bypass the middleware: never apply anything before a SnapStart restore's secrets
    done, failures = sqs_batch(event, lambda record: result_apply(result=_result(record.get("body"))), what="result")
    return {"applied": sum(done), "batchItemFailures": failures}


def result_apply(*, result: dict[str, Any]) -> bool:
    """Apply one result with the function its type names; False when nothing applies it or it changed nothing."""
    kind = result.get("type")
    path = registry.RESULT_APPLIERS.get(kind) if isinstance(kind, str) else None
    if path is None:
        log.warning("ignoring a result of unknown type %r", kind)
        return False
    return bool(_applier(path)(result=result))


@cache
def _applier(path: str) -> Callable[..., Any]:
    return import_string(path)


def _result(body: Any) -> dict[str, Any]:
    try:
        result = json.loads(body)
    except (TypeError, json.JSONDecodeError):
        result = None
    if not isinstance(result, dict):
        raise MalformedResult(f"{body!r:.200}")
    return result
