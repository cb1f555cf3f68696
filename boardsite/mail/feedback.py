"""The ``apply_mail_feedback`` job: SES's bounce and complaint notifications become suppressed addresses.

SES publishes a notification to the feedback SNS topic (``boardsite-mail-feedback``) for each hard bounce and each
complaint about mail from the site's identity (``SetIdentityNotificationTopic``; DEPLOY.md). The feedback queue is
subscribed to the topic and feeds this handler (Lambda mode: an SQS event on the web app's function; locally the
runner polls it). What it records:

- a permanent bounce (``bounceType: Permanent``): each bounced recipient is suppressed (reason ``bounce``);
- a complaint: each complaining recipient is suppressed (reason ``complaint``);
- a transient or undetermined bounce: logged only (a full mailbox or a greylisting server recovers);
- anything else SES says on the topic (delivery, the "subscription succeeded" note): logged and dropped.

A suppressed address gets no more mail from the site (``mail.services.suppression_get``: notifications, confirmation
and password-reset mails); its owner is told on the profile page and fixes it by confirming another address.

Bodies are accepted in SNS's envelope (the subscription's default) or raw, and in both of SES's shapes (identity
notifications say ``notificationType``, configuration-set events ``eventType``). A body that is neither is a
reported failure (partial batch response, as ``boardsite.images.results``): it comes back and, after
``maxReceiveCount`` tries, waits on the dead-letter queue; the rest of the batch is applied.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr
from typing import Any

from django.db import transaction

from boardsite import secrets
from boardsite.mail.models import Suppression
from offload.batch import BatchFailed as BatchFailed  # re-exported: callers catch it from here
from offload.batch import MalformedRecord, sqs_batch, unwrap_sns

log = logging.getLogger(__name__)

BOUNCE, COMPLAINT = "bounce", "complaint"


class MalformedFeedback(MalformedRecord):
    """A body that is not an SES notification: redelivery cannot fix it, the dead-letter queue keeps it."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Apply each SQS record; ``{"suppressed": n, "batchItemFailures": [{"itemIdentifier": messageId}, ...]}``."""
    secrets.require()  # events bypass the middleware: nothing touches the database before a restore's secrets
    done, failures = sqs_batch(
        event,
        lambda record: len(feedback_apply(notification=parse_notification(record.get("body")))),
        what="mail feedback",
    )
    return {"suppressed": sum(done), "batchItemFailures": failures}


def parse_notification(body: Any) -> dict[str, Any]:
    """The SES notification inside an SQS body (SNS envelope or raw); MalformedFeedback otherwise."""
    try:
        notification = unwrap_sns(body) if not isinstance(body, dict) else body
    except (TypeError, ValueError):
        raise MalformedFeedback(f"not a JSON object (or its SNS message is not): {body!r:.200}") from None
    if not isinstance(notification, dict):
        raise MalformedFeedback(f"not a JSON object: {body!r:.200}")
    return notification


def _addresses(recipients: Any) -> list[str]:
    if not isinstance(recipients, list) or not recipients:
        raise MalformedFeedback("no recipients")
    out = []
    for recipient in recipients:
        raw = recipient.get("emailAddress") if isinstance(recipient, dict) else None
        address = parseaddr(raw)[1] if isinstance(raw, str) else ""
        if "@" not in address:
            raise MalformedFeedback(f"not an address: {raw!r:.100}")
        out.append(address.strip().lower())
    return out


@transaction.atomic
def feedback_apply(*, notification: dict[str, Any]) -> list[str]:
    """Record what one SES notification says; returns the addresses it newly suppressed (none for a duplicate)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    if kind not in ("Bounce", "Complaint"):
        # The object present says it too. moto's SES copies AWS's documentation example, whose notificationType is
        # the placeholder "Bounce, Complaint, or Delivery."; SES itself always names the type.
        present = [name.capitalize() for name in ("bounce", "complaint") if isinstance(notification.get(name), dict)]
        kind = present[0] if len(present) == 1 else kind
    if kind == "Bounce":
        bounce = notification.get("bounce")
        if not isinstance(bounce, dict):
            raise MalformedFeedback("a Bounce without its bounce object")
        addresses = _addresses(bounce.get("bouncedRecipients"))
        if bounce.get("bounceType") != "Permanent":
            # Transient (mailbox full, message too large) or Undetermined: the address may work tomorrow.
            log.info("%s bounce for %s: not suppressed", bounce.get("bounceType"), ", ".join(addresses))
            return []
        diagnostics = {
            parseaddr(r.get("emailAddress", ""))[1].lower(): r.get("diagnosticCode") or r.get("status") or ""
            for r in bounce["bouncedRecipients"]
            if isinstance(r, dict)
        }
        sub_type = bounce.get("bounceSubType") or "General"
        return _suppress(addresses, BOUNCE, lambda a: f"Permanent bounce ({sub_type}) {diagnostics.get(a, '')}")
    if kind == "Complaint":
        complaint = notification.get("complaint")
        if not isinstance(complaint, dict):
            raise MalformedFeedback("a Complaint without its complaint object")
        addresses = _addresses(complaint.get("complainedRecipients"))
        feedback_type = complaint.get("complaintFeedbackType") or "unspecified"
        return _suppress(addresses, COMPLAINT, lambda a: f"Complaint ({feedback_type})")
    if isinstance(kind, str) and kind:
        # Delivery, Send, the "AmazonSnsSubscriptionSucceeded" note SES sends when the topic is set: nothing to do.
        log.info("mail feedback of type %s: nothing to record", kind)
        return []
    raise MalformedFeedback(f"neither notificationType nor eventType: {str(notification)[:200]}")


def _suppress(addresses: list[str], reason: str, detail: Any) -> list[str]:
    new = []
    for address in dict.fromkeys(addresses):
        row, created = Suppression.objects.get_or_create(
            address_key=address, defaults={"reason": reason, "detail": detail(address).strip()[:1000]}
        )
        if created:
            new.append(address)
            log.warning("suppressed %s: %s", address, row.detail)
        elif reason == COMPLAINT and row.reason != COMPLAINT:
            # A complaint says more than a bounce did (the person asked us to stop): the profile shows the complaint.
            row.reason, row.detail = reason, detail(address).strip()[:1000]
            row.save(update_fields=["reason", "detail"])
    return new
