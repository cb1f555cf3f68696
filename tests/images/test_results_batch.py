"""The results handler answers SQS with a partial batch response: failed records are reported, the rest applied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from boardsite.core.results import BatchFailed, handler
from boardsite.images.models import Status
from offload import results
from offload.events import sqs_event
from tests.factories import failed_result, processing_image, ready_result

ROOT = Path(__file__).resolve().parents[2]


def test_a_batch_reports_exactly_its_bad_records_and_applies_the_rest(board, people):
    owner = people["owner"]
    good, db_error, failed = (processing_image(board, owner) for _ in range(3))
    event = sqs_event(
        [
            ("m-good", json.dumps(ready_result(good))),
            ("m-not-json", "{not json"),
            # A negative width breaks the variant table's CHECK constraint: a real database error, rolled back.
            ("m-db-error", json.dumps(ready_result(db_error, width=-5))),
            ("m-not-an-object", "[1, 2]"),
            ("m-failed", json.dumps(failed_result(failed))),
        ],
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:boardsite-image-results",
    )
    answer = handler(event, None)
    assert answer["batchItemFailures"] == [
        {"itemIdentifier": "m-not-json"},
        {"itemIdentifier": "m-db-error"},
        {"itemIdentifier": "m-not-an-object"},
    ]
    assert answer["applied"] == 2
    good.refresh_from_db()
    assert good.status == Status.READY
    assert good.variants.count() == 1
    failed.refresh_from_db()
    assert failed.status == Status.FAILED
    assert failed.error == "Not an image."
    db_error.refresh_from_db()
    assert db_error.status == Status.PROCESSING  # untouched: it comes back
    assert db_error.variants.count() == 0


def test_a_batch_that_all_went_well_reports_no_failures(board, people):
    image = processing_image(board, people["owner"])
    answer = handler(sqs_event([("m1", json.dumps(ready_result(image)))]), None)
    assert answer == {"applied": 1, "batchItemFailures": []}


def test_a_batch_where_every_record_failed_raises(db):
    # One message (inline, Celery, the local runner) that failed must look failed to its caller, not done.
    with pytest.raises(BatchFailed, match="all 2 result"):
        handler(sqs_event([("m1", "nope"), ("m2", "5")]), None)


def test_duplicates_and_unknown_images_are_not_failures(board, people):
    image = processing_image(board, people["owner"])
    message = json.dumps(ready_result(image))
    unknown = json.dumps({"type": results.RESULT_TYPE, "image_id": str(uuid.uuid4()), "key": "originals/1/x.jpg"})
    answer = handler(sqs_event([("a", message), ("b", message), ("c", unknown)]), None)
    assert answer == {"applied": 1, "batchItemFailures": []}


def test_the_key_helpers():
    key = "originals/7/0b4c2d0e-1111-4111-8111-111111111111.jpg"
    assert results.parse_key(key) == ("7", "0b4c2d0e-1111-4111-8111-111111111111")
    assert results.variants_prefix(key) == "variants/7/0b4c2d0e-1111-4111-8111-111111111111/"
    with pytest.raises(ValueError, match="not an original"):
        results.parse_key("variants/7/x.jpg")


def test_the_web_side_result_jobs_import_no_pillow():
    code = (
        "import sys, django; django.setup()\n"
        "import boardsite.images.results, boardsite.images.sweep, boardsite.images.cleanup\n"
        "loaded = [m for m in ('PIL', 'pillow_heif', 'offload.imaging', 'offload.functions.process_image')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "boardsite.settings",
        "PATH": "/usr/bin:/bin",
        "BOARDSITE_LOCAL_DIR": os.environ["BOARDSITE_LOCAL_DIR"],
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
