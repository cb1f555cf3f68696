"""send_email: the one path that delivers every mail the site sends, in every mode (never imports Django).

The site renders a message and hands it over as a small dict::

    {"message_id": "...", "to": ["a@example.com"], "subject": "...", "text": "...", "html": "..." or None,
     "headers": {"List-Unsubscribe": "<https://...>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
     "from": "Boardsite <boardsite@example.com>"}   # optional: BOARDSITE_MAIL_FROM otherwise

Lambda mode: site -> SNS topic -> SQS mail queue -> this handler (batches; each body an SNS envelope, or the raw
message when the subscription uses raw delivery). Inline and Celery modes: the site calls the handler with an
SQS-shaped event built around the raw message. One body for all three.

- Sent with SES ``SendRawEmail`` (multipart/alternative text + html, the given headers).
- Idempotent by ``message_id``: a marker object ``mail-sent/<message_id>`` in the media bucket is created before
  sending with a create-only put (``If-None-Match: *``, which S3 and moto honour), so a duplicate delivery, even a
  concurrent one, sends nothing. A transient failure removes the claim so the redelivery sends; a claim left by a
  run that died is taken over once it is older than ``STALE_CLAIM_SECONDS``. No database needed.
- SES throttling (``Throttling``, ``MaxSendingRateExceeded``) is retried here with capped exponential back-off and
  full jitter; still throttled after ``MAX_ATTEMPTS``, the record is a batch item failure (SQS redelivers it later,
  and after the queue's maxReceiveCount it lands in the dead-letter queue).
- SES not ready to send (the sender's identity not verified yet, the account still in the SES sandbox, sending paused,
  a missing configuration set or MAIL FROM domain: the state of a new installation, fixed by the operator) is never
  taken as the message's fault: the claim is released, the record is a batch item failure, an error is logged naming
  the cause and what to do, and the message is hidden on its queue for a growing delay (``NOT_READY_DELAYS``, by its
  receive count: ``ChangeMessageVisibility``). After the queue's maxReceiveCount it waits in the mail dead-letter
  queue, 14 days from when it was sent, for the operator to redrive it (DEPLOY.md §6, Mail). Nothing is lost.
- A permanent rejection of the message itself (``MessageRejected`` for another reason, an invalid address) is
  returned in the result, recorded in the marker, not retried, and reported through ``report`` as
  ``{"type": "mail.delivery", "message_id", "status": "rejected", "error"}`` (on Lambda: the results queue, which the
  site's results job reads, so the notification the mail came from is marked rejected). A report that
  fails makes the record a batch item failure: its redelivery finds the rejection in the marker and reports it again.
- A shadow run's record (its body carries ``events.SHADOW_MARK``: the control room's shadow comparison) is rendered
  with ``build_mime`` exactly as it would be sent, never sent or claimed, and reported as ``registry.SHADOW_RESULT``
  with the message's ``mime_digest``; a sent mail's marker keeps the same digest, so the two can be compared.
- Returns ``{"batchItemFailures": [{"itemIdentifier": <SQS messageId>}], "results": [...]}``: with
  ``ReportBatchItemFailures`` on the mapping (``python -m deploy wire functions``) only failed records come back.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, config, registry, results
from offload.batch import ItemFailed, sqs_batch, unwrap_sns
from offload.events import shadow_mark
from offload.mailformat import Mail, UnsendableMessage, build_mime, mime_digest

log = logging.getLogger(__name__)

THROTTLED = ("Throttling", "ThrottlingException", "MaxSendingRateExceeded")
# Retrying these cannot help: the message is refused as it is.
PERMANENT = ("MessageRejected", "InvalidParameterValue")
# SES is not ready to send for this installation yet (the operator's to fix; the message is fine): by error code, and
# MessageRejected's own words for an unverified identity (the sender's, or in the sandbox a recipient's) or a paused
# account. Such a message waits (NOT_READY_DELAYS), then the dead-letter queue, for a redrive.
NOT_READY_CODES = (
    "MailFromDomainNotVerified",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExist",
    "AccountSendingPausedException",
    "AccountSendingPaused",
    "AccessDenied",
    "AccessDeniedException",
)
NOT_READY_WORDS = ("not verified", "did not have authority", "not authorized", "sending paused", "sending is paused")
# How long a not-ready message stays hidden on its queue after its Nth receive (the last value for later receives;
# at the queue's maxReceiveCount, 5, it goes to the dead-letter queue): about 3 h 50 min in all.
NOT_READY_DELAYS = (300, 900, 1800, 5400)
MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.2  # seconds: full jitter over 0.2, 0.4, 0.8, 1.6 (capped), well inside the function's timeout
BACKOFF_CAP = 2.0
STALE_CLAIM_SECONDS = 300  # longer than any run of the function (its timeout is 60 s)

# Tests replace these to observe back-off without waiting.
sleep: Callable[[float], None] = time.sleep
jitter: Callable[[float, float], float] = random.uniform


class BadMessage(ValueError):
    """A record that is not a message this function can send (retrying will not fix it)."""


class SesNotReady(RuntimeError):
    """SES refused to send for a reason of the installation, not of the message: it must be tried again later."""


def not_ready(error: dict[str, Any]) -> bool:
    """Whether an SES error says SES is not ready to send for this installation (see ``NOT_READY_CODES``)."""
    code, text = error.get("Code", ""), str(error.get("Message", "")).lower()
    return code in NOT_READY_CODES or (code == "MessageRejected" and any(w in text for w in NOT_READY_WORDS))


def parse_message(body: str) -> Mail:
    """A record's body (an SNS envelope, or the raw message) as a ``Mail``; ``BadMessage`` when it is not one."""
    try:
        data = unwrap_sns(body)  # SNS -> SQS without raw delivery: the envelope wraps it
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    to = data.get("to")
    to = [to] if isinstance(to, str) else to
    headers = data.get("headers") or {}
    ok = (
        isinstance(data.get("message_id"), str)
        and data["message_id"].strip()
        and "/" not in data["message_id"]
        and isinstance(to, list)
        and to
        and all(isinstance(a, str) and "@" in a for a in to)
        and isinstance(data.get("subject"), str)
        and isinstance(data.get("text"), str)
        and isinstance(data.get("html"), str | None)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    )
    if not ok:
        raise BadMessage("expected message_id, to, subject, text (html, headers, from optional)")
    sender = data.get("from")
    return Mail(
        message_id=data["message_id"],
        to=tuple(to),
        subject=data["subject"],
        text=data["text"],
        html=data.get("html"),
        headers=dict(headers),
        sender=sender if isinstance(sender, str) and sender else None,
    )


def _marker_key(message_id: str) -> str:
    return f"{config.MAIL_SENT_PREFIX}{message_id}"


def _put_marker(bucket: str, key: str, state: dict[str, Any], *, create_only: bool) -> bool:
    """Write the marker; with ``create_only`` False when one is there already (someone claimed the message)."""
    kwargs: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
    try:
        aws.client("s3").put_object(
            Bucket=bucket, Key=key, Body=json.dumps(state).encode(), ContentType="application/json", **kwargs
        )
    except ClientError as exc:
        if create_only and exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return False
        raise
    return True


def _read_marker(bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if aws.is_missing(exc):
            return None
        raise
    try:
        state = json.loads(body)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _claim(bucket: str, key: str) -> dict[str, Any] | None:
    """Claim the message for sending; None when it was claimed, sent or rejected already (the state found)."""
    if _put_marker(bucket, key, {"state": "sending", "at": time.time()}, create_only=True):
        return None
    state = _read_marker(bucket, key)
    if state is None:  # removed between our put and read (a failed attempt released it): claim again
        return _claim(bucket, key)
    if state.get("state") == "sending" and time.time() - float(state.get("at", 0)) > STALE_CLAIM_SECONDS:
        # The run that claimed it died before it could finish or release it: take over (the only case where a
        # duplicate mail is possible, if that run had sent before it died).
        _put_marker(bucket, key, {"state": "sending", "at": time.time()}, create_only=False)
        return None
    return state


def _send_raw(mail: Mail, sender: str) -> tuple[str, str]:
    """SendRawEmail with back-off on throttling; returns SES's message id and the message's ``mime_digest``. Other
    errors propagate."""
    raw = build_mime(mail, sender)
    ses = aws.client("ses")
    for attempt in range(MAX_ATTEMPTS):
        try:
            reply = ses.send_raw_email(Source=sender, Destinations=list(mail.to), RawMessage={"Data": raw})
            return reply["MessageId"], mime_digest(raw)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in THROTTLED or attempt == MAX_ATTEMPTS - 1:
                raise
            delay = jitter(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # full jitter: spread out the retries
            log.info("SES throttled %s (%s); retrying in %.2fs", mail.message_id, code, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def send(mail: Mail) -> dict[str, Any]:
    """Send one message once. Returns its result: ``sent``, ``duplicate`` or ``rejected``; raises on a transient
    failure (throttled beyond the retries, SES or S3 unreachable) after releasing its claim."""
    cfg = config.load()
    key = _marker_key(mail.message_id)
    sender = mail.sender or config.mail_from()
    found = _claim(cfg.bucket, key)
    if found is not None:
        log.info("not sending %s again: %s", mail.message_id, found.get("state"))
        out = {"message_id": mail.message_id, "status": "duplicate", "previous": found.get("state")}
        if found.get("state") == "rejected":
            out["error"] = str(found.get("error", ""))
        return out
    try:
        ses_id, digest = _send_raw(mail, sender)
    except UnsendableMessage as exc:
        result = {"message_id": mail.message_id, "status": "rejected", "error": f"Unsendable: {exc}"}
        _put_marker(
            cfg.bucket, key, {"state": "rejected", "at": time.time(), "error": result["error"]}, create_only=False
        )
        log.warning("not sendable, refused %s: %s", mail.message_id, exc)
        return result
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if not_ready(error):
            _release(cfg.bucket, key)
            raise SesNotReady(f"{error.get('Code')}: {error.get('Message', '')}".strip()) from exc
        if error.get("Code") in PERMANENT:
            result = {
                "message_id": mail.message_id,
                "status": "rejected",
                "error": f"{error.get('Code')}: {error.get('Message', '')}".strip(),
            }
            _put_marker(
                cfg.bucket, key, {"state": "rejected", "at": time.time(), "error": result["error"]}, create_only=False
            )
            log.warning("SES rejected %s: %s", mail.message_id, result["error"])
            return result
        _release(cfg.bucket, key)
        raise
    except BaseException:
        _release(cfg.bucket, key)
        raise
    # The digest lets a shadow run's rendering be compared with what was sent (boardsite/control/shadow.py).
    state = {"state": "sent", "at": time.time(), "ses_message_id": ses_id, "digest": digest}
    _put_marker(cfg.bucket, key, state, create_only=False)
    return {"message_id": mail.message_id, "status": "sent", "ses_message_id": ses_id}


def _release(bucket: str, key: str) -> None:
    try:
        aws.client("s3").delete_object(Bucket=bucket, Key=key)
    except Exception:  # the claim then goes stale and a later delivery takes it over
        log.warning("could not release the claim %s", key, exc_info=True)


def _rejection(result: dict[str, Any]) -> dict[str, Any] | None:
    """The report for a result that says SES refused the message (now, or on an earlier delivery); None otherwise."""
    refused = result.get("status") == "rejected" or (
        result.get("status") == "duplicate" and result.get("previous") == "rejected"
    )
    if not refused:
        return None
    return {
        "type": results.MAIL_RESULT_TYPE,
        "message_id": result["message_id"],
        "status": "rejected",
        "error": result.get("error", ""),
    }


def _defer(record: dict[str, Any]) -> int:
    """Hide a not-ready record on its queue for ``NOT_READY_DELAYS`` by its receive count; the delay (0 when the record
    did not come from a queue, as in inline and Celery modes, or the queue could not be told)."""
    receipt, arn = record.get("receiptHandle"), str(record.get("eventSourceARN", ""))
    if not receipt or not arn.startswith("arn:aws:sqs:"):
        return 0
    received = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1") or 1)
    delay = NOT_READY_DELAYS[min(received, len(NOT_READY_DELAYS)) - 1]
    try:
        aws.client("sqs").change_message_visibility(
            QueueUrl=aws.queue_url(arn.rsplit(":", 1)[1]), ReceiptHandle=receipt, VisibilityTimeout=delay
        )
    except Exception:  # the queue's own visibility timeout applies then: still retried, only sooner
        log.warning("could not delay the retry of a not-ready mail", exc_info=True)
        return 0
    return delay


def handler(
    event: dict[str, Any], context: Any = None, *, report: results.Report | None = None, **_: Any
) -> dict[str, Any]:
    """Lambda entry point for an SQS batch (also called by the site in inline and Celery modes, whose runner passes
    its own ``report``; on Lambda rejections go to the results queue)."""
    report = report or results.publish
    done, failures = sqs_batch(event, lambda record: _one(record, report), what="mail", raise_if_all_failed=False)
    return {"batchItemFailures": failures, "results": done}


def _one(record: dict[str, Any], report: results.Report) -> dict[str, Any]:
    """Send one record's mail; its outcome. ``ItemFailed`` (redelivered) when it cannot be sent now."""
    item = record.get("messageId", "")
    if (mark := shadow_mark({"Records": [record]})) is not None:
        return _shadow(record, mark, report)
    try:
        mail = parse_message(record.get("body", ""))
    except BadMessage as exc:
        # Not retryable, but not dropped silently either: it goes back and, after maxReceiveCount, to the DLQ
        # where a person can look at it.
        raise ItemFailed({"item": item, "status": "invalid", "error": str(exc)}, level=logging.ERROR) from None
    try:
        result = send(mail)
    except SesNotReady as exc:
        delay = _defer(record)
        log.error(
            "SES is not ready to send %s: %s. The sender's domain must be verified in SES (its DKIM records in "
            "DNS) and, for mail to unverified addresses, the account out of the SES sandbox. The mail stays on "
            "the queue and is tried again in %s; after the queue's last receive it waits in the mail dead-letter "
            "queue for a redrive (DEPLOY.md section 6, Mail).",
            mail.message_id,
            exc,
            f"{delay // 60} min" if delay else "the queue's visibility timeout",
        )
        outcome = {"item": item, "message_id": mail.message_id, "status": "deferred", "error": str(exc)}
        raise ItemFailed(outcome, level=logging.DEBUG) from None
    except Exception as exc:
        log.warning("sending %s failed; it will be redelivered", mail.message_id, exc_info=True)
        outcome = {"item": item, "message_id": mail.message_id, "status": "failed", "error": repr(exc)}
        raise ItemFailed(outcome, level=logging.DEBUG) from None
    outcome = {"item": item, **result}
    rejection = _rejection(result)
    if rejection is not None:
        try:
            report(rejection)
        except Exception:
            # Not lost: the redelivery finds "rejected" in the marker, sends nothing and reports again.
            log.warning("could not report the rejection of %s; it will be redelivered", mail.message_id, exc_info=True)
            raise ItemFailed(outcome, level=logging.DEBUG) from None
    return outcome


def _shadow(record: dict[str, Any], mark: dict[str, Any], report: results.Report) -> dict[str, Any]:
    """A shadow run (boardsite/control/shadow.py ``compare_mail``): the mail is rendered exactly as it would be sent,
    never sent and never claimed; what it would have been (``mime_digest``, or why it could not be) is reported."""
    started = time.perf_counter()
    try:
        mail = parse_message(record.get("body", ""))
        raw = build_mime(mail, mail.sender or config.mail_from())
        result: dict[str, Any] = {"status": "rendered", "digest": mime_digest(raw), "bytes": len(raw)}
    except BadMessage as exc:
        result = {"status": "invalid", "error": str(exc)}
    except UnsendableMessage as exc:
        result = {"status": "rejected", "error": f"Unsendable: {exc}"}
    result["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    # A report that fails is not retried: a shadow run never makes work of its own (its pair stays uncompared).
    try:
        report({"type": registry.SHADOW_RESULT, "job": "send_email", "shadow": mark, "result": result})
    except Exception:
        log.warning("could not report the shadow run %s", mark.get("pair"), exc_info=True)
    return {"item": record.get("messageId", ""), "shadow": mark.get("pair"), **result}
