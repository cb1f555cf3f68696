"""Where the web side applies a processing result to the database: the ``apply_image_result`` job.

Results arrive as SQS messages (Lambda mode: a Zappa SQS event on the web app's function; locally ``manage.py
runjobs``) or straight from the site's own dispatch (inline and Celery modes). Applying is idempotent: the same
result delivered twice changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from boardsite.images.models import Image, Status, Variant
from offload.events import sqs_bodies
from offload.functions.process_image import RESULT_TYPE

log = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    applied = 0
    for body in sqs_bodies(event):
        applied += image_result_apply(result=json.loads(body))
    return {"applied": applied}


@transaction.atomic
def image_result_apply(*, result: dict[str, Any]) -> bool:
    """Apply one ``image.processed`` result; False when it changed nothing (unknown, stale or a duplicate)."""
    if result.get("type") != RESULT_TYPE:
        log.warning("ignoring a result of unknown type %r", result.get("type"))
        return False
    try:
        image_id = uuid.UUID(str(result["image_id"]))
    except (KeyError, ValueError):
        log.warning("ignoring a result without a valid image id: %r", result.get("image_id"))
        return False
    image = Image.objects.select_for_update().filter(pk=image_id).first()
    if image is None or image.original_key != result.get("key"):
        log.info("ignoring the result for %s: the image is gone", image_id)
        return False
    if image.status in (Status.READY, Status.FAILED) and image.source_etag == result.get("source_etag"):
        return False  # the same result again
    image.source_etag = result.get("source_etag") or ""
    image.processed_at = timezone.now()
    image.variants.all().delete()
    if result.get("status") == Status.READY:
        image.status = Status.READY
        image.error = ""
        image.width, image.height = result["width"], result["height"]
        Variant.objects.bulk_create(
            Variant(
                image=image,
                name=v["name"],
                key=v["key"],
                width=v["width"],
                height=v["height"],
                format=v["format"],
                bytes=v.get("bytes", 0),
            )
            for v in result["variants"]
        )
    else:
        image.status = Status.FAILED
        image.error = result.get("error") or "Processing failed."
    image.save()
    return True
