"""The upload-ticket function (issue_upload_ticket on lambda) and the grants the site signs for it: the same contract
as the site's own tickets, grants refused when expired, tampered, for another board, revoked or used up, quotas that
hold across both runtimes (a race included), and the ``image.ticketed`` events applied in any order
(offload/functions/upload_ticket.py, offload/grants.py, boardsite/images/grants.py, boardsite/images/results.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client
from django.urls import reverse

from boardsite.boards.models import Membership
from boardsite.core import results as core_results
from boardsite.images import services
from boardsite.images.models import DeletedImage, Image, UploadGrant, UploadTicket
from boardsite.images.results import image_result_apply, image_ticketed_apply
from offload import config, grants
from offload.events import s3_object_created_event
from offload.functions import process_image, upload_ticket
from tests.helpers import Now, post_to_s3

KEY = "k" * 43
PHOTO = {"filename": "beach.jpg", "content_type": "image/jpeg", "size": 1000}


@pytest.fixture
def lambda_tickets(settings, monkeypatch, local_aws, people, board):
    """Tickets routed to the function for everyone; the function's environment holds the same grant key."""
    settings.OFFLOAD_MODES = {
        **settings.OFFLOAD_MODES,
        "issue_upload_ticket": "lambda",
        "process_image": "inline",
        "apply_results": "lambda",
    }
    settings.UPLOAD_GRANT_KEY = KEY
    settings.UPLOAD_TICKET_FUNCTION_URL = "http://functions.local"
    monkeypatch.setenv("UPLOAD_GRANT_KEY", KEY)
    client = Client()
    client.force_login(people["contributor"])
    return client


def grant_for(client: Client, board, files: int = 5, size: int = 10_000) -> dict:
    r = client.post(
        "/api/upload-grants", {"board": board.pk, "files": files, "bytes": size}, content_type="application/json"
    )
    assert r.status_code == 201, r.content
    return r.json()


def ticket(grant: dict, on, events: list | None = None, **over) -> tuple[int, dict]:
    body = {"grant": grant["grant"], "board": on.pk, **PHOTO, **over}
    return upload_ticket.issue(body, report=(events if events is not None else []).append)


def test_inline_by_default_the_site_answers_and_no_grant_is_signed(settings, people, board):
    client = Client()
    client.force_login(people["contributor"])
    r = client.post("/api/upload-grants", {"board": board.pk, "files": 3, "bytes": 10}, content_type="application/json")
    assert r.json() == {"runtime": "inline", "ticket_url": "/api/uploads", "grant": None}
    assert not UploadGrant.objects.exists()


def test_the_site_answering_a_ticket_request_is_a_measured_inline_run(settings, people, board):
    """The inline runtime of issue_upload_ticket is measured like the function's runs: a ticket and a refusal (a 4xx
    answered, as the function's are) are runs that did their work; the control room compares them."""
    from boardsite.core.models import JobRun

    client = Client()
    client.force_login(people["contributor"])
    ok = client.post("/api/uploads", {"board": board.pk, **PHOTO}, content_type="application/json")
    refused = client.post(
        "/api/uploads", {"board": board.pk, **PHOTO, "content_type": "application/pdf"}, content_type="application/json"
    )
    assert (ok.status_code, refused.status_code) == (201, 400)
    runs = list(JobRun.objects.filter(job="issue_upload_ticket").values_list("runtime", "outcome", "shadow"))
    assert runs == [("inline", "ok", False), ("inline", "ok", False)]


CASES = [
    ({}, None),
    ({"content_type": "application/pdf"}, None),
    ({"size": 0}, None),
    ({"size": 10**12}, None),
    ({"filename": "bad\u202ename.jpg"}, None),
    ({"filename": ""}, None),
    ({"content_type": "IMAGE/JPEG"}, None),
    ({"content_type": None}, None),
]


@pytest.mark.parametrize(("over", "_"), CASES)
def test_the_function_and_the_site_answer_the_same_request_the_same_way(lambda_tickets, board, over, _):
    body = {**PHOTO, **over}
    site = lambda_tickets.post("/api/uploads", {"board": board.pk, **body}, content_type="application/json")
    status, answer = ticket(grant_for(lambda_tickets, board), board, **over)
    assert status == site.status_code, (answer, site.content)
    if status >= 400:
        assert answer == site.json()
        return
    mine = site.json()
    assert set(answer) == set(mine) == {"image", "upload"}
    assert set(answer["image"]) == set(mine["image"])
    assert answer["image"]["status"] == mine["image"]["status"] == "pending"
    assert answer["image"]["status_url"] == reverse("api-image", args=[answer["image"]["id"]])
    assert set(answer["upload"]) == set(mine["upload"])
    extra = {"x-amz-meta-uploader", "x-amz-meta-grant", "x-amz-meta-filename", "x-amz-meta-ticketed-at"}
    assert set(answer["upload"]["fields"]) == set(mine["upload"]["fields"]) | extra
    key = answer["upload"]["fields"]["key"]
    assert re.fullmatch(rf"originals/inline/{board.pk}/[0-9a-f-]{{36}}\.jpg", key)  # placed as the door would
    assert answer["image"]["complete_url"] == f"/api/images/{answer['image']['id']}/complete"


def test_a_grant_is_refused_when_expired_tampered_for_another_board_or_not_an_uploaders(lambda_tickets, board, people):
    grant = grant_for(lambda_tickets, board)
    token = grant["grant"]
    later = time.time() + 3600
    status, answer = upload_ticket.issue({"grant": token, "board": board.pk, **PHOTO}, report=[].append, now=later)
    assert (status, answer) == (403, {"error": "This upload grant has expired: ask the site for a new one."})
    payload, signature = token.split(".")
    forged = grants.sign(
        dataclasses.replace(grants.verify(token, KEY), board=board.pk + 1), "another key"
    )  # a grant for another board, signed with a key that is not the site's
    for bad in (payload[:-2] + "xx." + signature, forged, "", "a.b", None):
        status, answer = ticket({"grant": bad}, board)
        assert status == 403, bad
        assert "not valid" in answer["error"]
    status, answer = ticket(grant, board, board=board.pk + 1)  # a genuine grant, another board asked for
    assert (status, answer["error"]) == (403, "This upload grant is for another board: ask the site for one for this.")
    viewer = dataclasses.replace(grants.verify(token, KEY), role="viewer")
    status, answer = ticket({"grant": grants.sign(viewer, KEY)}, board)
    assert (status, answer) == (403, {"error": "Only the board's contributors and owners can add photos."})
    # The site itself never signs one for a viewer.
    watcher = Client()
    watcher.force_login(people["viewer"])
    r = watcher.post("/api/upload-grants", {"board": board.pk, "files": 1, "bytes": 1}, content_type="application/json")
    assert r.status_code == 403


@pytest.mark.parametrize("how", ["removed", "left"])
def test_a_member_removed_loses_the_grants_already_signed_at_the_next_ticket(lambda_tickets, board, people, how):
    grant = grant_for(lambda_tickets, board)
    assert ticket(grant, board)[0] == 201
    if how == "removed":
        owner = Client()
        owner.force_login(people["owner"])
        r = owner.post(f"/boards/{board.pk}/members/remove/", {"username": "contributor"})
    else:
        leaver = Client()
        leaver.force_login(people["contributor"])
        r = leaver.post(f"/boards/{board.pk}/leave/")
    assert r.status_code in (200, 302)
    assert not Membership.objects.filter(board=board, user=people["contributor"]).exists()
    status, answer = ticket(grant, board)
    assert (status, answer) == (403, {"error": "This upload grant was revoked: ask the site for a new one."})
    assert UploadGrant.objects.get().revoked_at is not None


def test_a_grant_never_issues_more_tickets_or_bytes_than_it_allows_even_at_once(lambda_tickets, board):
    grant = grant_for(lambda_tickets, board, files=10, size=10_000)
    assert (grant["tickets"], grant["bytes"]) == (10, 10_000)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ticket(grant, board, size=500), range(20)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * 10 + [429] * 10, statuses
    assert len({a["image"]["id"] for s, a in answers if s == 201}) == 10
    small = grant_for(lambda_tickets, board, files=2, size=1500)
    assert ticket(small, board, size=1000)[0] == 201
    status, answer = ticket(small, board, size=1000)  # 2,000 bytes in all: over the grant's 1,500
    assert status == 429  # no Retry-After: ask the site for a new grant
    assert "would go over what this upload grant allows" in answer["error"]


def test_a_grants_tickets_cost_a_few_requests_each_not_a_scan_from_its_first(lambda_tickets, board):
    """Ticket n of a grant scanned slots 0..n (a failed create and a read each): 2n requests, n² for the grant; a
    p95 over the job's budget at a few dozen tickets. Each instance now starts after the last slot it knows taken."""
    from offload import aws as offload_aws

    grant = grant_for(lambda_tickets, board, files=12, size=30_000)
    assert grant["tickets"] == 12
    s3 = offload_aws.client("s3")
    calls: list[str] = []

    def count(params, **kwargs):
        key = str(params.get("Key") or params.get("Prefix") or "")
        if key.startswith(config.UPLOAD_GRANTS_PREFIX) and not key.startswith(upload_ticket.REVOKED_PREFIX):
            calls.append(kwargs["event_name"])

    s3.meta.events.register("before-parameter-build.s3.*", count)
    try:
        for _ in range(6):
            assert ticket(grant, board, size=100)[0] == 201
        assert len(calls) <= 6, calls  # one create each (before: 2n per ticket, 36 here)
        # Another instance (no hints): its first claim finds the last slot taken by one listing (a failed create,
        # the listing, a read, then its create), not slot by slot (13 requests here, 2n+1 behind n claims); then
        # one create each.
        upload_ticket._hints.clear()
        calls.clear()
        for _ in range(5):
            assert ticket(grant, board, size=100)[0] == 201
        assert len(calls) == 4 + 4, calls
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.*", count)
    # The bytes claimed so far still count after the hints were lost: 11 tickets of 100 bytes, 30,000 in all.
    upload_ticket._hints.clear()
    status, answer = ticket(grant, board, size=28_901)
    assert status == 429
    assert "would go over what this upload grant allows" in answer["error"]
    assert ticket(grant, board, size=28_900)[0] == 201
    assert ticket(grant, board, size=1)[0] == 429  # its 12 tickets are used


def test_claims_at_once_on_one_instance_take_one_write_each_and_never_chase_each_other(lambda_tickets, board):
    """Eight threads claiming a grant's 60 slots at once: each loser of a race walked on slot by slot past the
    others' claims (175 requests for one of the last tickets of 90); claims of a grant now take turns per instance."""
    from offload import aws as offload_aws

    signed = grants.verify(grant_for(lambda_tickets, board)["grant"], KEY)
    grant = dataclasses.replace(signed, id=str(uuid.uuid4()), tickets=60, bytes=10**9)
    s3 = offload_aws.client("s3")
    calls: list[str] = []

    def count(**kwargs):
        calls.append(kwargs["event_name"])

    s3.meta.events.register("before-parameter-build.s3.*", count)
    try:
        with ThreadPoolExecutor(8) as pool:
            slots = list(pool.map(lambda _: upload_ticket._claim(s3, config.load().bucket, grant, 100), range(60)))
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.*", count)
    assert sorted(slots) == list(range(60))
    assert len(calls) == 60, calls  # one create-only write each


def test_quotas_hold_across_both_runtimes(lambda_tickets, board, settings):
    settings.UPLOAD_MAX_OUTSTANDING = 5
    grant = grant_for(lambda_tickets, board, files=3)
    assert grant["tickets"] == 3
    for _ in range(2):
        r = lambda_tickets.post("/api/uploads", {"board": board.pk, **PHOTO}, content_type="application/json")
        assert r.status_code == 201, r.content
    r = lambda_tickets.post("/api/uploads", {"board": board.pk, **PHOTO}, content_type="application/json")
    assert r.status_code == 429, "the grant's three places are taken"
    r = lambda_tickets.post(
        "/api/upload-grants", {"board": board.pk, "files": 3, "bytes": 10}, content_type="application/json"
    )
    assert r.status_code == 429
    # Settings that would let a ticket through the site count the grant's bytes too.
    settings.UPLOAD_MAX_OUTSTANDING = 50
    settings.UPLOAD_DAILY_BYTES = 10_000 + 2 * 1000 + 500
    r = lambda_tickets.post("/api/uploads", {"board": board.pk, **PHOTO}, content_type="application/json")
    assert r.status_code == 413, r.content


def test_ticketed_events_apply_once_in_any_order_and_never_bring_a_deleted_photo_back(lambda_tickets, board, jpeg):
    grant = grant_for(lambda_tickets, board, size=10**7)
    events: list = []
    status, answer = ticket(grant, board, events, size=len(data := jpeg()))
    assert status == 201
    (event,) = events
    assert event["type"] == "image.ticketed"
    image_id = answer["image"]["id"]
    assert not Image.objects.filter(pk=image_id).exists()
    assert image_ticketed_apply(result=event) is True
    assert image_ticketed_apply(result=event) is False  # twice: nothing more
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.filename, image.uploaded_by.username) == ("pending", "beach.jpg", "contributor")
    assert UploadTicket.objects.get(image_id=image_id).grant_id == uuid.UUID(grant_id := event["grant"])
    # Processed before its ticket's event arrives: the result alone makes the row, from what the upload carries.
    second: list = []
    status, answer = ticket(grant, board, second, size=len(data))
    post_to_s3(answer["upload"], data)
    key = answer["upload"]["fields"]["key"]
    event = s3_object_created_event(bucket=config.load().bucket, key=key, size=len(data), etag="")
    (result,) = process_image.handler(event, report=lambda r: None)["results"]
    assert result["ticket"]["grant"] == grant_id
    assert image_result_apply(result=result) is True
    ready = Image.objects.get(pk=answer["image"]["id"])
    assert (ready.status, ready.filename) == ("ready", "beach.jpg")
    assert image_ticketed_apply(result=second[0]) is False  # late: the row is there, ready, and stays so
    assert Image.objects.get(pk=ready.pk).status == "ready"
    # Deleted, then a late or repeated event: the photo does not come back.
    services.image_delete(user=ready.uploaded_by, image_id=ready.pk)
    assert DeletedImage.objects.filter(pk=ready.pk).exists()
    assert image_ticketed_apply(result=second[0]) is False
    assert not Image.objects.filter(pk=ready.pk).exists()
    # The results job routes the event type to its applier (the registry's reports).
    third: list = []
    ticket(grant, board, third)
    assert core_results.result_apply(result=third[0]) is True


def test_the_function_answers_a_function_url_request(lambda_tickets, board):
    grant = grant_for(lambda_tickets, board)

    def request(method: str, path: str, body: str) -> dict:
        event = {"rawPath": path, "requestContext": {"http": {"method": method, "path": path}}, "body": body}
        return upload_ticket.handler(event, report=[].append)

    answer = request("POST", "/tickets", json.dumps({"grant": grant["grant"], "board": board.pk, **PHOTO}))
    assert answer["statusCode"] == 201
    assert json.loads(answer["body"])["image"]["status"] == "pending"
    assert answer["headers"]["Cache-Control"] == "private, no-store"
    assert "Access-Control-Allow-Origin" not in answer["headers"]  # the function URL's configuration adds CORS
    assert request("POST", "/elsewhere", "{}")["statusCode"] == 404
    assert request("GET", "/tickets", "")["statusCode"] == 405
    bad = request("POST", "/tickets", "{not json")
    assert (bad["statusCode"], json.loads(bad["body"])) == (400, {"error": "The request body must be JSON."})


def test_deployed_the_site_finds_the_function_url_and_the_function_reads_its_key_from_ssm(
    lambda_tickets, board, settings, monkeypatch
):
    """Nothing has to write the function's address into the web stage: it is asked of Lambda (moto's, here), once;
    the function reads the grant key from its one SecureString."""
    from boardsite.core import jobs
    from offload import aws

    iam = aws.client("iam")
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    lam = aws.client("lambda")
    lam.create_function(
        FunctionName="boardsite-functions", Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )  # fmt: skip
    made = lam.create_function_url_config(FunctionName="boardsite-functions", AuthType="NONE")["FunctionUrl"]
    settings.UPLOAD_TICKET_FUNCTION_URL = ""
    settings.LAMBDA_FUNCTIONS = {**settings.LAMBDA_FUNCTIONS, "offload": "boardsite-functions"}
    jobs._url_cache.clear()
    assert jobs.function_url() == made.rstrip("/")
    grant = grant_for(lambda_tickets, board)
    assert grant["ticket_url"] == made.rstrip("/") + "/tickets"
    # Not routed to lambda: no address, and Lambda is not asked at all.
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "issue_upload_ticket": "inline"}
    monkeypatch.setattr(jobs.aws, "client", lambda service: pytest.fail("asked Lambda for nothing"))
    assert jobs.function_url() == ""

    aws.client("ssm").put_parameter(Name="/boardsite/t/UPLOAD_GRANT_KEY", Value=KEY, Type="SecureString")
    monkeypatch.delenv("UPLOAD_GRANT_KEY")
    monkeypatch.setenv("BOARDSITE_SSM_PREFIX", "/boardsite/t/")
    upload_ticket._key_cache.clear()
    assert upload_ticket.grant_key() == KEY
    status, _ = ticket(grant, board)
    assert status == 201, "a grant the site signed, checked with the key from SSM"


def test_grants_end_with_a_revoked_token_or_a_lowered_role_and_only_for_that_board(lambda_tickets, board, people):
    from boardsite.accounts import tokens
    from boardsite.boards.services import board_create, board_member_add

    own = board_create(user=people["contributor"], title="Mine")
    here, mine = grant_for(lambda_tickets, board), grant_for(lambda_tickets, own)
    owner = Client()
    owner.force_login(people["owner"])
    board_member_add(board=board, user=people["owner"], username="contributor", role="viewer")  # lowered
    assert ticket(here, board)[1] == {"error": "This upload grant was revoked: ask the site for a new one."}
    assert ticket(mine, own)[0] == 201, "a grant for another board is not touched"
    row, _ = tokens.token_create(user=people["contributor"], name="laptop", scopes=["upload"])
    tokens.token_revoke(user=people["contributor"], token_id=row.pk)
    assert ticket(mine, own)[0] == 403, "a token revoked ends every grant of the person"


def test_names_reach_the_row_as_they_were_checked_whichever_event_comes_first(lambda_tickets, board, jpeg):
    grant = grant_for(lambda_tickets, board, size=10**7)
    events: list = []
    status, answer = ticket(grant, board, events, filename="100%25 sure.jpg")
    assert status == 201
    assert image_ticketed_apply(result=events[0]) is True
    assert Image.objects.get(pk=answer["image"]["id"]).filename == "100%25 sure.jpg"
    # The other order: the processing result, with the name as the object's metadata carries it (quoted).
    data, second = jpeg(), []
    status, answer = ticket(grant, board, second, filename="été %41.jpg", size=len(data))
    post_to_s3(answer["upload"], data)
    key = answer["upload"]["fields"]["key"]
    event = s3_object_created_event(bucket=config.load().bucket, key=key, size=len(data), etag="")
    (result,) = process_image.handler(event, report=lambda r: None)["results"]
    assert image_result_apply(result=result) is True
    assert Image.objects.get(pk=answer["image"]["id"]).filename == "été %41.jpg"


def test_the_function_refuses_deeply_nested_json_with_a_sentence():
    event = {"rawPath": "/tickets", "requestContext": {"http": {"method": "POST"}}, "body": "[" * 5000 + "]" * 5000}
    answer = upload_ticket.handler(event, report=[].append)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"].startswith("The request body is nested too deeply: at most 8 levels")
    nine = {"grant": "x", "board": 1, "extra": [[[[[[[[[1]]]]]]]]]}  # the site's limit is the function's too
    answer = upload_ticket.handler({**event, "body": json.dumps(nine)}, report=[].append)
    assert answer["statusCode"] == 400
    for body, sentence in (("[]", "must be a JSON object"), ("1" * 5000, "too many digits")):
        answer = upload_ticket.handler({**event, "body": body}, report=[].append)
        assert sentence in json.loads(answer["body"])["error"], body[:20]


def test_only_a_grant_the_site_signed_for_a_shadow_run_makes_one(lambda_tickets, board):
    grant = grant_for(lambda_tickets, board)
    events: list = []
    forged = {"grant": grant["grant"], "board": board.pk, **PHOTO, "boardsite_shadow": {"pair": "x" * 5000}}
    status, _ = upload_ticket.issue(forged, report=events.append)
    assert status == 201, "a mark in the request means nothing: a real ticket, counted against the grant"
    assert [e["type"] for e in events] == ["image.ticketed"]


def test_ticket_requests_run_in_shadow_on_the_function_and_agree(lambda_tickets, board, people, settings, monkeypatch):
    """issue_upload_ticket inline with a shadow share: each ticket request the site answers is checked again by the
    function (served as devstack serves it), which issues nothing; the two answers are compared in the control room."""
    from http.server import ThreadingHTTPServer

    from boardsite.core import jobs, routing
    from boardsite.core.models import ShadowPair
    from devstack import runner
    from devstack.function_urls import make_handler
    from offload import registry

    monkeypatch.setattr(jobs, "SHADOW_EXECUTOR", Now())
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler([]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.UPLOAD_TICKET_FUNCTION_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "issue_upload_ticket": "inline"}
    routing.route_set(job="issue_upload_ticket", by="ada", source="page", why="s", canary="lambda", shadow_share=10_000)
    viewer = Client()
    viewer.force_login(people["viewer"])
    try:
        asks = [
            (lambda_tickets, PHOTO),
            (lambda_tickets, {**PHOTO, "content_type": "application/pdf"}),
            (viewer, PHOTO),
        ]
        answers = [c.post("/api/uploads", {"board": board.pk, **b}, content_type="application/json") for c, b in asks]
    finally:
        server.shutdown()
    assert [a.status_code for a in answers] == [201, 400, 403]
    while runner.poll_once(registry.get("apply_results"), wait_seconds=0):
        pass
    pairs = list(ShadowPair.objects.filter(job="issue_upload_ticket").order_by("created_at"))
    assert [(p.primary_runtime, p.shadow_runtime) for p in pairs] == [("inline", "lambda")] * 3
    assert [p.shadow_result["status"] for p in pairs] == [201, 400, 403]
    assert all(p.agreed for p in pairs), [p.comparison for p in pairs]
    assert Image.objects.count() == 1, "the shadow issued nothing"
    assert UploadGrant.objects.count() == 0


def test_the_sweep_ends_a_function_ticketed_upload_that_never_arrived_and_starts_one_whose_event_was_lost(
    lambda_tickets, board, jpeg
):
    """Rows made from the function's events are the site's rows like any other: the sweep of unfinished uploads
    (and so the weekly "missing" list, which lists what it ended) works on them."""
    import datetime as dt

    from django.utils import timezone

    from boardsite.images.sweep import NEVER_ARRIVED, image_sweep_stale

    grant = grant_for(lambda_tickets, board, size=10**7)
    never, arrived, data = [], [], jpeg()
    ticket(grant, board, never)
    _, answer = ticket(grant, board, arrived, size=len(data))
    post_to_s3(answer["upload"], data)  # S3's event to Lambda is lost: nothing processes it
    for event in never + arrived:
        assert image_ticketed_apply(result=event) is True
    later = timezone.now() + dt.timedelta(hours=1)
    image_sweep_stale(now=later)
    ended = Image.objects.get(pk=never[0]["image_id"])
    assert (ended.status, ended.error) == ("failed", NEVER_ARRIVED)
    started = Image.objects.get(pk=arrived[0]["image_id"])
    assert started.status in ("processing", "ready"), "handed over again, as a lost S3 event is"
