"""Django's EMAIL_BACKEND: every mail the site sends (password resets, any ``send_mail``) is published on the mail
channel (``registry.MAIL``), so one path delivers all mail in every mode.

Each ``EmailMessage`` becomes the mail job's message dict and goes through the door (``jobs.publish``), which hands
it over where that job's mode says: ``inline`` runs the handler now (its failure is this call's failure), ``celery``
enqueues it, ``lambda`` publishes it to the mail SNS topic, whose queue feeds the function.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend

from boardsite.core import jobs
from offload import registry

log = logging.getLogger(__name__)

# A caller that may send the same mail twice (a retried task) sets this header to a stable key: the mail job then
# sends it once. Without it every message gets a fresh id.
MESSAGE_KEY_HEADER = "X-Boardsite-Message-Key"


class MailNotSent(Exception):
    """The mail job refused or failed a message it ran in this process (inline mode).

    ``status`` is the job's: ``rejected`` (SES refused it for good: retrying cannot help), ``failed`` (transient:
    SES or S3 did not answer, throttled beyond the retries) or ``invalid``."""

    def __init__(self, message: str, *, status: str = "failed", error: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def message_payloads(message: EmailMessage) -> list[dict[str, Any]]:
    """The job's message dicts for one EmailMessage: one for its To and Cc, one per Bcc (never shown to others)."""
    headers = {str(k): str(v) for k, v in message.extra_headers.items()}
    key = headers.pop(MESSAGE_KEY_HEADER, None) or uuid.uuid4().hex
    if message.cc:
        headers["Cc"] = ", ".join(message.cc)
    if message.reply_to:
        headers["Reply-To"] = ", ".join(message.reply_to)
    html = None
    if isinstance(message, EmailMultiAlternatives):
        html = next((str(content) for content, mimetype in message.alternatives if mimetype == "text/html"), None)
    base = {
        "subject": str(message.subject),
        "text": str(message.body),
        "html": html,
        "headers": headers,
        "from": message.from_email or settings.DEFAULT_FROM_EMAIL,
    }
    payloads = []
    if message.to or message.cc:
        payloads.append({**base, "message_id": key, "to": [*message.to, *message.cc]})
    for n, address in enumerate(message.bcc):
        bcc_headers = {k: v for k, v in headers.items() if k != "Cc"}
        payloads.append({**base, "headers": bcc_headers, "message_id": f"{key}-bcc{n}", "to": [address]})
    return payloads


def deliver(payload: dict[str, Any]) -> None:
    """Hand one message dict to the mail job (the one ``registry.MAIL`` feeds), wherever its mode says; raises
    ``MailNotSent`` when it ran here and did not send."""
    result = jobs.publish(registry.MAIL, payload, message_id=payload["message_id"])
    if result is None:
        return  # enqueued (Celery) or published (Lambda): the job reports a refusal on the results channel
    problems = [r for r in result.get("results", []) if r.get("status") not in ("sent", "duplicate")]
    # A duplicate of a message SES refused earlier is that refusal, not a success.
    problems += [r for r in result.get("results", []) if r.get("previous") == "rejected"]
    if problems:
        status = "rejected" if problems[0].get("previous") == "rejected" else str(problems[0].get("status"))
        error = str(problems[0].get("error", ""))
        raise MailNotSent(f"{payload['message_id']}: {status}: {error}", status=status, error=error)


class JobEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            try:
                for payload in message_payloads(message):
                    deliver(payload)
            except Exception:
                if not self.fail_silently:
                    raise
                log.exception("mail %r not handed to the mail job", message.subject)
                continue
            sent += 1
        return sent
