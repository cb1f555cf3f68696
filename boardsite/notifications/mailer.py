"""The ``mail_notifications`` job (every minute): notifications whose mail is due are rendered and handed to
the mail job, each once.

- Due: ``mail_state="due"`` and ``mail_due_at`` passed (a burst of "photos added" is due once it has been quiet for
  ``NOTIFY_BURST_SECONDS``), oldest first, at most ``BATCH`` per run.
- Claimed with a compare-and-set on (state, ``mail_due_at``) to ``sending`` with a lease: two runs at once mail a row
  once. A run that dies after claiming leaves the row ``sending``; once the lease (``CLAIM_SECONDS``) is over, a later
  run takes it over. The message key ``notification-<id>`` makes the mail job send nothing the second time if the first
  run had handed it over already.
- Checked again when claimed: the person's choice for the kind must still be "immediately", the address confirmed and
  not suppressed, the board still theirs to see; otherwise ``skipped``.
- Handed over: ``sent``. A transient failure (the topic, SES, S3 or the Celery broker did not answer) puts it back to
  ``due`` with back-off (about as long as it has waited, 1 minute to 1 hour), never lost; after ``GIVE_UP_SECONDS`` of
  that it is ``skipped`` with the last error. A permanent refusal by SES is ``rejected`` with the reason in
  ``mail_error``, never retried: raised here in inline mode, reported back through the results queue in lambda and
  Celery mode (``notification_mail_result_apply``, routed by the results job).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from typing import Any

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from boardsite import secrets
from boardsite.accounts.models import Profile
from boardsite.boards.models import Visibility
from boardsite.boards.selectors import board_role
from boardsite.mail.backends import MailNotSent
from boardsite.notifications.mailing import absolute, build_mail
from boardsite.notifications.models import Delivery, Kind, MailState, Notification
from boardsite.notifications.services import delivery_for, mail_address
from offload.results import MAIL_RESULT_TYPE

log = logging.getLogger(__name__)

BATCH = 100  # mails per run: each is a render and a publish, well inside the web function's timeout
CLAIM_SECONDS = 300  # a run's lease on a claimed row; longer than any run (the web function's timeout is 30 s)
RETRY_MIN_SECONDS = 60
RETRY_MAX_SECONDS = 3600
GIVE_UP_SECONDS = 2 * 24 * 3600  # news of photos two days late is no news: stop trying, say why
ERROR_MAX = 2000

MESSAGE_KEY = "notification-{}"
_MESSAGE_KEY_RE = re.compile(r"notification-(\d+)")

NOT_CHOSEN = "The person no longer wants this kind of notification by email."
NO_ADDRESS = "No confirmed address that accepts mail."
NO_ACCESS = "The person can no longer see the board."


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    secrets.require()  # a schedule bypasses the middleware
    return notifications_mail_due()


def message_key(notification_id: int) -> str:
    return MESSAGE_KEY.format(notification_id)


def notifications_mail_due(now: dt.datetime | None = None, *, limit: int = BATCH) -> dict[str, int]:
    """Mail what is due at ``now``; counts of ``sent``, ``skipped``, ``rejected``, ``retry`` and ``taken`` (claimed
    by another run first)."""
    now = now or timezone.now()
    counts: Counter[str] = Counter()
    # Two queries, one per partial index (due rows; claims whose lease ran out), merged oldest first.
    columns = ("pk", "mail_state", "mail_due_at")
    due = Notification.objects.filter(mail_state=MailState.DUE, mail_due_at__lte=now)
    stale = Notification.objects.filter(mail_state=MailState.SENDING, mail_due_at__lte=now)
    rows = [
        *due.order_by("mail_due_at", "pk").values_list(*columns)[:limit],
        *stale.order_by("mail_due_at", "pk").values_list(*columns)[:limit],
    ]
    rows.sort(key=lambda row: (row[2], row[0]))
    for pk, state, due_at in rows[:limit]:
        counts[_mail_one(pk, state, due_at, now)] += 1
    if counts:
        log.info("mail_notifications: %s", dict(counts))
    return dict(counts)


def _mail_one(pk: int, state: str, due_at: dt.datetime, now: dt.datetime) -> str:
    lease = now + dt.timedelta(seconds=CLAIM_SECONDS)
    claimed = Notification.objects.filter(pk=pk, mail_state=state, mail_due_at=due_at).update(
        mail_state=MailState.SENDING, mail_due_at=lease
    )
    if not claimed:
        return "taken"  # another run claimed it, or a new photo moved its burst on
    if state == MailState.SENDING:
        log.warning("notification %s: taking over a claim whose run did not finish", pk)
    notification = Notification.objects.select_related("user", "board", "image", "actor").get(pk=pk)
    user = notification.user
    address = mail_address(user)
    if delivery_for(user, notification.kind) != Delivery.IMMEDIATELY:
        return _finish(notification, lease, MailState.SKIPPED, NOT_CHOSEN)
    if address is None:
        return _finish(notification, lease, MailState.SKIPPED, NO_ADDRESS)
    board = notification.board
    if board is not None and board.visibility != Visibility.PUBLIC and board_role(board=board, user=user) is None:
        return _finish(notification, lease, MailState.SKIPPED, NO_ACCESS)
    try:
        message = notification_mail(notification, address)
    except Exception as exc:
        # A rendering bug would fail the same way every minute: record it instead of retrying for ever.
        log.exception("notification %s could not be rendered", pk)
        return _finish(notification, lease, MailState.SKIPPED, f"Could not be rendered: {exc!r}")
    try:
        message.send()
    except MailNotSent as exc:
        if exc.status in ("rejected", "invalid"):
            return _finish(notification, lease, MailState.REJECTED, exc.error or str(exc))
        return _retry(notification, lease, now, str(exc))
    except Exception as exc:  # the topic, the broker or the local job did not answer: try again later
        log.warning("notification %s not handed to the mail job; retrying later", pk, exc_info=True)
        return _retry(notification, lease, now, repr(exc))
    return _finish(notification, lease, MailState.SENT, "")


def _finish(notification: Notification, lease: dt.datetime, state: str, error: str) -> str:
    # Only while our claim holds: a rejection reported back meanwhile (lambda mode) or a run that took the claim
    # over decides instead.
    Notification.objects.filter(pk=notification.pk, mail_state=MailState.SENDING, mail_due_at=lease).update(
        mail_state=state, mail_due_at=None, mail_error=error[:ERROR_MAX]
    )
    return {MailState.SENT: "sent", MailState.REJECTED: "rejected"}.get(state, "skipped")


def _retry(notification: Notification, lease: dt.datetime, now: dt.datetime, error: str) -> str:
    waited = (now - notification.updated_at).total_seconds()
    if waited > GIVE_UP_SECONDS:
        return _finish(notification, lease, MailState.SKIPPED, f"Not handed to the mail service in time: {error}")
    # About as long as it has waited so far: the delays double, from a minute to an hour.
    delay = min(RETRY_MAX_SECONDS, max(RETRY_MIN_SECONDS, waited))
    Notification.objects.filter(pk=notification.pk, mail_state=MailState.SENDING, mail_due_at=lease).update(
        mail_state=MailState.DUE, mail_due_at=now + dt.timedelta(seconds=delay), mail_error=error[:ERROR_MAX]
    )
    return "retry"


def notification_mail_result_apply(*, result: dict[str, Any]) -> bool:
    """The mail job's report that SES refused a message: its notification (message key ``notification-<id>``) becomes
    ``rejected`` with the reason. False when it changed nothing (another mail, a repeated report)."""
    if result.get("type") != MAIL_RESULT_TYPE or result.get("status") != "rejected":
        log.warning("ignoring a mail result %r", {k: result.get(k) for k in ("type", "status", "message_id")})
        return False
    match = _MESSAGE_KEY_RE.fullmatch(str(result.get("message_id", "")))
    if match is None:
        log.warning("mail %s was rejected: %s", result.get("message_id"), result.get("error"))
        return False  # not a notification's (a password reset): the mail job's marker keeps the reason
    error = str(result.get("error") or "Rejected by the mail service.")
    return bool(
        Notification.objects.filter(pk=int(match[1]))
        .filter(Q(mail_state__in=(MailState.DUE, MailState.SENDING, MailState.SENT)))
        .update(mail_state=MailState.REJECTED, mail_due_at=None, mail_error=error[:ERROR_MAX])
    )


# --- rendering -----------------------------------------------------------------------------------------------------


def display_name(user: Any) -> str:
    if user is None:
        return "Someone"
    name = Profile.objects.filter(user=user).values_list("display_name", flat=True).first()
    return name or user.username


def notification_mail(notification: Notification, address: str) -> Any:
    """The mail of one notification (``build_mail``): subject, text and HTML parts, links with ``SITE_URL``."""
    n = notification
    board = n.board
    data = n.data or {}
    board_title = board.title if board is not None else str(data.get("board_title") or "a board")
    context: dict[str, Any] = {
        "notification": n,
        "data": data,
        "recipient_name": display_name(n.user),
        "actor_name": display_name(n.actor) if n.actor_id else "Someone",
        "board_title": board_title,
        "board_url": absolute(reverse("board-detail", args=[board.pk])) if board is not None else None,
        "image_url": absolute(reverse("image-detail", args=[n.image.pk])) if n.image is not None else None,
        "count": n.count,
    }
    if n.kind == Kind.PHOTOS_ADDED:
        what = "a photo" if n.count == 1 else f"{n.count} photos"
        subject = f"{context['actor_name']} added {what} to {board_title}"
        context.update(what=what, reason=f"you are a member of {board_title}")
    elif n.kind == Kind.BOARD_ADDED:
        role = str(data.get("role") or "member")
        subject = f"{context['actor_name']} added you to {board_title}"
        context.update(role=role, reason=f"you were added to {board_title}")
    elif n.kind == Kind.UPLOAD_FAILED:
        filename = str(data.get("filename") or (n.image.filename if n.image is not None else "") or "your photo")
        reason = str(data.get("reason") or data.get("error") or (n.image.error if n.image is not None else ""))
        subject = f"Your upload {filename} to {board_title} failed"
        context.update(
            filename=filename, failure=reason or "Processing failed.", reason="you chose to hear of failed uploads"
        )
    elif n.kind == Kind.OWNERSHIP_OFFERED:
        subject = f"{context['actor_name']} offered you ownership of {board_title}"
        context.update(reason=f"you are a member of {board_title}")
    else:
        raise ValueError(f"a {n.kind} notification is not mailed on its own")
    return build_mail(
        user=n.user,
        address=address,
        kind=n.kind,
        subject=subject,
        template=n.kind,
        context=context,
        message_key=message_key(n.pk),
    )
