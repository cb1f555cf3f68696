"""Storage that cleans itself: every path that makes objects garbage deletes them from the local S3 (really gone),
deletions that fail while S3 is down are retried until done, and the orphan sweep catches the rest."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.boards.models import Membership
from boardsite.images.cleanup import storage_cleanup_run, storage_sweep_orphans
from boardsite.images.models import Image, StorageCleanup, SweepCursor
from boardsite.images.results import image_result_apply
from boardsite.images.services import NOT_CONTRIBUTOR
from boardsite.images.sweep import image_sweep_stale
from devstack import provision
from offload import aws as offload_aws
from offload import config
from offload.functions import process_image
from tests.factories import make_image
from tests.helpers import post_to_s3, send_original, ticket, upload

BUCKET = "boardsite-media"


@pytest.fixture
def uploader(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run what is scheduled after a commit (tests run inside a transaction that never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def keys(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def objects_of(s3, original_key: str) -> list[str]:
    return keys(s3, original_key) + keys(s3, process_image.variants_prefix(original_key))


def test_a_failed_upload_leaves_nothing(uploader, board, s3, settings, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    with commits():
        body = upload(uploader, board.pk, b"%PDF-1.7 not a photo\n" * 100, name="notes.jpg")
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "failed"
    assert "not an image" in image.error, "the reason is recorded"
    assert objects_of(s3, image.original_key) == []


def test_an_abandoned_upload_is_deleted_whenever_its_bytes_arrive(uploader, board, s3, jpeg, commits):
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    with commits():
        uploader.post(body["image"]["abandon_url"], {"reason": "network"}, content_type="application/json")
    post_to_s3(body["upload"], data)  # the bytes land after all, while the ticket still allows it
    key = body["upload"]["fields"]["key"]
    assert keys(s3, key) == [key]
    assert storage_cleanup_run()["done"] == 0, "not before the ticket has ended"
    ended = timezone.now() + dt.timedelta(seconds=600 + 121)
    assert storage_cleanup_run(now=ended)["done"] == 1
    assert objects_of(s3, key) == []
    assert not StorageCleanup.objects.exists()


def test_an_abandon_while_the_function_runs_leaves_nothing(uploader, board, s3, jpeg, settings, commits):
    # lambda mode: S3's event started the function; meanwhile the browser gave up and abandoned the upload.
    body, event = send_original(uploader, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    reported = []
    process_image.handler(event, None, report=reported.append)
    key = body["upload"]["fields"]["key"]
    assert len(objects_of(s3, key)) == 8  # the original, 3 sizes x 2 formats, result.json
    with commits():
        uploader.post(body["image"]["abandon_url"], {"reason": "tab closed"}, content_type="application/json")
        assert image_result_apply(result=reported[0]) is False
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "failed", "a late ready result never turns an abandoned photo ready"
    assert not image.variants.exists()
    assert objects_of(s3, key) == []


def test_a_late_result_for_a_deleted_photo_removes_what_it_wrote(uploader, board, s3, jpeg, settings, commits):
    body, event = send_original(uploader, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    reported = []
    process_image.handler(event, None, report=reported.append)
    Image.objects.filter(pk=body["image"]["id"]).delete()
    with commits():
        assert image_result_apply(result=reported[0]) is False
    assert objects_of(s3, body["upload"]["fields"]["key"]) == []


def test_a_removed_contributor_s_photo_is_not_published(uploader, people, board, s3, jpeg, settings, commits):
    body, event = send_original(uploader, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    Membership.objects.filter(board=board, user=people["contributor"]).delete()  # removed while uploading
    reported = []
    process_image.handler(event, None, report=reported.append)
    with commits():
        assert image_result_apply(result=reported[0]) is True
    image = Image.objects.get(pk=body["image"]["id"])
    assert (image.status, image.error) == ("failed", NOT_CONTRIBUTOR)
    assert not image.variants.exists()
    assert objects_of(s3, image.original_key) == []


def test_a_removed_contributor_s_report_on_a_public_board_fails_at_once(uploader, people, board, s3, jpeg, commits):
    board.visibility = "public"
    board.save()
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    Membership.objects.filter(board=board, user=people["contributor"]).delete()
    with commits():
        r = uploader.post(body["image"]["complete_url"])
    assert (r.json()["status"], r.json()["error"]) == ("failed", NOT_CONTRIBUTOR)
    assert keys(s3, body["upload"]["fields"]["key"]) == []


def test_the_sweep_refuses_an_unreported_upload_of_a_removed_contributor(uploader, people, board, s3, jpeg, commits):
    data = jpeg()
    body = ticket(uploader, board.pk, data)
    post_to_s3(body["upload"], data)
    Membership.objects.filter(board=board, user=people["contributor"]).delete()
    with commits():
        counts = image_sweep_stale(now=timezone.now() + dt.timedelta(minutes=13))
    assert counts["refused"] == 1
    assert Image.objects.get(pk=body["image"]["id"]).error == NOT_CONTRIBUTOR
    assert keys(s3, body["upload"]["fields"]["key"]) == []


def test_a_delete_while_storage_is_down_is_retried_until_done(uploader, board, s3, jpeg, settings, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    body = upload(uploader, board.pk, jpeg())
    key = body["upload"]["fields"]["key"]
    assert len(objects_of(s3, key)) == 8
    owner = Client()
    owner.force_login(board.memberships.get(role="owner").user)
    endpoint = settings.AWS_ENDPOINT_URL
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there: storage is down
    try:
        with commits():
            r = owner.post(f"/images/{body['image']['id']}/delete/")
    finally:
        settings.AWS_ENDPOINT_URL = endpoint
    assert r.status_code == 302, "the person's delete succeeds"
    assert not Image.objects.filter(pk=body["image"]["id"]).exists()
    pending = StorageCleanup.objects.get()
    assert pending.attempts == 1
    assert "Could not connect" in pending.last_error
    assert len(objects_of(s3, key)) == 8, "still there: storage was down"
    assert image_sweep_stale()["cleaned"] == 0, "retried after a back-off, not at once"
    assert image_sweep_stale(now=timezone.now() + dt.timedelta(minutes=2))["cleaned"] == 1
    assert objects_of(s3, key) == []
    assert not StorageCleanup.objects.exists()


def test_the_orphan_sweep_removes_objects_no_live_photo_owns(uploader, board, s3, jpeg, settings, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    live = upload(uploader, board.pk, jpeg())["upload"]["fields"]["key"]
    failed = make_image(
        board,
        None,
        status="failed",
        original_key=f"originals/{board.pk}/22222222-2222-4222-8222-222222222222.jpg",
        filename="f.jpg",
        declared_size=3,
        size=None,
    )
    stray = [
        f"originals/{board.pk}/33333333-3333-4333-8333-333333333333.jpg",  # no row
        f"variants/{board.pk}/33333333-3333-4333-8333-333333333333/thumb.webp",
        f"variants/{board.pk}/{failed.pk}/thumb.webp",  # a failed row's leftovers
        failed.original_key,
        f"originals/{board.pk}/not-a-uuid.jpg",
    ]
    for key in stray:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"x")  # not ours to judge

    assert storage_sweep_orphans()["deleted"] == 0, "nothing is older than a day yet"
    tomorrow = timezone.now() + dt.timedelta(days=1, minutes=1)
    # A run out of time stops after a page and goes on from there the next time.
    first = storage_sweep_orphans(now=tomorrow, time_budget=0)
    assert SweepCursor.objects.get(name="orphans").value.startswith("originals/")
    second = storage_sweep_orphans(now=tomorrow)
    assert first["deleted"] + second["deleted"] == len(stray)
    assert SweepCursor.objects.get(name="orphans").value == ""
    remaining = set(keys(s3, ""))
    assert not remaining & set(stray)
    assert {live, "elsewhere/keep.txt"} <= remaining
    assert len(objects_of(s3, live)) == 8, "a live photo keeps every object"


def test_the_bucket_expires_unprocessed_originals_and_the_processor_confirms_them(uploader, board, s3, jpeg, settings):
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}
    expire = rules["expire-unprocessed-originals"]
    assert expire["Status"] == "Enabled"
    assert expire["Expiration"]["Days"] == 2
    assert expire["Filter"]["And"]["Prefix"] == "originals/"
    assert expire["Filter"]["And"]["Tags"] == [config.UNCONFIRMED_TAG]
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    provision.provision(origins=["http://127.0.0.1"])  # idempotent
    assert rules["expire-mail-markers"]["Filter"]["Prefix"] == "mail-sent/"  # send_email's idempotency markers
    assert rules["expire-shadow-outputs"]["Filter"]["Prefix"] == "shadow/"  # shadow runs' scratch outputs
    assert rules["expire-shadow-outputs"]["Expiration"]["Days"] == 2
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]) == 4

    # moto ignores the form's tagging field (real S3 applies it), so tag the original as the upload form would.
    body, event = send_original(uploader, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    key = body["upload"]["fields"]["key"]
    tag = config.UNCONFIRMED_TAG
    s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [tag]})
    process_image.handler(event, None, report=lambda result: None)
    assert offload_aws.client("s3").get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"] == []


def test_an_original_deleted_while_the_function_runs_leaves_no_variants(
    uploader, board, s3, jpeg, settings, monkeypatch
):
    body, event = send_original(uploader, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    key = body["upload"]["fields"]["key"]
    from offload import imaging  # process_image loads it when it decodes, so patch the module itself

    real = imaging.make_variants

    def deleted_meanwhile(data, options):
        s3.delete_object(Bucket=BUCKET, Key=key)  # the photo is deleted (or its upload refused) mid-run
        return real(data, options)

    monkeypatch.setattr(imaging, "make_variants", deleted_meanwhile)
    reported = []
    process_image.handler(event, None, report=reported.append)
    assert len(reported) == 1, "reported, so the site deletes what was written"
    assert objects_of(s3, key) == []


def test_a_person_s_delete_does_not_wait_for_a_hanging_storage(uploader, board, s3, jpeg, settings, commits):
    import socket
    import time

    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    body = upload(uploader, board.pk, jpeg())
    owner = Client()
    owner.force_login(board.memberships.get(role="owner").user)
    with socket.socket() as hanging:  # accepts connections, never answers: S3 stuck, not down
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)
        endpoint = settings.AWS_ENDPOINT_URL
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        started = time.monotonic()
        try:
            with commits():
                r = owner.post(f"/images/{body['image']['id']}/delete/")
        finally:
            settings.AWS_ENDPOINT_URL = endpoint
        took = time.monotonic() - started
    assert r.status_code == 302
    # One short attempt (5 s read timeout), not botocore's four patient ones (about 150 s): the sweep retries.
    assert took < 25, took
    assert "timeout" in StorageCleanup.objects.get().last_error.lower()
