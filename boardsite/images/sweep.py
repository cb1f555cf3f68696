"""The ``sweep_uploads`` job: no image stays pending or processing forever.

- pending past its ticket's expiry: the bytes never arrived -> failed; they did arrive (the browser never reported
  it, or S3's event was lost) -> processing starts, in every mode;
- still not settled long after its ticket was issued (a lost event, a function that kept failing) -> failed.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from boardsite.core.errors import Unavailable
from boardsite.images.models import Image, Status
from boardsite.images.services import head_original, image_process_start

log = logging.getLogger(__name__)

GRACE_SECONDS = 120
NEVER_ARRIVED = "The upload never arrived before its upload link expired. Please try again."
GAVE_UP = "Processing did not finish. Please upload the photo again."


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    return image_sweep_stale()


def image_sweep_stale(*, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"never_arrived": 0, "started": 0, "gave_up": 0}
    give_up = now - dt.timedelta(seconds=settings.PROCESSING_GIVE_UP_SECONDS)
    counts["gave_up"] = Image.objects.filter(
        status__in=[Status.PENDING, Status.PROCESSING], created_at__lt=give_up
    ).update(status=Status.FAILED, error=GAVE_UP)

    expired = now - dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS + GRACE_SECONDS)
    for image in Image.objects.filter(status=Status.PENDING, created_at__lt=expired):
        try:
            head = head_original(image)
            if head is None:
                counts["never_arrived"] += Image.objects.filter(pk=image.pk, status=Status.PENDING).update(
                    status=Status.FAILED, error=NEVER_ARRIVED
                )
            elif Image.objects.filter(pk=image.pk, status=Status.PENDING).update(status=Status.PROCESSING) == 1:
                image_process_start(image=image, head=head, redeliver=True)
                counts["started"] += 1
        except Unavailable:
            log.warning("sweep: storage or broker unavailable for %s; next run tries again", image.pk)
    if any(counts.values()):
        log.info("sweep_uploads: %s", counts)
    return counts
