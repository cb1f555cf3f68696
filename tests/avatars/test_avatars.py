"""Profile pictures through the photos' pipeline, in each mode, against moto's server over real HTTP: square,
upright, metadata-free variants; hostile files refused with the processor's reasons (the old picture kept);
replace and remove delete what was stored; one upload in flight; the size cap; initials; query counts."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import sys
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PILImage

from boardsite.accounts import avatars as faces
from boardsite.accounts.models import Avatar
from boardsite.avatars import results
from boardsite.avatars import views as avatar_views
from boardsite.boards.models import Role
from boardsite.celery import app as celery_app
from boardsite.core.jobs import celery_worker_command, s3_object_created_event
from boardsite.images import cleanup
from boardsite.images.sweep import image_sweep_stale
from devstack import runner
from offload import aws as offload_aws
from offload import registry
from offload.results import parse_avatar_key, parse_key
from tests.factories import add_member, make_user
from tests.helpers import (
    assert_no_metadata,
    avatar_ticket,
    avatar_upload,
    database_url,
    start_process,
    stop_process,
    wait_for,
)

SIZES = {"s64": 64, "s128": 128, "s256": 256}
PDF = b"%PDF-1.7 this is not a photo\n" * 200


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run what the code defers to after its commit (the deletions), as a real request's commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def me(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


def avatar_of(user) -> Avatar:
    return Avatar.objects.get(user=user)


def settled(user) -> Avatar | None:
    avatar = Avatar.objects.filter(user=user).first()
    return avatar if avatar is not None and avatar.pending_id is None else None


def keys(s3, bucket: str, prefix: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def stored(s3, bucket: str, user, *, manifests: bool = True) -> set[str]:
    """Every object of ``user``'s avatars (``manifests``: with the processor's result.json files, which a refused
    upload's processing writes after its result was applied; the orphan sweep takes those)."""
    every = keys(s3, bucket, "originals/") | keys(s3, bucket, "variants/")
    return {k for k in every if f"/avatars/{user.pk}/" in k and (manifests or not k.endswith("/result.json"))}


def check_square_avatar(avatar: Avatar, s3, bucket: str) -> None:
    assert avatar.error == "", avatar.error
    assert parse_avatar_key(avatar.original_key) is not None
    assert {(v["name"], v["format"]) for v in avatar.variants} == {(n, f) for n in SIZES for f in ("webp", "jpeg")}
    for v in avatar.variants:
        side = SIZES[v["name"]]
        assert (v["width"], v["height"]) == (side, side), "a centred square of each size"
        assert v["key"].startswith(f"variants/avatars/{avatar.user_id}/")
        data = s3.get_object(Bucket=bucket, Key=v["key"])["Body"].read()
        assert_no_metadata(data)  # no EXIF, so no GPS
        with PILImage.open(io.BytesIO(data)) as im:
            assert im.size == (side, side)
            rgb = im.convert("RGB")
            top, bottom = rgb.getpixel((side // 2, side // 4)), rgb.getpixel((side // 2, 3 * side // 4))
        # Stored left half red, right half blue, EXIF orientation 6: upright, red is on top.
        assert top[0] > 150 > top[2], f"EXIF rotation applied: red on top, got {top}"
        assert bottom[2] > 150 > bottom[0], f"blue at the bottom, got {bottom}"


def test_inline_mode_square_upright_gps_free_and_shown(settings, me, people, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    data = jpeg()
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.getexif().get_ifd(0x8825), "the upload carries GPS"
    avatar_upload(me, data)
    avatar = avatar_of(people["contributor"])
    assert avatar.pending_id is None
    check_square_avatar(avatar, s3, settings.BOARDSITE_BUCKET)
    page = me.get("/profile/").content.decode()
    assert '<img class="avatar avatar-128"' in page
    assert "X-Amz-Signature" in page, "presigned: the bucket is private"
    assert me.get("/api/avatar").json()["state"] == "idle"


def test_a_hostile_file_is_refused_with_its_reason_and_the_old_picture_stays(settings, me, people, s3, jpeg, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    bucket = settings.BOARDSITE_BUCKET
    avatar_upload(me, jpeg())
    before = avatar_of(people["contributor"])
    with commits():
        body = avatar_upload(me, PDF, name="notes.jpg")
    after = avatar_of(people["contributor"])
    assert "not an image" in after.error
    assert (after.original_key, after.variants) == (before.original_key, before.variants), "the old picture stays"
    refused = f"/avatars/{people['contributor'].pk}/{body['avatar']['id']}"
    left = stored(s3, bucket, people["contributor"], manifests=False)
    assert not any(refused in k for k in left), "the refused file is deleted"
    assert all(k in keys(s3, bucket, "variants/") for k in (v["key"] for v in before.variants))
    page = me.get("/profile/").content.decode()
    assert "data-avatar-error" in page
    assert "not an image" in page
    assert '<img class="avatar avatar-128"' in page


def test_replace_and_remove_delete_the_old_objects(settings, me, people, s3, jpeg, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    bucket, user = settings.BOARDSITE_BUCKET, people["contributor"]
    avatar_upload(me, jpeg())
    first = stored(s3, bucket, user)
    assert len(first) == 1 + 6 + 1  # the original, 3 sizes x 2 formats, result.json
    with commits():
        avatar_upload(me, jpeg(orientation=1))
    second = stored(s3, bucket, user)
    assert len(second) == 8
    assert not (first & second), "replacing deleted every object of the first picture"
    # The original, with the camera's metadata, goes once the processor is surely done: the sweep's next run.
    assert avatar_of(user).original_key in second
    cleanup.storage_cleanup_run(now=timezone.now() + dt.timedelta(seconds=results.ORIGINAL_KEPT_SECONDS + 1))
    kept = stored(s3, bucket, user)
    assert kept == second - {avatar_of(user).original_key}
    assert all(v["key"] in kept for v in avatar_of(user).variants)
    with commits():
        r = me.post("/profile/avatar/remove/")
    assert r.status_code == 302
    assert stored(s3, bucket, user) == set()
    avatar = avatar_of(user)
    assert (avatar.original_key, avatar.variants) == ("", [])
    assert 'class="avatar avatar-128 initials' in me.get("/profile/").content.decode()


def test_one_upload_in_flight_and_the_size_cap(settings, me, people, local_aws, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    first = avatar_ticket(me, jpeg())
    r = me.post(
        "/api/avatar", {"filename": "b.jpg", "content_type": "image/jpeg", "size": 10}, content_type="application/json"
    )
    assert r.status_code == 429
    assert "still being uploaded" in r.json()["error"]
    assert r["Retry-After"]
    # The ticket abandoned: the place is free again.
    assert me.post(first["avatar"]["abandon_url"]).status_code == 200
    assert avatar_ticket(me, jpeg())["avatar"]["id"] != first["avatar"]["id"]
    settings.AVATAR_MAX_BYTES = 1000
    assert me.post(f"/api/avatar/{uuid.uuid4()}/abandon").status_code == 404
    assert me.post("/api/avatar/garbage/complete").status_code == 404
    avatar_of(people["contributor"]).__class__.objects.update(pending_id=None, pending_key="", pending_state="")
    r = me.post(
        "/api/avatar",
        {"filename": "b.jpg", "content_type": "image/jpeg", "size": 1001},
        content_type="application/json",
    )
    assert r.status_code == 413
    assert "limit is 1,000 bytes" in r.json()["error"]


RACER = """
import sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from boardsite.avatars.services import avatar_upload_start
from boardsite.core.errors import RateLimited
user = get_user_model().objects.get(pk=int(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
granted = refused = 0
for _ in range(5):
    try:
        avatar_upload_start(user=user, filename="a.jpg", content_type="image/jpeg", size=10)
        granted += 1
    except RateLimited:
        refused += 1
print(granted, refused)
"""


@pytest.mark.django_db(transaction=True)
def test_one_upload_in_flight_holds_across_two_processes(people, local_aws):
    import subprocess
    import time

    from tests.helpers import ROOT

    env = {**os.environ, "DATABASE_URL": database_url()}
    start_at = time.time() + 3  # both processes are set up by then and ask in the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(people["contributor"].pk), str(start_at)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-3000:]
        outcomes.append(tuple(int(n) for n in out.split()))
    assert sum(g for g, _ in outcomes) == 1, outcomes
    assert sum(r for _, r in outcomes) == 9
    assert Avatar.objects.filter(user=people["contributor"], pending_state="pending").count() == 1


def test_the_processor_keeps_its_own_size_cap(settings, me, people, s3, jpeg, monkeypatch):
    # moto does not enforce the form's policy: the processor checks the cap again on the stored bytes.
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    data = jpeg()
    monkeypatch.setenv("AVATAR_MAX_BYTES", str(len(data) - 1))
    avatar_upload(me, data)
    assert "more than the" in avatar_of(people["contributor"]).error


def test_without_script_the_form_posts_the_file_through_the_same_job(settings, me, people, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    upload = io.BytesIO(jpeg())
    upload.name = "me.jpg"
    r = me.post("/profile/avatar/", {"picture": upload})
    assert r.status_code == 302, r.content
    check_square_avatar(avatar_of(people["contributor"]), s3, settings.BOARDSITE_BUCKET)
    hostile = io.BytesIO(PDF)
    hostile.name = "notes.jpg"
    me.post("/profile/avatar/", {"picture": hostile})
    assert "not an image" in avatar_of(people["contributor"]).error


def test_without_script_a_body_too_large_is_refused_unread_and_csrf_still_holds(settings, people, s3, jpeg):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    settings.AVATAR_MAX_BYTES = 100_000
    c = Client(enforce_csrf_checks=True)
    c.force_login(people["contributor"])
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', c.get("/profile/").content.decode()).group(1)
    big = io.BytesIO(b"x" * (100_000 + avatar_views.FORM_OVERHEAD_BYTES + 1))
    big.name = "big.jpg"
    r = c.post("/profile/avatar/", {"picture": big, "csrfmiddlewaretoken": token}, follow=True)
    assert [str(m) for m in r.context["messages"]] == [
        "That file is larger than the 100,000 bytes a profile picture may have."
    ]
    assert not Avatar.objects.filter(user=people["contributor"], pending_id__isnull=False).exists()
    small = io.BytesIO(jpeg(size=(40, 40)))
    small.name = "me.jpg"
    assert c.post("/profile/avatar/", {"picture": small}).status_code == 403  # no token: the CSRF check still runs
    empty = io.BytesIO(b"")
    empty.name = "empty.jpg"
    r = c.post("/profile/avatar/", {"picture": empty, "csrfmiddlewaretoken": token}, follow=True)
    assert [str(m) for m in r.context["messages"]] == ["The submitted file is empty."]


def _lost_in_lambda_mode(settings, me, sqs, data: bytes) -> dict:
    """An avatar placed for Lambda whose S3 event is lost (its queue purged): reported, processing, never run."""
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    body = avatar_upload(me, data)
    sqs.purge_queue(QueueUrl=offload_aws.queue_url(registry.get("process_image").queue.resolved()))
    return body


def _aged(user, seconds: int) -> None:
    Avatar.objects.filter(user=user).update(pending_started_at=timezone.now() - dt.timedelta(seconds=seconds))


def test_the_sweep_starts_an_avatar_whose_event_was_lost_again(settings, me, people, s3, sqs, jpeg):
    user = people["contributor"]
    _lost_in_lambda_mode(settings, me, sqs, jpeg())
    assert avatar_of(user).pending_state == "processing"
    assert image_sweep_stale().get("avatars_restarted") is None, "not before its time"
    _aged(user, settings.PROCESSING_RETRY_SECONDS + 1)
    assert image_sweep_stale().get("avatars_restarted") == 1
    assert runner.poll_once(registry.get("process_image"), wait_seconds=1) == 1
    wait_for(lambda: settled(user), tick=lambda: runner.poll_once(registry.get("apply_results"), wait_seconds=0))
    check_square_avatar(avatar_of(user), s3, settings.BOARDSITE_BUCKET)


def test_the_sweep_applies_a_stored_result_whose_report_was_lost(settings, me, people, s3, sqs, jpeg):
    from offload.functions import process_image

    user = people["contributor"]
    _lost_in_lambda_mode(settings, me, sqs, jpeg())
    key = avatar_of(user).pending_key
    head = s3.head_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)
    event = s3_object_created_event(
        bucket=settings.BOARDSITE_BUCKET, key=key, size=head["ContentLength"], etag=head["ETag"]
    )
    assert process_image.handler(event, report=lambda result: None)["results"]  # ran; its report went nowhere
    _aged(user, settings.PROCESSING_RETRY_SECONDS + 1)
    assert image_sweep_stale().get("avatars_recovered") == 1
    check_square_avatar(avatar_of(user), s3, settings.BOARDSITE_BUCKET)


def test_the_sweep_ends_an_avatar_that_never_arrived_or_never_finished(settings, me, people, s3, sqs, jpeg, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    user = people["contributor"]
    avatar_ticket(me, jpeg())
    _aged(user, settings.UPLOAD_TICKET_SECONDS + 1000)
    assert image_sweep_stale().get("avatars_ended") == 1
    assert avatar_of(user).error.startswith("The picture never arrived")
    assert avatar_of(user).pending_id is None, "the place is free again"
    page = me.get("/profile/").content.decode()
    assert "The picture never arrived" in page
    assert "previous picture is kept" not in page, "there is none"

    _lost_in_lambda_mode(settings, me, sqs, jpeg())
    Avatar.objects.filter(user=user).update(pending_attempts=settings.PROCESSING_MAX_ATTEMPTS)
    _aged(user, 10**6)
    with commits():
        assert image_sweep_stale().get("avatars_ended") == 1
    assert avatar_of(user).error == "Processing did not finish after 4 attempts. Please upload the picture again."
    assert stored(s3, settings.BOARDSITE_BUCKET, user) == set(), "what it stored is deleted"


def test_a_late_result_for_an_ended_upload_changes_nothing_and_deletes_what_it_wrote(
    settings, me, people, s3, sqs, jpeg, commits
):
    from boardsite.avatars.results import avatar_result_apply
    from offload.functions import process_image

    bucket, user = settings.BOARDSITE_BUCKET, people["contributor"]
    _lost_in_lambda_mode(settings, me, sqs, jpeg())
    late_key = avatar_of(user).pending_key
    result = process_image.process_object(bucket=bucket, key=late_key)  # its report is late, not lost
    Avatar.objects.filter(user=user).update(pending_attempts=settings.PROCESSING_MAX_ATTEMPTS)
    _aged(user, 10**6)
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    image_sweep_stale()  # gives up on it
    avatar_upload(me, jpeg())
    current = avatar_of(user)
    assert current.variants
    with commits():
        assert avatar_result_apply(result=result) is False
    assert avatar_of(user).original_key == current.original_key
    assert not any(late_key.rsplit("/", 1)[-1].split(".")[0] in k for k in stored(s3, bucket, user))


def test_deleting_the_account_deletes_its_pictures(settings, me, people, s3, jpeg, commits):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    bucket, user = settings.BOARDSITE_BUCKET, people["contributor"]
    avatar_upload(me, jpeg())
    avatar_ticket(me, jpeg())
    assert stored(s3, bucket, user)
    with commits():
        user.delete()
    assert stored(s3, bucket, user) == set()


def test_avatar_keys_are_never_mistaken_for_photos():
    key = "originals/lambda/avatars/7/0b4c5e9e-5d1b-4a59-9d6d-2d3c1e0f1a2b.jpg"
    assert parse_avatar_key(key) == ("7", "0b4c5e9e-5d1b-4a59-9d6d-2d3c1e0f1a2b")
    assert parse_avatar_key("originals/avatars/7/x.jpg") == ("7", "x")
    assert parse_avatar_key("originals/inline/12/abc.jpg") is None
    assert parse_avatar_key("originals/avatars/seven/x.jpg") is None
    with pytest.raises(ValueError, match="not an original's key"):
        parse_key(key)
    assert registry.s3_job_for(key).name == "process_image"


def test_the_orphan_sweep_keeps_live_avatars_and_takes_the_rest(settings, me, people, s3, jpeg):
    import datetime as dt

    from django.utils import timezone

    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    bucket, user = settings.BOARDSITE_BUCKET, people["contributor"]
    avatar_upload(me, jpeg())
    live = stored(s3, bucket, user)
    orphan = f"variants/avatars/{user.pk}/{uuid.uuid4()}/s64.jpg"
    s3.put_object(Bucket=bucket, Key=orphan, Body=b"x")
    cleanup.storage_sweep_orphans(now=timezone.now() + dt.timedelta(days=2))
    assert stored(s3, bucket, user) == live


def test_initials_on_a_colour_of_their_own_when_there_is_no_picture(db, people):
    assert faces.initials_of("Ada Lovelace") == "AL"
    assert faces.initials_of("grace_hopper") == "GH"
    assert faces.initials_of("linus") == "L"
    assert faces.initials_of("…") == "?"
    user = people["viewer"]
    face = faces.face(user, 32)
    assert (face.src, face.initials) == ("", "V")
    assert face.colour == faces.colour_for(user.pk) == faces.face(user, 64).colour, "stable for the person"
    from boardsite.accounts.models import Profile

    Profile.objects.update_or_create(user=user, defaults={"display_name": "Vera Rubin"})
    user.refresh_from_db()
    assert faces.face(user, 32).initials == "VR", "the display name, when there is one"
    assert faces.face(user, 32).colour == face.colour, "a new name keeps the colour"
    colours = {faces.colour_for(i) for i in range(1, 50)}
    assert len(colours) > 5, "people get different colours"
    c = Client()
    c.force_login(people["owner"])


def _with_picture(user, n: int) -> None:
    Avatar.objects.create(
        user=user,
        original_key=f"originals/avatars/{user.pk}/{n}.jpg",
        variants=[
            {
                "name": name,
                "format": fmt,
                "key": f"variants/avatars/{user.pk}/{n}/{name}.{ext}",
                "width": s,
                "height": s,
            }
            for name, s in SIZES.items()
            for fmt, ext in (("webp", "webp"), ("jpeg", "jpg"))
        ],
    )


def test_a_board_page_costs_the_same_queries_with_many_members_and_their_pictures(board, people, local_aws):
    c = Client()
    c.force_login(people["owner"])
    for i, user in enumerate(people.values()):
        _with_picture(user, i)
    c.get(f"/boards/{board.pk}/")
    with CaptureQueriesContext(connection) as few:
        small = c.get(f"/boards/{board.pk}/").content.decode()
    for i in range(30):
        user = make_user(f"member{i}")
        add_member(board, user, Role.VIEWER)
        if i % 2:
            _with_picture(user, 100 + i)
    with CaptureQueriesContext(connection) as many:
        large = c.get(f"/boards/{board.pk}/").content.decode()
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert small.count('<img class="avatar avatar-24"') == 3
    assert large.count('<img class="avatar avatar-24"') == 3 + 15
    assert large.count('class="avatar avatar-24 initials') == 15, "the members without a picture"


def test_notifications_and_the_image_page_show_the_person(board, people, local_aws):
    from django.utils import timezone

    from boardsite.notifications.models import Notification
    from tests.factories import make_image

    _with_picture(people["contributor"], 1)
    image = make_image(board, people["contributor"])
    c = Client()
    c.force_login(people["owner"])
    page = c.get(f"/images/{image.pk}/").content.decode()
    assert '<img class="avatar avatar-24"' in page
    assert "variants/avatars/" in page
    now = timezone.now()
    for actor in (people["contributor"], people["viewer"]) * 5:
        Notification.objects.create(
            user=people["owner"], kind="photos_added", board=board, actor=actor, created_at=now, updated_at=now
        )
    with CaptureQueriesContext(connection) as queries:
        page = c.get("/notifications/").content.decode()
    assert page.count('<img class="avatar avatar-24"') == 5
    assert page.count('class="avatar avatar-24 initials') == 5
    assert not [q for q in queries.captured_queries if 'FROM "accounts_avatar"' in q["sql"]], "fetched with the actors"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_mode_with_a_real_worker(settings, me, people, s3, jpeg, tmp_path):
    modes = {"process_image": "celery", "apply_results": "inline"}
    settings.OFFLOAD_MODES = modes
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OFFLOAD_MODES": ",".join(f"{k}={v}" for k, v in modes.items()),
    }
    log = tmp_path / "worker.log"
    celery_app.control.purge()
    worker = start_process(celery_worker_command(sys.executable), env, log)
    try:
        wait_for(lambda: " ready." in log.read_text(), timeout=60)
        avatar_upload(me, jpeg())
        assert me.get("/api/avatar").json()["state"] == "processing"
        avatar = wait_for(lambda: settled(people["contributor"]), timeout=60)
        check_square_avatar(avatar, s3, settings.BOARDSITE_BUCKET)
        avatar_upload(me, PDF, name="notes.jpg")
        refused = wait_for(lambda: settled(people["contributor"]), timeout=60)
    finally:
        output = stop_process(worker, log)
        print(output[-5000:])
    assert "boardsite.run_job" in output
    assert "not an image" in refused.error
    assert refused.original_key == avatar.original_key


@pytest.mark.worker
def test_lambda_mode_through_the_local_runner(settings, me, people, s3, jpeg, tmp_path):
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    log = tmp_path / "runner.log"
    proc = start_process([sys.executable, "-m", "devstack.runner", "process_image"], dict(os.environ), log)
    apply_job = registry.get("apply_results")
    tick = lambda: runner.poll_once(apply_job, wait_seconds=0)  # noqa: E731 - the web side's half, as runjobs does
    try:
        body = avatar_upload(me, jpeg())
        assert "/lambda/avatars/" in body["upload"]["fields"]["key"], "placed for Lambda by its key"
        avatar = wait_for(lambda: settled(people["contributor"]), timeout=60, tick=tick)
        check_square_avatar(avatar, s3, settings.BOARDSITE_BUCKET)
        # The page's report often arrives after S3's event had it processed: answered with the picture, not a 404.
        late = me.post(body["avatar"]["complete_url"])
        assert late.status_code == 200, late.content
        assert late.json()["state"] == "idle"
        assert late.json()["src"]
        avatar_upload(me, PDF, name="notes.jpg")
        refused = wait_for(lambda: settled(people["contributor"]), timeout=60, tick=tick)
    finally:
        output = stop_process(proc, log)
        print(output[-5000:])
    assert "process_image <- boardsite-uploads" in output, output
    assert "not an image" in refused.error
    assert refused.original_key == avatar.original_key


def test_avatar_variants_are_squares_only(monkeypatch):
    from offload import config

    monkeypatch.setenv("BOARDSITE_AVATAR_VARIANTS", "a=64:square,b=500")
    with pytest.raises(ValueError, match="must be :square"):
        config.load()
    monkeypatch.setenv("BOARDSITE_AVATAR_VARIANTS", "a=48:square")
    assert [(s.name, s.size, s.square) for s in config.load().avatar_variants] == [("a", 48, True)]
    monkeypatch.delenv("BOARDSITE_AVATAR_VARIANTS")
    assert [s.size for s in config.load().avatar_variants] == [64, 128, 256]


@pytest.fixture
def distribution(settings, monkeypatch, s3):
    """CloudFront mode, through the stand-in for the distribution (devstack/cdn.py verifies signatures as CloudFront
    documents it)."""
    from boardsite.images import cdn
    from devstack import cdn as localcdn

    private, pem, _ = localcdn.new_key_pair()
    monkeypatch.setenv("BOARDSITE_CDN_KEY_ID", "K2JCJMDEHXQW5F")
    monkeypatch.setenv("BOARDSITE_CDN_PRIVATE_KEY", pem)
    emulator = localcdn.CdnStandIn(s3, settings.BOARDSITE_BUCKET, {"K2JCJMDEHXQW5F": private.public_key()})
    with localcdn.running(emulator) as running:
        settings.BOARDSITE_CDN_URL = running.base_url
        settings.BOARDSITE_CDN_COOKIE_DOMAIN = ""
        cdn._signer.cache_clear()
        yield running
        cdn._signer.cache_clear()


def test_with_a_cdn_a_picture_comes_by_its_own_signed_url(distribution, settings, board, people, s3):
    import requests

    user = people["contributor"]
    _with_picture(user, 1)
    for v in avatar_of(user).variants:
        s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=v["key"], Body=v["key"].encode())
    c = Client()
    c.force_login(people["owner"])
    html = c.get(f"/boards/{board.pk}/").content.decode()
    src = html.split('<img class="avatar avatar-24" src="')[1].split('"')[0].replace("&amp;", "&")
    assert src.startswith(distribution.base_url + f"/variants/avatars/{user.pk}/")
    assert "Signature=" in src, "signed for that one object: the board's cookies do not cover avatars"
    got = requests.get(src, timeout=10)
    assert (got.status_code, got.content) == (200, f"variants/avatars/{user.pk}/1/s64.jpg".encode())
    forged = src.replace(f"/avatars/{user.pk}/", "/avatars/999/")
    assert requests.get(forged, timeout=10).status_code == 403
