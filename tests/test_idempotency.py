"""At-least-once delivery: a duplicate S3 event makes one set of variants and applies one result."""

from __future__ import annotations

import json

from django.test import Client

from boardsite.images.models import Image
from boardsite.images.results import handler as apply_handler
from boardsite.images.results import image_result_apply
from offload.events import s3_object_created_event, sqs_event
from offload.functions import process_image
from tests.helpers import send_original


def test_duplicate_s3_event(people, board, s3, jpeg, settings):
    c = Client()
    c.force_login(people["contributor"])
    body, event = send_original(c, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    key = body["upload"]["fields"]["key"]
    reported = []
    process_image.handler(event, None, report=reported.append)
    process_image.handler(event, None, report=reported.append)  # the same event again
    assert len(reported) == 1
    prefix = process_image.variants_prefix(key)
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=prefix)["Contents"]]
    assert sorted(stored) == sorted(
        [*(prefix + n + ".jpg" for n in ("thumb", "medium", "large")), prefix + "result.json"]
    )

    # The same result delivered twice (say, the report went out but the manifest write did not).
    message = sqs_event([("m1", json.dumps(reported[0])), ("m2", json.dumps(reported[0]))])
    assert apply_handler(message) == {"applied": 1}
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "ready"
    assert image.variants.count() == 3


def test_results_for_deleted_or_unknown_images_change_nothing(db):
    assert image_result_apply(result={"type": "image.processed", "image_id": "not-a-uuid"}) is False
    assert image_result_apply(result={"type": "something.else"}) is False
    assert (
        image_result_apply(
            result={"type": "image.processed", "image_id": "7d7b5f1c-0000-4000-8000-000000000000", "key": "k"}
        )
        is False
    )


def test_events_outside_originals_and_test_events_are_ignored(local_aws):
    reported = []
    assert process_image.handler({"Event": "s3:TestEvent", "Service": "Amazon S3"}, None, report=reported.append) == {
        "results": []
    }
    event = s3_object_created_event(bucket="boardsite-media", key="variants/1/x/large.jpg", size=1, etag="e")
    assert process_image.handler(event, None, report=reported.append) == {"results": []}
    assert reported == []
