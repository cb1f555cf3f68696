"""Recording notifications, reading them, and each person's choices. Access checks live here, not in templates.

Every notification is listed in the site. Whether it is also mailed is decided when it is recorded (the person's
choice for its kind and a confirmed, unsuppressed address) and checked again when it is due: the row then carries
``mail_state="due"`` and ``mail_due_at``, and the notification mailer (``notifications/mailer.py``) renders and hands
it to the mail job.

"Photos added" is batched: while one person keeps adding photos to a board, each member's notification of that
burst grows (``count``) and its mail moves to ``NOTIFY_BURST_SECONDS`` after the latest photo, so a burst makes one
mail, never one per photo.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.db.models.functions import Least
from django.utils import timezone

from boardsite.mail.models import Suppression
from boardsite.mail.services import suppression_get
from boardsite.notifications.models import (
    DEFAULT_DELIVERY,
    MAILED_ELSEWHERE,
    Delivery,
    Kind,
    MailState,
    Notification,
    Preference,
)

# A burst of "photos added" ends once nobody added a photo to the board for this long; its mail goes out then.
NOTIFY_BURST_SECONDS = getattr(settings, "NOTIFY_BURST_SECONDS", 180)
NOTIFY_BURST_MAX_SECONDS = getattr(settings, "NOTIFY_BURST_MAX_SECONDS", 900)
# How long an unsubscribe link works (a person may find an old mail; after this the preferences page still works).
UNSUBSCRIBE_MAX_AGE = getattr(settings, "UNSUBSCRIBE_MAX_AGE", 180 * 24 * 3600)
_UNSUBSCRIBE_SALT = "boardsite.notifications.unsubscribe"

UNSUBSCRIBE_EXPIRED = "This unsubscribe link has expired. You can change what we send you on your preferences page."
UNSUBSCRIBE_INVALID = "This unsubscribe link is not valid: it was altered or cut short."


class BadUnsubscribeLink(ValueError):
    """An unsubscribe token that is tampered with or expired (the message says which)."""


# --- choices -------------------------------------------------------------------------------------------------------


def delivery_for(user: AbstractBaseUser, kind: str) -> str:
    found = Preference.objects.filter(user=user, kind=kind).values_list("delivery", flat=True).first()
    return found or DEFAULT_DELIVERY[Kind(kind)]


def preferences_for(user: AbstractBaseUser) -> dict[str, str]:
    """Every kind's choice for ``user`` (defaults filled in)."""
    chosen = dict(Preference.objects.filter(user=user).values_list("kind", "delivery"))
    return {kind.value: chosen.get(kind.value, DEFAULT_DELIVERY[kind].value) for kind in Kind}


def preference_set(*, user: AbstractBaseUser, kind: str, delivery: str) -> None:
    kind, delivery = Kind(kind), Delivery(delivery)  # ValueError on a name that is not one
    if kind == Kind.DIGEST and delivery == Delivery.DIGEST:
        delivery = Delivery.IMMEDIATELY  # "the digest, in the digest" is the digest
    Preference.objects.update_or_create(user=user, kind=kind, defaults={"delivery": delivery})


# --- addresses -----------------------------------------------------------------------------------------------------


def is_suppressed(address: str) -> Suppression | None:
    return suppression_get(address=address)


def mail_address(user: AbstractBaseUser) -> str | None:
    """Where notifications to ``user`` may be mailed: a confirmed address that SES has not reported bouncing or
    complaining; None otherwise."""
    from boardsite.accounts.emails import confirmed_email

    if not user.is_active:
        return None
    address = confirmed_email(user)
    if address is None or is_suppressed(address):
        return None
    return address


# --- unsubscribe links ---------------------------------------------------------------------------------------------


def unsubscribe_token(user: AbstractBaseUser, kind: str) -> str:
    return signing.TimestampSigner(salt=_UNSUBSCRIBE_SALT).sign_object({"u": user.pk, "k": str(kind)}, compress=True)


def read_unsubscribe_token(token: str, *, max_age: int | None = None) -> tuple[int, str]:
    """(user id, kind) of a link; BadUnsubscribeLink with a sentence for the page otherwise."""
    signer = signing.TimestampSigner(salt=_UNSUBSCRIBE_SALT)
    try:
        payload = signer.unsign_object(token, max_age=UNSUBSCRIBE_MAX_AGE if max_age is None else max_age)
    except signing.SignatureExpired:
        raise BadUnsubscribeLink(UNSUBSCRIBE_EXPIRED) from None
    except (signing.BadSignature, ValueError):
        raise BadUnsubscribeLink(UNSUBSCRIBE_INVALID) from None
    if not isinstance(payload, dict) or payload.get("k") not in Kind.values or not isinstance(payload.get("u"), int):
        raise BadUnsubscribeLink(UNSUBSCRIBE_INVALID)
    return payload["u"], payload["k"]


# --- recording -----------------------------------------------------------------------------------------------------


def _mail_plan(user: AbstractBaseUser, kind: str, due: dt.datetime) -> dict[str, Any]:
    if kind not in MAILED_ELSEWHERE and delivery_for(user, kind) == Delivery.IMMEDIATELY and mail_address(user):
        return {"mail_state": MailState.DUE, "mail_due_at": due}
    return {"mail_state": MailState.NONE, "mail_due_at": None}


def notify(
    *,
    user: AbstractBaseUser,
    kind: str,
    board: Any = None,
    image: Any = None,
    actor: AbstractBaseUser | None = None,
    data: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Notification:
    """Record one notification for ``user`` (mailed straight away, by the next run of the notification mailer, if the
    person chose it)."""
    now = now or timezone.now()
    return Notification.objects.create(
        user=user,
        kind=kind,
        board=board,
        image=image,
        actor=actor,
        data=data or {},
        created_at=now,
        updated_at=now,
        **_mail_plan(user, kind, now),
    )


@transaction.atomic
def notify_photos_added(
    *,
    board: Any,
    actor: AbstractBaseUser | None,
    recipients: Iterable[AbstractBaseUser],
    image: Any = None,
    now: dt.datetime | None = None,
) -> int:
    """One more photo by ``actor`` on ``board``: each recipient's notification of the current burst grows, or a new
    one starts. ``actor`` is never among those notified. Returns how many notifications were touched."""
    now = now or timezone.now()
    recipients = [u for u in recipients if actor is None or u.pk != actor.pk]
    if not recipients:
        return 0
    # Results for one board are applied in parallel (Lambda runs SQS batches side by side): without a lock two of
    # them could both find no open burst and start two. Their board's row serializes them until the commit.
    # (SQLite ignores FOR UPDATE; its transactions take the write lock at BEGIN instead.)
    list(type(board).objects.select_for_update().filter(pk=board.pk).values_list("pk"))
    burst = dt.timedelta(seconds=NOTIFY_BURST_SECONDS)
    open_bursts = Notification.objects.select_for_update().filter(
        kind=Kind.PHOTOS_ADDED,
        board=board,
        actor=actor,
        user__in=recipients,
        read_at__isnull=True,
        mail_state__in=(MailState.NONE, MailState.DUE),
        updated_at__gte=now - burst,
    )
    grown = set(open_bursts.values_list("user_id", flat=True))
    open_bursts.update(count=F("count") + 1, updated_at=now, image=image)
    # Each photo moves the mail to ``burst`` after it, but never later than NOTIFY_BURST_MAX_SECONDS after the
    # burst's first photo: someone adding a photo every few minutes all day must not hold the news back all day.
    latest = ExpressionWrapper(F("created_at") + dt.timedelta(seconds=NOTIFY_BURST_MAX_SECONDS), DateTimeField())
    open_bursts.filter(mail_state=MailState.DUE).update(mail_due_at=Least(Value(now + burst), latest))
    for user in recipients:
        if user.pk not in grown:
            row = notify(user=user, kind=Kind.PHOTOS_ADDED, board=board, image=image, actor=actor, now=now)
            if row.mail_state == MailState.DUE:
                Notification.objects.filter(pk=row.pk).update(mail_due_at=now + burst)
    return len(recipients)


# --- reading -------------------------------------------------------------------------------------------------------


def unread_count(user: AbstractBaseUser) -> int:
    """The header's number: one query on the partial index ``notification_unread``."""
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notification_mark_read(*, user: AbstractBaseUser, notification_id: int) -> bool:
    """Mark one of ``user``'s notifications read; False when it is not theirs (or not there): nothing leaks."""
    return bool(
        Notification.objects.filter(pk=notification_id, user=user, read_at__isnull=True).update(read_at=timezone.now())
    )


def notifications_mark_all_read(*, user: AbstractBaseUser) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
