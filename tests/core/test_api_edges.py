"""Every edge of the API answers JSON: deep nesting, oversized bodies, unknown paths, any bug; never an HTML page.

Also the headers every answer carries (``Cache-Control`` on the API, the Content-Security-Policy on pages) and the
board fields that refuse invisible characters.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from django.test import Client

from boardsite.boards.models import Board
from boardsite.core import middleware
from boardsite.images import services as image_services
from boardsite.images.models import Image
from offload import aws as offload_aws
from tests.helpers import ticket


@pytest.fixture
def api(people):
    c = Client(raise_request_exception=False)
    c.force_login(people["contributor"])
    return c


def _json_error(response, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    assert response["Cache-Control"] == "private, no-store"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"].endswith("."), body  # a sentence, not a code
    return body["error"]


@pytest.fixture
def pending_image(api, board, local_aws, jpeg) -> Image:
    body = ticket(api, board.pk, jpeg())
    return Image.objects.get(pk=body["image"]["id"])


# --- deep nesting (finding 6) ----------------------------------------------------------------------------------


def test_deeply_nested_ticket_request_is_a_json_400(api, board):
    r = api.post("/api/uploads", "[" * 20_000, content_type="application/json")  # within the size limit
    assert "nested too deeply" in _json_error(r, 400)


def test_the_findings_100000_brackets_are_a_json_413_under_the_default_limit(api, board):
    r = api.post("/api/uploads", "[" * 100_000, content_type="application/json")
    assert "too large" in _json_error(r, 413)


def test_deeply_nested_json_is_a_400_even_under_a_larger_size_limit(api, board, settings):
    settings.API_MAX_BODY_BYTES = 1024 * 1024
    r = api.post("/api/uploads", "[" * 100_000, content_type="application/json")
    assert "nested too deeply" in _json_error(r, 400)


def test_deeply_nested_abandon_is_a_json_400_and_changes_nothing(api, pending_image, settings):
    settings.API_MAX_BODY_BYTES = 1024 * 1024
    for body in ("[" * 100_000, '{"reason": ' + "[" * 20_000):
        r = api.post(f"/api/images/{pending_image.pk}/abandon", body, content_type="application/json")
        assert "nested too deeply" in _json_error(r, 400)
    pending_image.refresh_from_db()
    assert pending_image.status == "pending"


def test_nesting_within_the_recursion_limit_but_past_the_bound_is_refused(api, board):
    # 100 levels parse fine in Python; an API body is flat, so anything this deep is refused before it is used.
    body = {"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 10, "x": []}
    inner = body["x"]
    for _ in range(100):
        inner.append([])
        inner = inner[0]
    r = api.post("/api/uploads", json.dumps(body), content_type="application/json")
    assert "nested too deeply" in _json_error(r, 400)
    assert not Image.objects.exists()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("{not json", "must be JSON"),
        ("[1, 2]", "JSON object"),
        ("1" * 5000, "too many digits"),  # past Python's int-from-string limit: a ValueError, not a JSONDecodeError
        ('{"board": 1, "size": ' + "9" * 5000 + "}", "A number in the request body has too many digits."),
        ('{"size": -' + "1" * 4301 + "}", "too many digits"),
        ('{"size": ' + "1" * 5000 + ".5}", "board is required"),  # parsed: floats have no such limit
        (b"\xff\xfe{}", "must be JSON"),
    ],
)
def test_malformed_json_is_a_json_400(api, board, body, words):
    r = api.post("/api/uploads", body, content_type="application/json")
    assert words in _json_error(r, 400)


# --- body size (finding 6) -------------------------------------------------------------------------------------


def test_a_3_mb_body_is_a_json_413_before_anything_reads_it(api, board, monkeypatch):
    def must_not_parse(request):
        raise AssertionError("the body was read")

    monkeypatch.setattr("boardsite.images.views.json_body", must_not_parse)
    r = api.post("/api/uploads", b"x" * (3 * 1024 * 1024), content_type="application/json")
    message = _json_error(r, 413)
    assert "65536 bytes" in message
    assert r["X-Content-Type-Options"] == "nosniff"


def test_the_limit_is_a_setting(api, board, settings):
    settings.API_MAX_BODY_BYTES = 100
    body = json.dumps({"board": board.pk, "filename": "a" * 200, "content_type": "image/jpeg", "size": 10})
    assert "100 bytes" in _json_error(api.post("/api/uploads", body, content_type="application/json"), 413)


def test_a_body_django_finds_too_big_later_is_a_json_413(api, board, settings):
    # Django's own limit below ours: its RequestDataTooBig (a SuspiciousOperation, HTML 400) must still be a JSON 413.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"board": board.pk, "filename": "a" * 2000, "content_type": "image/jpeg", "size": 10})
    assert "too large" in _json_error(api.post("/api/uploads", body, content_type="application/json"), 413)
    form = {"reason": "x" * 2000}
    r = api.post(f"/api/images/{uuid.uuid4()}/abandon", form)  # multipart: read by the CSRF check
    assert "too large" in _json_error(r, 413)


def test_bodies_under_the_limit_still_work(api, board, local_aws, jpeg):
    assert ticket(api, board.pk, jpeg())["image"]["status"] == "pending"


# --- a Content-Length that is not a number ----------------------------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "1e3", "0x10", "-1", "1_0", "\u0661\u0660", "1 0"])
@pytest.mark.parametrize(("method", "path"), [("post", "/api/uploads"), ("get", "/api/nothing-here"), ("get", "/api")])
@pytest.mark.parametrize("debug", [False, True])
def test_a_malformed_content_length_is_a_json_400_before_anything_reads_the_body(
    method, path, length, debug, settings, caplog
):
    settings.DEBUG = debug
    c = Client(raise_request_exception=False)  # no log-in needed to reach this
    with caplog.at_level(logging.WARNING):
        r = c.generic(method.upper(), path, b"{}", content_type="application/json", CONTENT_LENGTH=length)
    assert _json_error(r, 400) == "The Content-Length header is not a number."
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], "no traceback in the log"


@pytest.mark.parametrize("length", ["0002", "0" * 5000 + "2"])
def test_leading_zeros_are_still_a_length(api, length):
    r = api.post("/api/uploads", "{}", content_type="application/json", CONTENT_LENGTH=length)
    assert "board is required" in _json_error(r, 400)


def test_a_content_length_of_5000_digits_is_a_json_413(api):
    r = api.post("/api/uploads", "{}", content_type="application/json", CONTENT_LENGTH="9" * 5000)
    assert "too large" in _json_error(r, 413)


def test_a_malformed_content_length_over_real_http_is_a_json_400(live_server):
    # Django's own server in front, as `make run` has it: the raw header reaches the site as the client sent it.
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(live_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", "/api/uploads")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "1e3")
    conn.endheaders(b"{}")
    r = conn.getresponse()
    assert r.status == 400
    assert r.getheader("Content-Type") == "application/json"
    assert r.getheader("Cache-Control") == "private, no-store"
    assert json.loads(r.read()) == {"error": "The Content-Length header is not a number."}
    conn.close()


class _BrokenStream:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def read(self, *args):
        raise self.exc

    readline = read


def test_a_body_that_cannot_be_read_is_a_json_400(api):
    r = api.post(
        "/api/uploads", "{}", content_type="application/json", **{"wsgi.input": _BrokenStream(OSError("reset"))}
    )
    assert "could not be read" in _json_error(r, 400)


@pytest.mark.parametrize("debug", [False, True])
def test_any_exception_while_reading_the_body_is_a_json_500_and_logged(api, debug, settings, caplog):
    settings.DEBUG = debug
    stream = _BrokenStream(RuntimeError("the server's stream broke"))
    with caplog.at_level(logging.ERROR):
        r = api.post("/api/uploads", "{}", content_type="application/json", **{"wsgi.input": stream})
    assert "our side" in _json_error(r, 500)
    assert "stream broke" not in r.content.decode()
    assert [rec for rec in caplog.records if rec.exc_info and rec.exc_info[0] is RuntimeError]


# --- anything else that would have been HTML -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api", "/api/", "/api/nothing-here", "/api/uploads/", "/api/images/1/2/3"])
@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_paths_are_a_json_404(api, path, debug, settings):
    settings.DEBUG = debug  # Django's technical 404 page is HTML
    assert "no such" in _json_error(api.get(path), 404).lower()


def test_paths_that_only_start_like_the_api_are_pages(client):
    r = client.get("/apis")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")


# --- HEAD, as Django's require_GET allows -----------------------------------------------------------------------


def test_head_on_a_get_endpoint_has_the_get_headers_and_no_body(api, pending_image):
    url = f"/api/images/{pending_image.pk}"
    got, head = api.get(url), api.head(url)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    for header in ("Content-Type", "Cache-Control", "Content-Length", "X-Content-Type-Options"):
        assert head[header] == got[header], header
    assert int(head["Content-Length"]) == len(got.content) > 0


def test_head_errors_keep_their_status_and_headers(api):
    r = api.head(f"/api/images/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert r["Cache-Control"] == "private, no-store"
    assert r.content == b""


def test_the_middleware_itself_strips_a_head_body(rf):
    # Django's test client and runserver drop a HEAD body on their own; other servers in front may not.
    from django.http import JsonResponse

    answer = JsonResponse({"id": "x"})
    length = len(answer.content)
    r = middleware.ApiEdgeMiddleware(lambda request: answer)(rf.head("/api/images/x"))
    assert r.content == b""
    assert r["Content-Length"] == str(length)
    assert r["Cache-Control"] == "private, no-store"


def test_head_is_in_allow_for_get_endpoints_only(api, pending_image):
    r = api.post(f"/api/images/{pending_image.pk}", "{}", content_type="application/json")
    assert r.status_code == 405
    assert r["Allow"] == "GET, DELETE, HEAD"  # a photo can be deleted through the API too
    assert r.json() == {"error": "Use GET or DELETE here."}
    r = api.head("/api/uploads")
    assert r.status_code == 405
    assert r["Allow"] == "POST"


def test_any_unexpected_exception_is_a_json_500_and_still_logged(api, board, monkeypatch, caplog):
    # RuntimeError stands for any bug in a service: whatever it is, the client reads JSON, the log has the traceback.
    def broken(**kwargs):
        raise RuntimeError("a bug we have not found yet")

    monkeypatch.setattr(image_services, "image_upload_start", broken)
    body = json.dumps({"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 10})
    with caplog.at_level(logging.ERROR, logger="django.request"):
        r = api.post("/api/uploads", body, content_type="application/json")
    message = _json_error(r, 500)
    assert "our side" in message
    assert "try again" in message
    assert "a bug we have not found yet" not in r.content.decode()  # no internals to the client
    logged = [rec for rec in caplog.records if rec.exc_info and rec.exc_info[0] is RuntimeError]
    assert logged, "the traceback must still be logged"


def test_a_500_is_json_with_debug_on_too(api, board, monkeypatch, settings):
    settings.DEBUG = True  # Django's technical 500 page is HTML

    def broken(**kwargs):
        raise RuntimeError("any bug")

    monkeypatch.setattr(image_services, "image_upload_start", broken)
    body = json.dumps({"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 10})
    _json_error(api.post("/api/uploads", body, content_type="application/json"), 500)
    assert "no such" in _json_error(api.get("/api/nothing-here"), 404).lower()


def test_suspicious_requests_are_a_json_400(api):
    # A Host header outside ALLOWED_HOSTS raises DisallowedHost (a SuspiciousOperation) when the request is checked.
    r = api.get("/api/nothing-here", headers={"host": "evil.example"})
    _json_error(r, 400)


def test_csrf_and_method_errors_stay_json(people, board):
    c = Client(enforce_csrf_checks=True)
    c.force_login(people["contributor"])
    message = _json_error(c.post("/api/uploads", "{}", content_type="application/json"), 403)
    assert message == "CSRF check failed: CSRF cookie not set. Send the csrftoken cookie's value as X-CSRFToken."
    c.get("/")  # now the cookie is set, but no header carries it
    message = _json_error(c.post("/api/uploads", "{}", content_type="application/json"), 403)
    assert message == "CSRF check failed: CSRF token missing. Send the csrftoken cookie's value as X-CSRFToken."
    assert "Use POST" in _json_error(c.get("/api/uploads"), 405)


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [("", "CSRF check failed."), ("No reason given", "CSRF check failed: No reason given."), ("Odd. ", "…: Odd.")],
)
def test_csrf_sentences_end_with_one_full_stop(rf, reason, sentence):
    from boardsite.core.views import csrf_failure

    message = json.loads(csrf_failure(rf.post("/api/uploads"), reason).content)["error"]
    assert message.startswith(sentence.replace("…", "CSRF check failed")), message
    assert ".." not in message


def test_pages_are_left_alone(client):
    r = client.get("/no-such-page/")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")
    assert "no-store" not in r.get("Cache-Control", "")


# --- headers (finding 8) ---------------------------------------------------------------------------------------


def test_api_answers_are_not_cached_success_or_error(api, board, local_aws, jpeg):
    body = ticket(api, board.pk, jpeg())
    for r in (
        api.get(body["image"]["status_url"]),
        api.post("/api/uploads", "{}", content_type="application/json"),
        api.get(f"/api/images/{uuid.uuid4()}"),
    ):
        assert r["Cache-Control"] == "private, no-store", r.status_code


def test_every_page_has_a_content_security_policy(client, people, board, local_aws, settings):
    client.force_login(people["owner"])
    policy = client.get(f"/boards/{board.pk}/")["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    bucket = middleware.bucket_origins()
    assert bucket == [local_aws]  # moto: the endpoint, path-style
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:", local_aws]
    assert directives["connect-src"] == ["'self'", local_aws]
    assert directives["form-action"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy
    for path in ("/", "/login/", "/signup/", "/boards/new/"):
        assert "default-src 'self'" in client.get(path)["Content-Security-Policy"], path


@pytest.fixture
def fresh_clients():
    offload_aws.clear_caches()
    middleware._bucket_origins.cache_clear()
    yield
    offload_aws.clear_caches()
    middleware._bucket_origins.cache_clear()


def test_the_bucket_origin_follows_the_s3_client(settings, monkeypatch, fresh_clients):
    # Real AWS (no endpoint): the presigned URLs are virtual-host style, so that host is the one to allow.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # boto3 would read it too
    settings.AWS_ENDPOINT_URL = None
    settings.AWS_REGION = "eu-west-1"
    settings.BOARDSITE_BUCKET = "photos-bucket"
    origins = middleware.bucket_origins()
    assert origins, origins
    assert all(o.startswith("https://photos-bucket.s3.") and o.endswith(".amazonaws.com") for o in origins), origins


def test_an_absolute_static_url_is_allowed_for_scripts_styles_and_images():
    from boardsite.settings import static_origin

    assert static_origin("/static/") == []
    assert static_origin("https://cdn.example.com/static/") == ["https://cdn.example.com"]


def test_templates_have_no_inline_styles_or_handlers():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "boardsite" / "templates"
    offending = [
        f"{path.relative_to(root)}: {m.group(0)}"
        for path in root.rglob("*.html")
        # Mail bodies are not pages: no CSP applies, and mail clients need inline styles.
        if "mail" not in path.relative_to(root).parts
        for m in re.finditer(r"\s(style|on[a-z]+)\s*=", path.read_text())
    ]
    assert offending == []
    assert "<script>" not in "".join(p.read_text() for p in root.rglob("*.html"))


# --- board title and description (finding 7) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "Holiday\u202egpj.exe"),
        ("title", "Holi\u200bday"),
        ("title", "Holi\x07day"),
        ("description", "Our trip\u2066 hidden"),
        ("description", "line\x00two"),
    ],
)
def test_board_pages_refuse_invisible_characters_with_a_sentence(client, people, board, field, value):
    client.force_login(people["owner"])
    data = {"title": "Trip", "description": "", "visibility": "private", field: value}
    for url in ("/boards/new/", f"/boards/{board.pk}/edit/"):
        r = client.post(url, data)
        assert r.status_code in (200, 400), (url, r.status_code)
        page = r.content.decode()
        assert "character" in page, page
    assert not Board.objects.filter(title="Trip").exists()
    board.refresh_from_db()
    assert board.title == "Holiday"


def test_board_text_keeps_newlines_in_descriptions_and_emoji(client, people):
    client.force_login(people["owner"])
    r = client.post(
        "/boards/new/",
        {"title": "Family 👨\u200d👩\u200d👧", "description": "Day one\nDay two", "visibility": "private"},
    )
    assert r.status_code == 302
    assert Board.objects.get(title="Family 👨\u200d👩\u200d👧").description == "Day one\nDay two"


def test_pages_for_a_signed_in_person_are_never_cached(client, people, board):
    client.force_login(people["owner"])
    for url in ("/", f"/boards/{board.pk}/", "/profile/"):
        cache_control = client.get(url)["Cache-Control"]
        assert "no-store" in cache_control
        assert "private" in cache_control
    assert not Client().get("/").has_header("Cache-Control"), "anonymous public pages may be cached as usual"


def test_media_types_are_case_insensitive(client, people, board, local_aws):
    client.force_login(people["owner"])
    body = {"board": board.pk, "filename": "a.jpg", "content_type": " IMAGE/JPEG", "size": 10}
    r = client.post("/api/uploads", body, content_type="application/json")
    assert r.status_code == 201
    assert r.json()["upload"]["fields"]["Content-Type"] == "image/jpeg"
