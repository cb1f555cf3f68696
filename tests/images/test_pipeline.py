"""The upload -> process -> apply pipeline in each mode, against moto's server over real HTTP.

inline: the site runs the handler in the request; celery: a real Celery worker process runs it; lambda: S3's own
event goes to SQS and the local function runner (a separate process that never loads Django) runs it.
"""

from __future__ import annotations

import io
import os
import sys

import pytest
from django.test import Client
from PIL import Image as PILImage

from boardsite.celery import app as celery_app
from boardsite.core.jobs import celery_worker_command
from boardsite.core.models import JobRun
from boardsite.images.models import Image
from devstack import runner
from offload import registry
from tests.helpers import (
    assert_no_metadata,
    database_url,
    dominant_is,
    settled,
    start_process,
    stop_process,
    upload,
    wait_for,
)


def check_ready_image(image: Image, s3, bucket: str) -> None:
    assert image.status == "ready", image.error
    assert (image.width, image.height) == (800, 1200), "orientation 6: width and height swapped"
    rows = list(image.variants.all())
    names = ("thumb", "medium", "large")
    assert {(v.name, v.format) for v in rows} == {(n, f) for n in names for f in ("webp", "jpeg")}
    variants = {(v.name, v.format): v for v in rows}
    assert (variants["large", "webp"].width, variants["large", "webp"].height) == (800, 1200), "never upscaled"
    assert (variants["medium", "jpeg"].width, variants["medium", "jpeg"].height) == (640, 960)
    assert (variants["thumb", "webp"].width, variants["thumb", "webp"].height) == (320, 320), "square thumbnail"
    assert dominant_is(image.dominant_color, (220, 30, 30)) or dominant_is(image.dominant_color, (30, 30, 220))
    assert image.placeholder.startswith("data:image/webp;base64,")
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="variants/")["Contents"]}
    for v in rows:
        assert v.key in listed
        obj = s3.get_object(Bucket=bucket, Key=v.key)
        assert obj["ContentType"] == {"webp": "image/webp", "jpeg": "image/jpeg"}[v.format]
        assert obj.get("ServerSideEncryption") == "AES256"
        data = obj["Body"].read()
        assert v.bytes == len(data)
        assert_no_metadata(data)
        with PILImage.open(io.BytesIO(data)) as im:
            assert im.format == v.format.upper()
            assert im.size == (v.width, v.height)
            if v.name != "thumb":
                assert im.height > im.width, "the variant is upright"
            rgb = im.convert("RGB")
            top, bottom = (
                rgb.getpixel((im.width // 2, im.height // 4)),
                rgb.getpixel((im.width // 2, 3 * im.height // 4)),
            )
            assert top[0] > 150 > top[2], f"stored left (red) must be displayed on top, got {top}"
            assert bottom[2] > 150 > bottom[0], f"stored right (blue) must be at the bottom, got {bottom}"


@pytest.fixture
def uploader(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


def test_inline_mode(settings, uploader, board, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    body = upload(uploader, board.pk, jpeg())
    image = Image.objects.get(pk=body["image"]["id"])
    check_ready_image(image, s3, settings.BOARDSITE_BUCKET)
    status = uploader.get(body["image"]["status_url"]).json()
    assert status["status"] == "ready"
    assert status["error"] is None
    assert set(status["variants"]) == {"thumb", "medium", "large"}
    assert status["variants"]["thumb"]["url"].startswith(settings.AWS_ENDPOINT_URL)
    assert "X-Amz-Signature" in status["variants"]["thumb"]["url"]  # presigned, short-lived
    assert set(status["variants"]["thumb"]["formats"]) == {"webp", "jpeg"}
    assert ".jpg?" in status["variants"]["thumb"]["url"], "the plain URL is the fallback every browser reads"
    assert status["placeholder"] == image.placeholder
    assert status["dominant_color"] == image.dominant_color


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_mode_with_a_real_worker(settings, uploader, board, s3, jpeg, tmp_path):
    modes = {"process_image": "celery", "apply_results": "inline"}
    settings.OFFLOAD_MODES = modes
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OFFLOAD_MODES": ",".join(f"{k}={v}" for k, v in modes.items()),
    }
    log = tmp_path / "worker.log"
    celery_app.control.purge()  # leftovers of an earlier run
    worker = start_process(celery_worker_command(sys.executable), env, log)
    output = ""
    try:
        wait_for(lambda: " ready." in log.read_text(), timeout=60)
        body = upload(uploader, board.pk, jpeg())
        assert uploader.get(body["image"]["status_url"]).json()["status"] == "processing"
        image = wait_for(lambda: settled(body["image"]["id"]), timeout=60)
    finally:
        output = stop_process(worker, log)
        print(output[-5000:])  # shown by pytest when the test fails
    assert "boardsite.run_job" in output
    assert "succeeded" in output
    check_ready_image(image, s3, settings.BOARDSITE_BUCKET)
    # The worker measured and recorded its run (boardsite/core/runs.py); apply_results ran inline, here.
    assert JobRun.objects.filter(job="process_image", runtime="celery", outcome="ok").count() == 1
    assert JobRun.objects.filter(job="apply_results", runtime="inline").count() == 1


@pytest.mark.worker
def test_lambda_mode_through_the_local_runner(settings, uploader, board, s3, jpeg, tmp_path):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    log = tmp_path / "runner.log"
    proc = start_process([sys.executable, "-m", "devstack.runner", "process_image"], dict(os.environ), log)
    apply_job = registry.get("apply_results")
    try:
        body = upload(uploader, board.pk, jpeg())
        # The web side's half of Lambda mode: the results queue, consumed as `manage.py runjobs` does.
        image = wait_for(
            lambda: settled(body["image"]["id"]), timeout=60, tick=lambda: runner.poll_once(apply_job, wait_seconds=0)
        )
    finally:
        output = stop_process(proc, log)
        print(output[-5000:])
    assert "process_image <- boardsite-uploads" in output, output
    check_ready_image(image, s3, settings.BOARDSITE_BUCKET)
    # The runner measured its run as a Lambda run and sent the record where results go; the results job kept it.
    run = wait_for(
        lambda: JobRun.objects.filter(job="process_image", runtime="lambda").exclude(unit="").first(),
        timeout=30,
        tick=lambda: runner.poll_once(apply_job, wait_seconds=0),
    )
    assert (run.outcome, run.memory_mb) == ("ok", registry.get("process_image").memory)
    # One cold start: the runner process's first run (S3's test event, or the photo), warm after it.
    assert JobRun.objects.filter(job="process_image", runtime="lambda", cold=True).count() == 1
    assert run.queue_wait_ms is not None
    assert run.unit == registry.unplaced(image.original_key)
    # Messages were deleted after success: nothing left to redeliver.
    assert runner.poll_once(registry.get("process_image"), handler=lambda *a: pytest.fail("redelivered")) == 0
