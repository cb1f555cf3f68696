"""Profile pictures nobody finished, settled by ``sweep_uploads`` (``images.signals.sweeping``) as photos are: a
ticket that ended with nothing sent ends the upload; bytes that arrived unreported start processing; processing
whose trigger or result was lost is recovered from the stored result, or started again, at most
``PROCESSING_MAX_ATTEMPTS`` times, then ends with the reason. The picture on show never changes here."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db.models import Q

from boardsite import aws
from boardsite.accounts.models import Avatar
from boardsite.avatars.results import avatar_result_apply
from boardsite.avatars.services import PENDING, PROCESSING, avatar_upload_end
from boardsite.core import jobs
from boardsite.core.errors import Unavailable
from boardsite.images.services import TICKET_GRACE_SECONDS, stored_head
from offload import results

log = logging.getLogger(__name__)

BATCH = 200
NEVER_ARRIVED = "The picture never arrived before its upload link expired. Please try again."
GONE = "The uploaded picture is no longer in storage. Please upload it again."


def gave_up(attempts: int) -> str:
    return f"Processing did not finish after {attempts} attempts. Please upload the picture again."


def _count(counts: dict[str, int], name: str, n: int) -> None:
    # Only what happened: the photos' counts stay as they were when no avatar needed settling.
    if n:
        counts[name] = counts.get(name, 0) + int(n)


def _retry_due(avatar: Avatar, now: dt.datetime) -> bool:
    wait = settings.PROCESSING_RETRY_SECONDS * 2 ** max(avatar.pending_attempts - 1, 0)
    return avatar.pending_started_at is None or avatar.pending_started_at <= now - dt.timedelta(seconds=wait)


def _settle(avatar: Avatar, now: dt.datetime, counts: dict[str, int]) -> None:
    if avatar.pending_state == PROCESSING and not _retry_due(avatar, now):
        return
    head = stored_head(avatar.pending_key)
    if head is None:
        reason = NEVER_ARRIVED if avatar.pending_state == PENDING else GONE
        _count(counts, "avatars_ended", avatar_upload_end(avatar=avatar, reason=reason))
        return
    if avatar.pending_state == PROCESSING:
        stored = results.read_manifest(
            aws.client("s3"), settings.BOARDSITE_BUCKET, results.variants_prefix(avatar.pending_key)
        )
        if stored is not None:  # processed and reported, but the report never landed
            _count(counts, "avatars_recovered", avatar_result_apply(result=stored))
            return
        if avatar.pending_attempts >= settings.PROCESSING_MAX_ATTEMPTS:
            _count(counts, "avatars_ended", avatar_upload_end(avatar=avatar, reason=gave_up(avatar.pending_attempts)))
            return
    # Compare-and-set: two sweeps at once start one attempt.
    claimed = Avatar.objects.filter(
        pk=avatar.pk,
        pending_id=avatar.pending_id,
        pending_state=avatar.pending_state,
        pending_attempts=avatar.pending_attempts,
    ).update(pending_state=PROCESSING, pending_attempts=avatar.pending_attempts + 1, pending_started_at=now)
    if claimed:
        try:
            jobs.object_created(avatar.pending_key, size=head["ContentLength"], etag=head["ETag"], redelivery=True)
        except Exception:
            log.exception("could not start processing avatar %s again", avatar.pending_id)
            raise Unavailable("Processing could not start just now.") from None
        _count(counts, "avatars_restarted", 1)


def avatar_sweep_stale(*, now: dt.datetime, counts: dict[str, int]) -> None:
    """Settle the profile-picture uploads that had their time (see the module's docstring)."""
    expired = now - dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS + TICKET_GRACE_SECONDS)
    first_wait = now - dt.timedelta(seconds=settings.PROCESSING_RETRY_SECONDS)
    stale = Avatar.objects.filter(
        Q(pending_state=PENDING, pending_started_at__lt=expired)
        | Q(pending_state=PROCESSING, pending_started_at__lt=first_wait),
        pending_id__isnull=False,
    ).order_by("pending_started_at")[:BATCH]
    try:
        for avatar in stale:
            _settle(avatar, now, counts)
    except Unavailable:
        log.warning("sweep_uploads: storage or the job queue did not answer for avatars; the next run goes on")


def sweeping_receiver(sender: Any, *, now: dt.datetime, counts: dict[str, int], **kwargs: Any) -> None:
    avatar_sweep_stale(now=now, counts=counts)
