"""The ``sweep_uploads`` job (every 5 minutes): no upload is lost, none stays pending or processing forever.

- pending past its ticket's expiry: the bytes never arrived -> failed; they did arrive (the browser never reported
  it) -> processing starts, in every mode;
- processing, and the attempt is older than ``PROCESSING_RETRY_SECONDS`` (doubling per attempt): the trigger or the
  result was lost (an S3 event, a Celery message, a request cut off, a function that used up its retries). A result
  stored beside the variants is applied; otherwise, while the original is there, processing starts again, at most
  ``PROCESSING_MAX_ATTEMPTS`` times in all, then the photo fails with the reason;
- storage deletions that are due (or failed earlier because S3 did not answer) are done.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from boardsite import aws, secrets
from boardsite.core.errors import Unavailable
from boardsite.images import signals
from boardsite.images.bulk import photos_deleting_finish
from boardsite.images.cleanup import storage_cleanup_run
from boardsite.images.models import DeletedImage, Image, PhotoBatch, Status, UploadGrant, UploadTicket
from boardsite.images.results import image_result_apply
from boardsite.images.services import (
    NOT_CONTRIBUTOR,
    TICKET_GRACE_SECONDS,
    head_original,
    image_fail,
    image_process_start,
    uploader_may_add,
)
from offload import results

log = logging.getLogger(__name__)

GRACE_SECONDS = TICKET_GRACE_SECONDS
BATCH = 200  # rows per kind and run: a run stays well inside the web function's timeout
NEVER_ARRIVED = "The upload never arrived before its upload link expired. Please try again."
GONE = "The uploaded file is no longer in storage. Please upload the photo again."


def gave_up(attempts: int) -> str:
    return f"Processing did not finish after {attempts} attempts. Please upload the photo again."


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    secrets.require()  # a schedule bypasses the middleware
    return image_sweep_stale()


def retry_due(image: Image, now: dt.datetime) -> bool:
    """Whether the latest processing attempt has had its time: the base delay, doubled for each earlier attempt."""
    if image.attempt_started_at is None:
        return True
    wait = settings.PROCESSING_RETRY_SECONDS * 2 ** max(image.attempts - 1, 0)
    return image.attempt_started_at <= now - dt.timedelta(seconds=wait)


def _claim(image: Image, now: dt.datetime, *, status: str) -> bool:
    # Compare-and-set on (status, attempts): two sweeps running at once start one attempt, not two.
    return (
        Image.objects.filter(pk=image.pk, status=status, attempts=image.attempts).update(
            status=Status.PROCESSING, attempts=image.attempts + 1, attempt_started_at=now
        )
        == 1
    )


def _start_arrived(image: Image, now: dt.datetime, counts: dict[str, int]) -> None:
    """A pending upload whose ticket has ended."""
    head = head_original(image)
    if head is None:
        # Nothing arrived and nothing can now: there is nothing to delete either.
        with transaction.atomic():
            if Image.objects.filter(pk=image.pk, status=Status.PENDING).update(
                status=Status.FAILED, error=NEVER_ARRIVED
            ):
                signals.upload_failed.send(sender=Image, image=image, reason=NEVER_ARRIVED)
                counts["never_arrived"] += 1
    elif not uploader_may_add(image):
        counts["refused"] += image_fail(image=image, reason=NOT_CONTRIBUTOR)
    elif _claim(image, now, status=Status.PENDING):
        image_process_start(image=image, head=head, redeliver=True)
        counts["started"] += 1


def _restart_processing(image: Image, now: dt.datetime, counts: dict[str, int]) -> None:
    """A processing attempt that had its time without a result applied."""
    head = head_original(image)
    if head is None:
        counts["gave_up"] += image_fail(image=image, reason=GONE, from_statuses=(Status.PROCESSING,))
        return
    prefix = results.variants_prefix(image.original_key)
    stored = results.read_manifest(aws.client("s3"), settings.BOARDSITE_BUCKET, prefix)
    if stored is not None:
        # Processed and reported, but the report never landed (a result that went to the dead-letter queue, say).
        counts["recovered"] += image_result_apply(result=stored)
    elif image.attempts >= settings.PROCESSING_MAX_ATTEMPTS:
        counts["gave_up"] += image_fail(
            image=image, reason=gave_up(image.attempts), from_statuses=(Status.PROCESSING,), transient=True
        )
    elif _claim(image, now, status=Status.PROCESSING):
        image_process_start(image=image, head=head, redeliver=True)
        counts["restarted"] += 1


def image_sweep_stale(*, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = dict.fromkeys(("never_arrived", "started", "restarted", "recovered", "gave_up", "refused"), 0)
    expired = now - dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS + GRACE_SECONDS)
    stale_pending = Image.objects.filter(status=Status.PENDING, created_at__lt=expired)
    first_wait = dt.timedelta(seconds=settings.PROCESSING_RETRY_SECONDS)
    stale_processing = Image.objects.filter(
        Q(attempt_started_at__lt=now - first_wait) | Q(attempt_started_at__isnull=True), status=Status.PROCESSING
    )
    try:
        for image in stale_pending.select_related("board", "uploaded_by").order_by("created_at")[:BATCH]:
            _start_arrived(image, now, counts)
        for image in stale_processing.select_related("board", "uploaded_by").order_by("attempt_started_at")[:BATCH]:
            if retry_due(image, now):
                _restart_processing(image, now, counts)
    except Unavailable:
        log.warning("sweep_uploads: storage or the job queue did not answer; the next run goes on (%s)", counts)
    # Photos deleted in a batch whose undo window has passed (their page closed, or its process died): before the
    # cleanup, so their objects go in this same run.
    counts["batch_deleted"] = photos_deleting_finish(now=now)
    signals.sweeping.send(sender=Image, now=now, counts=counts)
    cleanup = storage_cleanup_run(now=now)
    counts["cleaned"] = cleanup["done"]
    # The quotas look back one day: older tickets are of no more use.
    UploadTicket.objects.filter(created_at__lt=now - dt.timedelta(days=2)).delete()
    UploadGrant.objects.filter(live_until__lt=now - dt.timedelta(days=2)).delete()
    # Past any event's life (a queue keeps a message 14 days at most): no late event can bring these photos back.
    DeletedImage.objects.filter(deleted_at__lt=now - dt.timedelta(days=15)).delete()
    PhotoBatch.objects.filter(created_at__lt=now - dt.timedelta(days=1)).delete()
    if any(counts.values()):
        log.info("sweep_uploads: %s", counts)
    return counts
