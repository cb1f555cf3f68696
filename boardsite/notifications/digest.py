"""The ``weekly_digest`` job (Monday 23:00 UTC): each board owner's week in one mail.

The week is the 7 days ending at the schedule's latest time at or before the run (``digest_week``), so a run that is
late, retried or repeated covers the same week. For each person who owns a board, has not turned the digest off and
has an address that may be mailed: per owned board, the photos added that week (and by whom) and the week's
"missing" list (uploads started that week that failed, with their reason, or never finished); and the person's
notifications of the week whose kind they chose to get "only in the weekly digest". Nothing to report: no mail.

Once per person and week: a ``Digest`` row (unique per user and week) is the claim, taken before the mail is built
(compare-and-set), and marked sent or empty after. A second run skips everyone already done; a run that died leaves
rows "claimed", which a later run takes over once ``DIGEST_CLAIM_STALE_SECONDS`` have passed. The mail's message key
is ``digest-<user>-<week>``, so even a run that died between handing the mail over and marking the row sends one
mail (the mail job is idempotent by that key).

A run stops after ``DIGEST_TIME_BUDGET_SECONDS`` (inside the job's timeout) and raises ``DigestUnfinished``: on
Lambda the asynchronous invoke is retried with the same event (the same week) and the retry does the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from boardsite import secrets
from boardsite.boards.models import Board, Membership, Role
from boardsite.images.models import Image, Status
from boardsite.images.services import TICKET_GRACE_SECONDS
from boardsite.notifications.mailing import absolute, build_mail
from boardsite.notifications.models import (
    Delivery,
    Digest,
    DigestState,
    Kind,
    Notification,
    Preference,
)
from boardsite.notifications.services import mail_address, preferences_for
from offload import registry

log = logging.getLogger(__name__)

JOB = "weekly_digest"
WEEK = dt.timedelta(days=7)
PAGE = 100  # people read per query
NEWEST = 5  # newest photos named per board
# A claim older than this belongs to a run that died (the job's timeout is far shorter): a later run takes it over.
CLAIM_STALE_SECONDS = getattr(settings, "DIGEST_CLAIM_STALE_SECONDS", 15 * 60)
# Stop in time to record what was done: well inside the job's timeout.
TIME_BUDGET_SECONDS = getattr(settings, "DIGEST_TIME_BUDGET_SECONDS", registry.get(JOB).timeout - 10)

NEVER_ARRIVED = "The upload was started but the file never arrived."
STILL_PROCESSING = "The file arrived but processing has not finished."
FAILED = "Processing failed."


class DigestUnfinished(Exception):
    """The run used its time budget with people left; running it again for the same week does the rest."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    secrets.require()  # a schedule bypasses the middleware
    result = digest_send_week(now=event_time(event))
    if result["unfinished"]:
        raise DigestUnfinished(f"digest of {result['week']}: time budget used, {result['sent']} sent; run it again")
    return result


def event_time(event: Any) -> dt.datetime | None:
    """The time a scheduled event was scheduled for (EventBridge's ``time``, UTC), so a retried invoke covers the
    same week; None (run now) when the event has none (Celery beat's)."""
    raw = event.get("time") if isinstance(event, dict) else None
    if not raw:
        return None
    try:
        when = parse_datetime(str(raw))
    except ValueError:
        when = None
    if when is None:
        raise ValueError(f"{JOB}: the event's time {raw!r} is not an ISO 8601 date and time")
    return when if timezone.is_aware(when) else when.replace(tzinfo=dt.UTC)


def digest_week(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of the week a run at ``now`` reports: the 7 days ending at the latest Monday 23:00 UTC <= now."""
    cron = registry.get(JOB).trigger.cron
    assert cron is not None
    end = cron.latest_at_or_before(now)
    return end - WEEK, end


def digest_send_week(now: dt.datetime | None = None, *, budget_seconds: float | None = None) -> dict[str, Any]:
    """Send the digests of the week ending at the latest Monday 23:00 UTC <= ``now`` that are not sent yet.

    Returns counts and ``unfinished`` (the time budget ran out with people left).
    """
    now = now or timezone.now()
    start, end = digest_week(now)
    week = start.date().isoformat()
    deadline = time.monotonic() + (TIME_BUDGET_SECONDS if budget_seconds is None else budget_seconds)
    counts = Counter(sent=0, empty=0, no_address=0, busy=0)
    after = 0
    while True:
        people = list(_candidates(start, end).filter(pk__gt=after).order_by("pk")[:PAGE])
        for user in people:
            after = user.pk
            if time.monotonic() > deadline and counts["sent"] + counts["empty"] > 0:
                log.warning("digest of %s: time budget used; %s sent so far", week, counts["sent"])
                return {"week": week, "unfinished": True, **counts}
            address = mail_address(user)
            if address is None:
                counts["no_address"] += 1  # no row: should they confirm an address, a rerun of this week mails them
                continue
            digest = _claim(user, start)
            if digest is None:
                counts["busy"] += 1  # done already, or a live run has it
                continue
            counts[_send(digest, user, address, start, end, now, week)] += 1
        if len(people) < PAGE:
            break
    log.info("digest of %s: %s", week, dict(counts))
    return {"week": week, "unfinished": False, **counts}


def _candidates(start: dt.datetime, end: dt.datetime) -> Any:
    """People who may get this week's digest and do not have it yet: board owners, and anyone with a notification
    of the week of a kind they chose for the digest; not those who turned the digest off."""
    owners = Membership.objects.filter(role=Role.OWNER).values("user_id")
    digested = Notification.objects.filter(
        created_at__gte=start,
        created_at__lt=end,
        # One join: the preference row of the notification's own kind.
        user__notification_preferences__kind=F("kind"),
        user__notification_preferences__delivery=Delivery.DIGEST,
    ).values("user_id")
    off = Preference.objects.filter(kind=Kind.DIGEST, delivery=Delivery.OFF).values("user_id")
    stale = timezone.now() - dt.timedelta(seconds=CLAIM_STALE_SECONDS)
    taken = Digest.objects.filter(week_start=start).filter(
        Q(state__in=(DigestState.SENT, DigestState.EMPTY)) | Q(claimed_at__gt=stale)
    )
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(pk__in=owners) | Q(pk__in=digested))
        .exclude(pk__in=off)
        .exclude(pk__in=taken.values("user_id"))
    )


def _claim(user: AbstractBaseUser, week_start: dt.datetime) -> Digest | None:
    """This run's claim on ``user``'s digest of the week, or None when it is done or a live run holds it."""
    claimed_at = timezone.now()
    try:
        with transaction.atomic():
            return Digest.objects.create(user=user, week_start=week_start, claimed_at=claimed_at)
    except IntegrityError:
        pass
    # Compare-and-set: of two runs taking over the same stale claim, one updates the row, the other finds it fresh.
    stale = claimed_at - dt.timedelta(seconds=CLAIM_STALE_SECONDS)
    row = Digest.objects.filter(user=user, week_start=week_start, state=DigestState.CLAIMED, claimed_at__lte=stale)
    if row.update(claimed_at=claimed_at) != 1:
        return None
    log.info("digest of %s for user %s: taking over a claim left by a run that stopped", week_start, user.pk)
    return Digest.objects.get(user=user, week_start=week_start)


def _send(
    digest: Digest,
    user: AbstractBaseUser,
    address: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    week: str,
) -> str:
    try:
        context = digest_content(user, start, end, now)
        photos = sum(b["photos"] for b in context["boards"])
        missing = sum(len(b["missing"]) for b in context["boards"])
        notes = len(context["notifications"])
        if not (photos or missing or notes):
            Digest.objects.filter(pk=digest.pk).update(state=DigestState.EMPTY)
            return "empty"
        build_mail(
            user=user,
            address=address,
            kind=Kind.DIGEST,
            subject=_subject(photos, missing, notes, end),
            template="digest",
            context=context,
            message_key=f"digest-{user.pk}-{week}",
        ).send()
    except Exception:
        # Give the claim back: the next run (a retry of this one) tries this person again straight away.
        Digest.objects.filter(pk=digest.pk, state=DigestState.CLAIMED).delete()
        raise
    Digest.objects.filter(pk=digest.pk).update(
        state=DigestState.SENT, photos=photos, missing=missing, notifications=notes, sent_at=timezone.now()
    )
    return "sent"


def _subject(photos: int, missing: int, notes: int, end: dt.datetime) -> str:
    parts = []
    if photos:
        parts.append(f"{photos} new photo{'s' if photos != 1 else ''}")
    if missing:
        parts.append(f"{missing} missing upload{'s' if missing != 1 else ''}")
    if notes and not parts:
        parts.append(f"{notes} update{'s' if notes != 1 else ''}")
    return f"Your boards this week (to {end:%d %b}): {', '.join(parts)}"


def _name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "someone (account deleted)"
    return user.get_full_name() or user.get_username()


def board_url(board: Board) -> str:
    return absolute(reverse("board-detail", args=[board.pk]))


def digest_content(user: AbstractBaseUser, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """What ``user``'s digest of the week [start, end) says (as seen at ``now``): only boards they own."""
    boards = []
    owned = Board.objects.filter(memberships__user=user, memberships__role=Role.OWNER).order_by("title", "pk")
    # An upload still pending or processing this long after it started is past its ticket: not coming on its own.
    unfinished_before = now - dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS)
    for board in owned:
        week = Image.objects.filter(
            board=board, created_at__gte=start, created_at__lt=end, deleting_until__isnull=True
        ).select_related("uploaded_by")
        ready = list(week.filter(status=Status.READY).order_by("-created_at"))
        missing = [
            {"filename": image.filename, "by": _name(image.uploaded_by), "reason": _missing_reason(image)}
            for image in week.filter(
                Q(status=Status.FAILED)
                | Q(status__in=(Status.PENDING, Status.PROCESSING), created_at__lt=unfinished_before)
            ).order_by("created_at")
        ]
        if not ready and not missing:
            continue
        by = Counter(_name(image.uploaded_by) for image in ready)
        boards.append(
            {
                "title": board.title,
                "url": board_url(board),
                "photos": len(ready),
                "by": sorted(by.items(), key=lambda item: (-item[1], item[0])),
                "newest": [{"filename": i.filename, "caption": i.caption} for i in ready[:NEWEST]],
                "more": max(len(ready) - NEWEST, 0),
                "missing": missing,
            }
        )
    return {
        "boards": boards,
        "notifications": _digested_notifications(user, start, end),
        "week_start": start,
        "week_end": end,
        "reason": (
            "you own boards on boardsite and get its weekly digest"
            if owned.exists()
            else "you chose to get some notifications in the weekly digest"
        ),
    }


def _missing_reason(image: Image) -> str:
    if image.status == Status.FAILED:
        return image.error or FAILED
    return NEVER_ARRIVED if image.status == Status.PENDING else STILL_PROCESSING


def _digested_notifications(user: AbstractBaseUser, start: dt.datetime, end: dt.datetime) -> list[dict[str, str]]:
    """The week's notifications of the kinds ``user`` chose to get only in the digest (mailed nowhere else)."""
    kinds = [k for k, d in preferences_for(user).items() if d == Delivery.DIGEST and k != Kind.DIGEST]
    rows = (
        Notification.objects.filter(user=user, kind__in=kinds, created_at__gte=start, created_at__lt=end)
        .select_related("board", "actor")
        .order_by("created_at", "pk")
    )
    return [{"text": _describe(n), "url": board_url(n.board) if n.board else ""} for n in rows]


def _describe(n: Notification) -> str:
    board = n.board.title if n.board else n.data.get("board_title", "a deleted board")
    if n.kind == Kind.PHOTOS_ADDED:
        return f"{_name(n.actor)} added {n.count} photo{'s' if n.count != 1 else ''} to {board}"
    if n.kind == Kind.BOARD_ADDED:
        role = n.data.get("role")
        return f"{_name(n.actor)} added you to {board}" + (f" as {role}" if role else "")
    if n.kind == Kind.UPLOAD_FAILED:
        name = n.data.get("filename") or (n.image.filename if n.image else "a photo")
        reason = n.data.get("reason") or ""
        return f"Your upload {name} to {board} failed" + (f": {reason}" if reason else "")
    if n.kind == Kind.OWNERSHIP_OFFERED:
        return f"{_name(n.actor)} offered you ownership of {board}"
    if n.kind == Kind.BOARD_INVITED:
        return f"{_name(n.actor)} invited you to {board}"
    return f"{n.get_kind_display()}: {board}"
