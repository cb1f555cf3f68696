"""Where the web side applies a processing result to the database: the ``apply_image_result`` job.

Results arrive as SQS messages (Lambda mode: a Zappa SQS event on the web app's function; locally ``manage.py
runjobs``) or straight from the site's own dispatch (inline and Celery modes). Applying is idempotent: the same
result delivered twice changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from boardsite.images.models import Image, Status, Variant
from boardsite.images.services import image_objects_delete_quietly
from offload.events import sqs_bodies
from offload.functions.process_image import RESULT_TYPE

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"data:image/(webp|jpeg|png);base64,[A-Za-z0-9+/]+={0,2}")
COLOUR = re.compile(r"#[0-9a-f]{6}")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    applied = 0
    for body in sqs_bodies(event):
        try:
            result = json.loads(body)
        except json.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            log.error("dropping a result that is not a JSON object: %.200r", body)  # redelivery cannot fix it
            continue
        applied += image_result_apply(result=result)
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
        log.info("the image %s is gone: deleting what its processing wrote", image_id)
        if isinstance(result.get("key"), str) and result["key"].startswith(f"originals/{result.get('board_id')}/"):
            transaction.on_commit(lambda: image_objects_delete_quietly(original_keys=[result["key"]]))
        return False
    if image.status in (Status.READY, Status.FAILED):
        return False  # settled: the same result again, or a late one for bytes sent again with the same ticket
    if result.get("status") == Status.READY and not _well_formed(result):
        log.error("ignoring a malformed ready result for %s", image_id)
        return False
    image.source_etag = result.get("source_etag") or ""
    image.processed_at = timezone.now()
    image.variants.all().delete()
    if result.get("status") == Status.READY:
        image.status = Status.READY
        image.error = ""
        image.width, image.height = result["width"], result["height"]
        image.placeholder = _placeholder(result.get("placeholder"))
        image.dominant_color = _colour(result.get("dominant_color"))
        Variant.objects.bulk_create(
            Variant(
                image=image,
                name=v["name"],
                key=v["key"],
                width=v["width"],
                height=v["height"],
                format=v["format"],
                content_type=v.get("content_type") or "image/jpeg",
                bytes=v.get("bytes", 0),
            )
            for v in result["variants"]
        )
    else:
        image.status = Status.FAILED
        image.error = result.get("error") or "Processing failed."
    image.save()
    return True


def _placeholder(value: Any) -> str:
    # Rendered into a style attribute: accept only what the processor makes (a base64 WebP), nothing that could
    # close the attribute.
    if isinstance(value, str) and len(value) < 4000 and PLACEHOLDER.fullmatch(value):
        return value
    return ""


def _colour(value: Any) -> str:
    return value if isinstance(value, str) and COLOUR.fullmatch(value) else ""


def _well_formed(result: dict[str, Any]) -> bool:
    keys = ("name", "key", "width", "height", "format")
    return (
        isinstance(result.get("width"), int)
        and isinstance(result.get("height"), int)
        and isinstance(result.get("variants"), list)
        and all(isinstance(v, dict) and all(k in v for k in keys) for v in result["variants"])
    )
