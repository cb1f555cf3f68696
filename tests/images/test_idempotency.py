"""At-least-once delivery: a duplicate S3 event makes one set of variants and applies one result."""

from __future__ import annotations

import json

from django.test import Client

from boardsite.core.results import handler as apply_handler
from boardsite.images.models import Image
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
        [*(prefix + n + e for n in ("thumb", "medium", "large") for e in (".webp", ".jpg")), prefix + "result.json"]
    )

    # The same result delivered twice (say, the report went out but the manifest write did not).
    message = sqs_event([("m1", json.dumps(reported[0])), ("m2", json.dumps(reported[0]))])
    assert apply_handler(message) == {"applied": 1, "batchItemFailures": []}
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "ready"
    assert image.variants.count() == 6


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


def test_bytes_sent_again_after_processing_do_not_replace_the_variants(people, board, s3, jpeg, settings):
    c = Client()
    c.force_login(people["contributor"])
    body, event = send_original(c, board.pk, jpeg(size=(1200, 800)), s3, settings.BOARDSITE_BUCKET)
    reported = []
    process_image.handler(event, None, report=reported.append)
    key = body["upload"]["fields"]["key"]
    large = process_image.variants_prefix(key) + "large.jpg"
    before = s3.get_object(Bucket=settings.BOARDSITE_BUCKET, Key=large)["Body"].read()
    # The same ticket, other bytes (possible while it lasts; moto does not even check the size).
    other = jpeg(size=(1000, 1000), orientation=1)
    from tests.helpers import post_to_s3

    post_to_s3(body["upload"], other)
    etag = s3.head_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)["ETag"]
    again = s3_object_created_event(bucket=settings.BOARDSITE_BUCKET, key=key, size=len(other), etag=etag)
    process_image.handler(again, None, report=reported.append)
    assert len(reported) == 1
    assert s3.get_object(Bucket=settings.BOARDSITE_BUCKET, Key=large)["Body"].read() == before


def test_an_image_deleted_while_processing_leaves_no_objects(people, board, s3, jpeg, settings):
    c = Client()
    c.force_login(people["contributor"])
    body, event = send_original(c, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    key = body["upload"]["fields"]["key"]

    def deleted_meanwhile(result):
        s3.delete_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)

    process_image.handler(event, None, report=deleted_meanwhile)
    prefix = process_image.variants_prefix(key)
    assert s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=prefix)["KeyCount"] == 0
