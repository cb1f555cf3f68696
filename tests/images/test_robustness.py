"""Clear errors instead of tracebacks, and nothing left pending forever."""

from __future__ import annotations

import pytest
from django.test import Client

from boardsite.celery import app as celery_app
from boardsite.core.results import handler as apply_handler
from boardsite.images.models import Image
from boardsite.images.results import image_result_apply
from offload.events import sqs_event
from offload.functions import process_image
from tests.factories import make_image
from tests.helpers import post_to_s3, send_original, ticket, upload


@pytest.fixture
def contributor(people):
    c = Client()
    c.force_login(people["contributor"])
    return c


@pytest.mark.parametrize("content_type", [["image/jpeg"], {"a": 1}, 7, None])
def test_non_string_content_type_is_a_400(contributor, board, local_aws, content_type):
    r = contributor.post(
        "/api/uploads",
        {"board": board.pk, "filename": "a.jpg", "content_type": content_type, "size": 5},
        content_type="application/json",
    )
    assert r.status_code == 400
    expected = "content_type is required" if content_type is None else "not accepted"  # None: said as missing
    assert expected in r.json()["error"]


@pytest.mark.parametrize("board_id", [True, 1.0, "1.5", [1], "²", "١"])
def test_board_must_be_a_whole_number(contributor, board, local_aws, board_id):
    r = contributor.post(
        "/api/uploads",
        {"board": board_id, "filename": "a.jpg", "content_type": "image/jpeg", "size": 5},
        content_type="application/json",
    )
    assert r.status_code == 404
    assert not Image.objects.exists()


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/api/uploads"), ("post", "/api/images/x"), ("get", "/api/images/x/complete"), ("delete", "/api/uploads")],
)
def test_wrong_methods_get_a_json_405(contributor, method, url):
    r = getattr(contributor, method)(url)
    assert r.status_code == 405
    assert "Use " in r.json()["error"]


def test_too_long_caption_is_a_clear_400(contributor, board, local_aws, jpeg, settings):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    body = upload(contributor, board.pk, jpeg())
    r = contributor.post(f"/images/{body['image']['id']}/", {"caption": "x" * 501})
    assert r.status_code == 400
    assert "caption" in r.content.decode()


def test_a_failed_browser_upload_ends_failed_with_its_reason(contributor, board, local_aws, jpeg):
    body = ticket(contributor, board.pk, jpeg())
    r = contributor.post(
        body["image"]["abandon_url"], {"reason": "storage answered 403"}, content_type="application/json"
    )
    assert r.status_code == 200
    assert r.json()["status"] == "failed"
    assert "storage answered 403" in Image.objects.get(pk=body["image"]["id"]).error


def test_abandon_is_for_the_uploader_only(people, contributor, board, local_aws, jpeg):
    body = ticket(contributor, board.pk, jpeg())
    owner = Client()
    owner.force_login(people["owner"])
    assert owner.post(body["image"]["abandon_url"], {}, content_type="application/json").status_code == 403
    assert Image.objects.get(pk=body["image"]["id"]).status == "pending"


def test_when_processing_cannot_start_the_upload_can_be_reported_again(
    contributor, board, local_aws, jpeg, settings, monkeypatch, caplog
):
    # A broker that does not answer (a closed port): a real connection failure, not a mock.
    settings.OFFLOAD_MODES = {"process_image": "celery", "apply_results": "inline"}
    data = jpeg()
    body = ticket(contributor, board.pk, data)
    post_to_s3(body["upload"], data)
    original = celery_app.conf.broker_url

    # Celery caches its connection and producer pools in these; fail loudly if an upgrade renames them.
    assert hasattr(celery_app, "_pool")
    assert hasattr(celery_app.amqp, "_producer_pool")

    def use_broker(url: str) -> None:
        # Celery reads CELERY_BROKER_URL before its own setting.
        celery_app.conf.broker_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    use_broker("redis://127.0.0.1:1/0")
    try:
        with caplog.at_level("ERROR", logger="boardsite.images.services"):
            r = contributor.post(body["image"]["complete_url"])
    finally:
        monkeypatch.undo()
        use_broker(original)
    causes = [rec.exc_info[1] for rec in caplog.records if rec.exc_info]
    assert causes, "the failure is logged with its cause"
    assert type(causes[0]).__name__ == "OperationalError", causes  # a refused connection, not an ImportError
    assert r.status_code == 503
    assert "try again" in r.json()["error"]
    assert Image.objects.get(pk=body["image"]["id"]).status == "pending"
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    assert contributor.post(body["image"]["complete_url"]).json()["status"] == "ready"


def test_results_for_a_deleted_image_remove_what_processing_wrote(
    contributor, board, s3, jpeg, settings, django_capture_on_commit_callbacks
):
    body, event = send_original(contributor, board.pk, jpeg(), s3, settings.BOARDSITE_BUCKET)
    key = body["upload"]["fields"]["key"]
    reported = []
    process_image.handler(event, None, report=reported.append)
    prefix = process_image.variants_prefix(key)
    # 3 sizes x 2 formats + result.json
    assert s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=prefix)["KeyCount"] == 7
    Image.objects.filter(pk=body["image"]["id"]).delete()  # deleted while it was processing
    with django_capture_on_commit_callbacks(execute=True):
        assert image_result_apply(result=reported[0]) is False
    assert s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=prefix)["KeyCount"] == 0
    assert s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=key)["KeyCount"] == 0


def test_malformed_result_messages_are_dropped_not_crashing(db):
    bad = sqs_event([("1", "not json"), ("2", '{"type": "image.processed", "image_id": "x"}'), ("3", "[]"), ("4", "5")])
    assert apply_handler(bad) == {"applied": 0, "batchItemFailures": [{"itemIdentifier": i} for i in ("1", "3", "4")]}


def test_an_object_without_a_declared_size_fails(board, s3, jpeg, settings, people):
    data = jpeg()
    img = make_image(
        board,
        people["owner"],
        status="pending",
        original_key=f"originals/{board.pk}/11111111-1111-4111-8111-111111111111.jpg",
        declared_size=len(data),
        size=None,
    )
    s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=img.original_key, Body=data, ContentType="image/jpeg")
    result = process_image.process_object(bucket=settings.BOARDSITE_BUCKET, key=img.original_key)
    assert result["status"] == "failed"
    assert "declared size is missing" in result["error"]
