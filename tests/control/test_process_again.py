"""Photos that failed for a passing reason keep their original and can be processed again from the control room."""

from __future__ import annotations

import datetime as dt

from django.test import Client
from django.utils import timezone

from boardsite.control.models import Action
from boardsite.images.cleanup import storage_sweep_orphans
from boardsite.images.models import Image
from boardsite.images.sweep import image_sweep_stale
from devstack import runner
from offload import aws, registry
from tests.factories import make_user
from tests.helpers import post_to_s3, ticket


def stuck_photo(settings, people, board, jpeg) -> Image:
    """A photo whose processing never finished, past its last attempt."""
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "lambda", "apply_results": "lambda"}
    uploader = Client()
    uploader.force_login(people["contributor"])
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    assert uploader.post(body["image"]["complete_url"]).json()["status"] == "processing"
    Image.objects.filter(pk=body["image"]["id"]).update(
        attempts=settings.PROCESSING_MAX_ATTEMPTS, attempt_started_at=timezone.now() - dt.timedelta(days=1)
    )
    return Image.objects.get(pk=body["image"]["id"])


def exists(key: str) -> bool:
    return key in aws.list_keys(aws.config.load().bucket, key)


def test_a_photo_that_never_finished_keeps_its_original_and_is_processed_again(
    settings, people, board, jpeg, local_aws, django_capture_on_commit_callbacks
):
    image = stuck_photo(settings, people, board, jpeg)
    with django_capture_on_commit_callbacks(execute=True):
        assert image_sweep_stale()["gave_up"] == 1
    image.refresh_from_db()
    assert image.status == "failed"
    assert image.retryable_until > timezone.now() + dt.timedelta(days=6)
    assert exists(image.original_key), "kept for a retry"
    # The orphan sweep leaves it while the window lasts (it deletes what no live row owns, a day old).
    storage_sweep_orphans(now=timezone.now() + dt.timedelta(days=2))
    assert exists(image.original_key)

    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    page = staff.get("/control/dead-letters/").content.decode()
    assert image.filename in page
    assert "Processing did not finish after" in page
    r = staff.post(f"/control/photos/{image.pk}/again/", follow=True)
    assert f"{image.filename}: processing." in r.content.decode()
    # Started where it was placed (Lambda: its S3 event delivered again); the local runners play Lambda here.
    # (S3's own event of the upload is on the queue too: nothing ran it then; a duplicate changes nothing.)
    assert runner.poll_once(registry.get("process_image"), wait_seconds=1) >= 1
    while runner.poll_once(registry.get("apply_results"), wait_seconds=1):
        pass
    image.refresh_from_db()
    assert (image.status, image.error, image.retryable_until) == ("ready", "", None)
    action = Action.objects.get()
    assert (action.action, action.job, action.by) == ("process_again", "process_image", "ada")


def test_after_its_window_the_original_goes_and_it_cannot_be_retried(
    settings, people, board, jpeg, local_aws, django_capture_on_commit_callbacks
):
    image = stuck_photo(settings, people, board, jpeg)
    with django_capture_on_commit_callbacks(execute=True):
        image_sweep_stale()
    Image.objects.filter(pk=image.pk).update(retryable_until=timezone.now() - dt.timedelta(seconds=1))
    storage_sweep_orphans(now=timezone.now() + dt.timedelta(days=2))
    assert not exists(image.original_key)
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    r = staff.post(f"/control/photos/{image.pk}/again/", follow=True)
    assert "within its retry window" in r.content.decode()
    assert Image.objects.get(pk=image.pk).status == "failed"


def test_a_refused_file_is_not_kept(settings, people, board, local_aws, django_capture_on_commit_callbacks):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    uploader = Client()
    uploader.force_login(people["contributor"])
    data = b"this is not an image at all" * 10
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    with django_capture_on_commit_callbacks(execute=True):
        uploader.post(body["image"]["complete_url"])
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "failed"
    assert image.retryable_until is None
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    assert "within its retry window" in staff.post(f"/control/photos/{image.pk}/again/", follow=True).content.decode()
    assert "not a photo" in staff.post("/control/photos/not-a-uuid/again/", follow=True).content.decode()
