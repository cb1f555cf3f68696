"""The packaged artifacts, run as Lambda runs them (tests/lambda_env.py): what operators deploy is what is tested.

Each stage is packaged once per session with ``zappa package`` (cached while its inputs are unchanged), unzipped
read-only beside a runtime folder with boto3 only, and ``handler.lambda_handler`` is called in a fresh interpreter
with a clean environment: API Gateway REST (v1) and HTTP API (v2) requests, a log-in with CSRF, the upload-ticket
API, a results-queue batch with the full real-shaped ARN, the scheduled sweep, and (functions stage) S3's
ObjectCreated event against the local AWS. The database is the test database, shared with the function's process
(``transactional_db``: the rows are committed, so the other process sees them).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import requests
from django.utils import timezone
from PIL import Image as PILImage

from boardsite.core.models import JobRun
from boardsite.images.models import Image
from boardsite.images.sweep import NEVER_ARRIVED
from offload import aws as offload_aws
from offload import registry
from tests import factories, lambda_env
from tests.factories import jpeg_bytes, processing_image
from tests.helpers import database_url

ROOT = lambda_env.ROOT
PASSWORD = "a-long-artifact-password"
SECRET_KEY = "artifact-test-secret-key-from-ssm-" + "k" * 40


@pytest.fixture(scope="session")
def packaged_database_url(django_db_setup, django_db_blocker) -> str:
    """What the packaged settings name as the database: the run's PostgreSQL test database itself (the settings of
    one test run, packaged for it), or on SQLite a fixed path that each function process sees as the run's file."""
    with django_db_blocker.unblock():
        url = database_url()
    return f"sqlite:///{lambda_env.DATABASE_PATH}" if url.startswith("sqlite") else url


@pytest.fixture(scope="session")
def zappa_settings_file(tmp_path_factory, packaged_database_url) -> Path:
    """The settings an operator deploys with (``python -m deploy configure``), for a real-shaped account."""
    target = tmp_path_factory.mktemp("zappa") / "zappa_settings.json"
    return lambda_env.configure(target, database_url=packaged_database_url)


@pytest.fixture(scope="session")
def web_artifact(zappa_settings_file) -> lambda_env.Artifact:
    return lambda_env.package("web", zappa_settings_file)


@pytest.fixture(scope="session")
def web_artifact_without_domain(tmp_path_factory, packaged_database_url) -> lambda_env.Artifact:
    """The web stage of an operator who has no custom domain yet: the site is on API Gateway's own host."""
    target = tmp_path_factory.mktemp("zappa") / "zappa_settings.json"
    settings = lambda_env.configure(target, domain=None, database_url=packaged_database_url)
    return lambda_env.package("web", settings)


@pytest.fixture(scope="session")
def functions_artifact(zappa_settings_file) -> lambda_env.Artifact:
    return lambda_env.package("functions", zappa_settings_file)


def region_of(artifact: lambda_env.Artifact) -> str:
    return artifact.settings.get("aws_region", "us-east-1")


def run_database_dir() -> Path | None:
    """SQLite: the run's folder, bound where the packaged settings look. PostgreSQL: none (the URL is packaged)."""
    if not database_url().startswith("sqlite"):
        return None
    path = Path(database_url().removeprefix("sqlite:///"))
    assert path.name == lambda_env.DATABASE_PATH.name, "the packaged settings name the test database's file"
    return path.parent


@contextlib.contextmanager
def web_function(artifact: lambda_env.Artifact, endpoint: str):
    """A fresh web function (cold; SnapStart's init then restore) on the test database and the local AWS."""
    # The secret key comes from SSM as on AWS (BOARDSITE_SSM_PREFIX in the stage's environment).
    prefix = artifact.settings["environment_variables"]["BOARDSITE_SSM_PREFIX"]
    offload_aws.client("ssm").put_parameter(
        Name=f"{prefix}DJANGO_SECRET_KEY", Value=SECRET_KEY, Type="SecureString", Overwrite=True
    )
    with lambda_env.running(artifact, {"AWS_ENDPOINT_URL": endpoint}, database_dir=run_database_dir()) as proc:
        yield WebClient(proc, lambda_env.api_host(region_of(artifact)), artifact.stage)


@pytest.fixture
def web(web_artifact, local_aws, transactional_db):
    with web_function(web_artifact, local_aws) as client:
        yield client


@pytest.fixture
def functions(functions_artifact, local_aws):
    with lambda_env.running(functions_artifact, {"AWS_ENDPOINT_URL": local_aws}) as proc:
        yield proc


class WebClient:
    """A browser's view of the web function behind API Gateway: cookies kept, answers decoded.

    On the execute-api host the stage is part of the path; on a custom domain (base path mapping) it is not.
    """

    def __init__(self, proc: lambda_env.LambdaProcess, host: str, stage: str):
        self.proc, self.host, self.stage = proc, host, stage
        self.cookies: dict[str, str] = {}

    def on(self, host: str) -> WebClient:
        """The same function reached through another host (the custom domain)."""
        return WebClient(self.proc, host, self.stage)

    @property
    def custom_domain(self) -> bool:
        return not self.host.endswith(".amazonaws.com")

    def _remember(self, set_cookies: list[str]) -> None:
        for header in set_cookies:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value

    def rest(self, method: str, path: str, *, body: str | None = None, headers: dict | None = None) -> dict:
        """API Gateway REST API (payload 1.0): ``path`` without the stage, as API Gateway passes it."""
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        event = lambda_env.rest_event(method, path, host=self.host, stage=self.stage, headers=headers, body=body)
        answer = self._invoke(event)
        self._remember(answer.get("multiValueHeaders", {}).get("Set-Cookie", []))
        return answer

    def http(self, method: str, path: str, *, body: str | None = None, headers: dict | None = None) -> dict:
        """API Gateway HTTP API (payload 2.0) on its default endpoint: the raw path starts with the stage."""
        cookies = [f"{k}={v}" for k, v in self.cookies.items()]
        event = lambda_env.http_event(
            method,
            path,
            host=self.host,
            stage=self.stage,
            headers=headers,
            cookies=cookies,
            body=body,
            stage_in_path=not self.custom_domain,
        )
        answer = self._invoke(event)
        self._remember(answer.get("cookies", []))
        return answer

    def _invoke(self, event: dict) -> dict:
        answer = self.proc.invoke(event).result
        if answer.get("statusCode", 0) >= 500:  # the traceback is in the function's log, not in the page
            print(self.proc.log()[-6000:])
        return answer

    @property
    def origin(self) -> str:
        return f"https://{self.host}"


def body_of(answer: dict) -> bytes:
    raw = answer.get("body") or ""
    return base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()


def header(answer: dict, name: str) -> str:
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    return headers.get(name.lower(), "")


def static_links(html: str) -> list[str]:
    return re.findall(r'<(?:link rel="stylesheet" href|script src)="([^"]+)"', html)


def make_user(username: str):
    # The function checks the password with the site's own hashers, not the tests' fast MD5 one.
    return factories.make_user(username, password=PASSWORD, hasher="default")


@pytest.fixture
def site_hashers(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def log_in(web: WebClient, username: str) -> dict:
    form = web.rest("GET", "/login/")
    assert form["statusCode"] == 200, body_of(form)[:500]
    assert "csrftoken" in web.cookies, "the form sets the CSRF cookie"
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body_of(form)).group(1).decode()
    from urllib.parse import urlencode

    answer = web.rest(
        "POST",
        "/login/",
        body=urlencode({"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": web.origin},
    )
    return answer


# --- web stage: HTTP -----------------------------------------------------------------------------------------------


def test_rest_api_get_of_a_page(web):
    answer = web.rest("GET", "/login/")
    assert answer["statusCode"] == 200, body_of(answer)[:2000]
    assert header(answer, "Content-Type").startswith("text/html")
    html = body_of(answer).decode()
    assert 'name="csrfmiddlewaretoken"' in html
    assert static_links(html), "the page links its CSS and JS"


@pytest.mark.parametrize("api", ["rest", "http"])
def test_the_page_and_its_css_and_js_load(web, api):
    # Through the custom domain the settings were made for: there the browser's paths are the function's paths.
    site = web.on(lambda_env.DOMAIN)
    get = site.rest if api == "rest" else site.http
    page = get("GET", "/login/")
    assert page["statusCode"] == 200, body_of(page)[:1000]
    links = static_links(body_of(page).decode())
    kinds = set()
    for link in links:
        assert link.startswith("/static/"), f"served by the function itself (WhiteNoise): {link}"
        answer = get("GET", link)
        assert answer["statusCode"] == 200, (link, answer["statusCode"])
        content_type = header(answer, "Content-Type")
        body = body_of(answer)
        assert body, link
        assert "immutable" in header(answer, "Cache-Control"), "hashed names are cached for good"
        if link.endswith(".css"):
            assert content_type.startswith("text/css"), content_type
            assert b"{" in body
            kinds.add("css")
        elif link.endswith(".js"):
            assert "javascript" in content_type, content_type
            assert b"function" in body or b"=>" in body
            kinds.add("js")
    assert kinds == {"css", "js"}


@pytest.mark.parametrize("api", ["rest", "http"])
def test_without_a_custom_domain_the_links_carry_the_stage(
    web_artifact_without_domain, local_aws, transactional_db, api
):
    # On https://<api>.execute-api.<region>.amazonaws.com/web/login/ a browser asks API Gateway for each link as
    # written: a link without the stage would get API Gateway's 403 before the function runs.
    with web_function(web_artifact_without_domain, local_aws) as web:
        get = web.rest if api == "rest" else web.http
        page = get("GET", "/login/")
        assert page["statusCode"] == 200, body_of(page)[:1000]
        links = static_links(body_of(page).decode())
        assert links
        for link in links:
            assert link.startswith(f"/{web.stage}/static/"), link
            answer = get("GET", link.removeprefix(f"/{web.stage}"))  # API Gateway passes the path without it
            assert answer["statusCode"] == 200, (link, answer["statusCode"])
            assert body_of(answer)


def test_http_api_get_of_a_page(web):
    answer = web.http("GET", "/login/")
    assert answer["statusCode"] == 200, body_of(answer)[:2000]
    assert header(answer, "Content-Type").startswith("text/html")
    assert b'name="csrfmiddlewaretoken"' in body_of(answer)
    # Zappa 0.63 returns each v2 cookie with a leading space (and twice); browsers trim it.
    assert any(c.strip().startswith("csrftoken=") for c in answer["cookies"]), "v2 cookies come in the cookies list"


def test_login_with_csrf(web, site_hashers):
    make_user("ada")
    answer = log_in(web, "ada")
    assert answer["statusCode"] == 302, body_of(answer)[:1000]
    assert header(answer, "Location") in ("/", f"/{web.stage}/")
    assert "sessionid" in web.cookies
    home = web.rest("GET", "/")
    assert home["statusCode"] == 200
    assert b"ada" in body_of(home), "logged in: the page names the person"


def test_a_post_without_the_csrf_token_is_refused(web, site_hashers):
    make_user("bob")
    web.rest("GET", "/login/")
    answer = web.rest(
        "POST",
        "/login/",
        body=f"username=bob&password={PASSWORD}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": web.origin},
    )
    assert answer["statusCode"] == 403
    assert "sessionid" not in web.cookies


def test_upload_ticket_api(web, site_hashers, local_aws):
    from boardsite.boards.services import board_create

    user = make_user("carol")
    board = board_create(user=user, title="Trip", visibility="private")
    assert log_in(web, "carol")["statusCode"] == 302
    payload = {"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": 12345}
    answer = web.http(
        "POST",
        "/api/uploads",
        body=json.dumps(payload),
        headers={"Content-Type": "application/json", "X-CSRFToken": web.cookies["csrftoken"], "Origin": web.origin},
    )
    assert answer["statusCode"] == 201, body_of(answer)[:1000]
    ticket = json.loads(body_of(answer))
    image = Image.objects.get(pk=ticket["image"]["id"])
    assert image.status == "pending"
    assert image.board_id == board.pk
    assert ticket["upload"]["fields"]["key"] == image.original_key
    assert ticket["upload"]["url"].startswith(local_aws), "the presigned POST points at the configured S3"


# --- web stage: events ---------------------------------------------------------------------------------------------


def ready_result(image: Image) -> dict:
    base = f"variants/{image.board_id}/{image.pk}/"
    return {
        "type": "image.processed",
        "image_id": str(image.pk),
        "board_id": image.board_id,
        "key": image.original_key,
        "status": "ready",
        "width": 800,
        "height": 1200,
        "source_etag": '"abc"',
        "placeholder": "data:image/webp;base64,AAAA",
        "dominant_color": "#dc1e1e",
        "variants": [
            {"name": n, "key": f"{base}{n}.{f}", "width": 320, "height": 480, "format": f}
            for n in ("thumb", "medium", "large")
            for f in ("webp", "jpeg")
        ],
    }


def results_queue_arn(artifact: lambda_env.Artifact) -> str:
    """The ARN the settings subscribe the web function to (the results queue in the operator's account)."""
    name = registry.queues()["BOARDSITE_RESULTS_QUEUE"].name
    arns = [e["event_source"]["arn"] for e in artifact.settings["events"] if "event_source" in e]
    (arn,) = [a for a in arns if a.endswith(f":{name}")]
    assert arn == f"arn:aws:sqs:{region_of(artifact)}:{lambda_env.TEST_ACCOUNT}:{name}", arn
    return arn


def test_a_results_batch_applies_the_good_record(web, web_artifact):
    from boardsite.boards.services import board_create

    user = make_user("dan")
    board = board_create(user=user, title="Results", visibility="private")
    image = processing_image(board, user, declared_size=100)
    event = lambda_env.sqs_event(
        results_queue_arn(web_artifact), [json.dumps(ready_result(image)), "{not json"], region_of(web_artifact)
    )
    answer = web.proc.invoke(event)
    assert answer.result is not None, "a batch routed nowhere returns None and SQS deletes it: a silent drop"
    image.refresh_from_db()
    assert image.status == "ready"
    assert (image.width, image.height) == (800, 1200)
    assert image.variants.count() == 6
    # The entry point measured the batch as a Lambda run of apply_results (one record failed: so did the run).
    run = JobRun.objects.get(job="apply_results")
    assert (run.runtime, run.outcome, run.error_class) == ("lambda", "failed", "BatchItemFailures")


def test_a_results_batch_reports_the_bad_record(web, web_artifact):
    from boardsite.boards.services import board_create

    user = make_user("erin")
    board = board_create(user=user, title="Results", visibility="private")
    image = processing_image(board, user, declared_size=100)
    event = lambda_env.sqs_event(
        results_queue_arn(web_artifact), [json.dumps(ready_result(image)), "{not json"], region_of(web_artifact)
    )
    answer = web.proc.invoke(event)
    bad = event["Records"][1]["messageId"]
    assert answer.result["batchItemFailures"] == [{"itemIdentifier": bad}]
    image.refresh_from_db()
    assert image.status == "ready"


def test_a_mail_feedback_batch_suppresses_in_the_packaged_site(web, web_artifact):
    # SES's bounce notification in SNS's envelope, on the feedback queue's exact ARN: Zappa routes it to
    # apply_mail_feedback, which suppresses the address and reports the malformed record.
    from boardsite.mail.models import Suppression

    name = registry.queues()["BOARDSITE_MAIL_FEEDBACK_QUEUE"].name
    arns = [e["event_source"]["arn"] for e in web_artifact.settings["events"] if "event_source" in e]
    (arn,) = [a for a in arns if a.endswith(f":{name}")]
    bounce = {
        "notificationType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "Gone@Example.org"}]},
        "mail": {"destination": ["Gone@Example.org"]},
    }
    envelope = json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(bounce)})
    event = lambda_env.sqs_event(arn, [envelope, "{not json"], region_of(web_artifact))
    answer = web.proc.invoke(event)
    assert answer.result is not None, "a batch routed nowhere returns None and SQS deletes it: a silent drop"
    assert answer.result["batchItemFailures"] == [{"itemIdentifier": event["Records"][1]["messageId"]}]
    assert Suppression.objects.filter(address_key="gone@example.org", reason="bounce").exists()


def test_a_batch_from_another_queue_arn_is_not_applied(web, web_artifact):
    from boardsite.boards.services import board_create

    user = make_user("fay")
    board = board_create(user=user, title="Elsewhere", visibility="private")
    image = processing_image(board, user, declared_size=100)
    moto_arn = results_queue_arn(web_artifact).replace(lambda_env.TEST_ACCOUNT, lambda_env.MOTO_ACCOUNT)
    answer = web.proc.invoke(lambda_env.sqs_event(moto_arn, [json.dumps(ready_result(image))], "us-east-1"))
    assert answer.result is None  # Zappa finds no function for an unknown ARN: routing is by the exact ARN
    image.refresh_from_db()
    assert image.status == "processing"
    assert not JobRun.objects.filter(job="apply_results").exists(), "nothing ran: no run recorded"


def test_the_scheduled_sweep(web, web_artifact):
    from boardsite.boards.services import board_create

    user = make_user("gus")
    board = board_create(user=user, title="Sweep", visibility="private")
    stale = factories.make_image(
        board,
        user,
        status="pending",
        filename="never.jpg",
        declared_size=10,
        size=None,
        created_at=timezone.now() - dt.timedelta(minutes=30),
    )
    rule = lambda_env.schedule_rule_name(web_artifact.function_name, "boardsite.images.sweep.handler")
    answer = web.proc.invoke(lambda_env.scheduled_event(rule, region_of(web_artifact)))
    assert answer.result is not None, "the schedule was routed to the sweep"
    assert answer.result["never_arrived"] == 1, answer.result
    stale.refresh_from_db()
    assert (stale.status, stale.error) == ("failed", NEVER_ARRIVED)
    run = JobRun.objects.get(job="sweep_uploads")
    assert (run.runtime, run.outcome) == ("lambda", "ok")


def test_zappa_manage_runs_management_commands_in_the_function(web):
    # `zappa manage web migrate` invokes the function with {"manage": "migrate"}: migrations run inside the VPC, with
    # the packaged settings and the SSM password. The command's output goes to the function's log (CloudWatch).
    answer = web.proc.invoke({"manage": "showmigrations images"})
    assert answer.result == {}
    assert "[X] 0004_" in web.proc.log(), "the packaged migrations, applied on the function's database"
    answer = web.proc.invoke({"manage": "migrate --noinput"})
    assert answer.result == {}
    assert "No migrations to apply." in web.proc.log()


def test_the_health_check_answers_through_api_gateway(web):
    # What `python -m deploy check web` reads after a deploy (DEPLOY.md §6): secrets in, database migrated.
    answer = web.rest("GET", "/healthz")
    assert answer["statusCode"] == 200, body_of(answer)[:2000]
    assert json.loads(body_of(answer))["status"] == "ok"


def test_the_web_zip_carries_the_rds_ca_bundle(web_artifact):
    # sslmode=verify-full checks the database against it (boardsite/settings.py): nothing is downloaded on Lambda.
    shipped = web_artifact.task / "boardsite" / "rds-ca-bundle.pem"
    assert (
        shipped.read_bytes() == (Path(__file__).resolve().parents[2] / "boardsite" / "rds-ca-bundle.pem").read_bytes()
    )


def test_check_deploy_passes_inside_the_artifact(web):
    # `zappa manage web "check --deploy --fail-level WARNING"`: the stage's own environment, settings and secrets.
    answer = web.proc.invoke({"manage": "check --deploy --fail-level WARNING"}, raise_errors=False)
    assert answer.error is None, answer.error
    assert "System check identified no issues" in web.proc.log()


# --- functions stage -----------------------------------------------------------------------------------------------


def test_s3_object_created_makes_variants_and_reports(functions, functions_artifact, s3, sqs):
    bucket, board_id, image_id = (
        functions_artifact.settings["environment_variables"]["BOARDSITE_BUCKET"],
        7,
        uuid.uuid4(),
    )
    key = f"originals/{board_id}/{image_id}.jpg"
    data = jpeg_bytes()
    # As the browser's presigned POST stores it (the ticket pins the declared size in the metadata).
    s3.put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg", Metadata={"declared-size": str(len(data))}
    )
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    queue_url = offload_aws.queue_url(registry.queues()["BOARDSITE_RESULTS_QUEUE"].name)
    sqs.purge_queue(QueueUrl=queue_url)

    event = lambda_env.s3_event(
        bucket, key, len(data), etag, region_of(functions_artifact), configuration_id=functions_artifact.function_name
    )
    answer = functions.invoke(event)
    assert answer.result is not None, "the S3 event was routed to process_image"

    listed = {
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"variants/{board_id}/{image_id}/")["Contents"]
    }
    assert len([k for k in listed if k.endswith((".webp", ".jpg", ".jpeg"))]) == 6, (listed, answer.result)
    some = sorted(k for k in listed if k.endswith(".jpg"))[0]
    with PILImage.open(s3.get_object(Bucket=bucket, Key=some)["Body"]) as im:
        assert im.format == "JPEG"

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    results = [r for r in bodies if r.get("type") != registry.JOB_RUN]
    assert [(r["image_id"], r["status"]) for r in results] == [(str(image_id), "ready")]
    # The packaged entry point measured the run and sent its record beside the result (offload/runs.py).
    runs = [r for r in bodies if r.get("type") == registry.JOB_RUN]
    assert [(r["job"], r["runtime"], r["outcome"]) for r in runs] == [("process_image", "lambda", "ok")]
    assert {v["key"] for v in results[0]["variants"]} <= listed


def test_the_functions_zip_carries_no_django(functions_artifact):
    assert not (functions_artifact.task / "django").exists()
    assert not (functions_artifact.task / "boardsite").exists()
    assert (functions_artifact.task / "offload" / "functions" / "process_image.py").is_file()


def test_a_mail_batch_is_sent_by_the_packaged_function(functions, functions_artifact, local_aws):
    """The zip's send_email, routed by the mail queue's ARN: SES (moto) accepts the good record; the bad one is the
    only batch item failure."""
    name = registry.queues()["BOARDSITE_MAIL_QUEUE"].name
    arns = [e["event_source"]["arn"] for e in functions_artifact.settings["events"] if "event_source" in e]
    (arn,) = [a for a in arns if a.endswith(f":{name}")]
    good = {
        "message_id": f"artifact-{uuid.uuid4()}",
        "to": ["ada@example.com"],
        "subject": "From the zip",
        "text": "plain",
        "html": "<p>html</p>",
        "headers": {"List-Unsubscribe": "<https://x.example/u>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    }
    # The template's MailIdentity: the site's domain, verified in the function's region (moto verifies at once).
    sender = functions_artifact.settings["environment_variables"]["BOARDSITE_MAIL_FROM"]
    ses = offload_aws.make_client("ses", region_of(functions_artifact), local_aws)
    ses.verify_domain_identity(Domain=sender.rpartition("@")[2])
    envelope = json.dumps({"Type": "Notification", "Message": json.dumps(good)})
    event = lambda_env.sqs_event(arn, [envelope, "{not json"], region_of(functions_artifact))
    answer = functions.invoke(event)
    assert answer.result is not None, "a batch routed nowhere returns None and SQS deletes it: a silent drop"
    bad_id = event["Records"][1]["messageId"]
    assert answer.result["batchItemFailures"] == [{"itemIdentifier": bad_id}], functions.log()[-3000:]
    raw = requests.get(f"{local_aws}/moto-api/data.json", timeout=10).json()["ses"]["RawMessage"]
    assert [m["raw_data"].count("Subject: From the zip") for m in raw] == [1], answer.result["results"][0]


def test_the_packaged_function_answers_a_ticket_request_from_its_function_url(functions_artifact, local_aws, sqs):
    """A function URL's request (payload 2.0) reaches the ticket function through the zip's entry point: a grant the
    site signed yields a ticket pinned to its board, reported as image.ticketed and measured as a Lambda run; a
    tampered grant and an unknown path are refused."""
    import time

    from offload import grants

    key = "artifact-" + "k" * 40
    grant = grants.Grant(
        id=str(uuid.uuid4()), user=3, board=7, role="contributor", tickets=2, bytes=10_000, max_file=10_000,
        issued_at=time.time(), expires_at=time.time() + 600, route={"baseline": "lambda"},
    )  # fmt: skip
    token = grants.sign(grant, key)
    queue_url = offload_aws.queue_url(registry.queues()["BOARDSITE_RESULTS_QUEUE"].name)
    sqs.purge_queue(QueueUrl=queue_url)

    def request(path: str, body: dict) -> dict:
        return {
            "version": "2.0",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "203.0.113.9"}},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }

    photo = {"board": 7, "filename": "a.jpg", "content_type": "image/jpeg", "size": 1000}
    with lambda_env.running(functions_artifact, {"AWS_ENDPOINT_URL": local_aws, "UPLOAD_GRANT_KEY": key}) as fn:
        answer = fn.invoke(request("/tickets", {"grant": token, **photo})).result
        assert answer["statusCode"] == 201, answer
        ticket = json.loads(answer["body"])
        assert re.fullmatch(r"originals/lambda/7/[0-9a-f-]{36}\.jpg", ticket["upload"]["fields"]["key"])
        assert ticket["image"]["complete_url"] is None
        refused = fn.invoke(request("/tickets", {"grant": token[:-3] + "abc", **photo})).result
        assert refused["statusCode"] == 403
        assert fn.invoke(request("/elsewhere", {})).result["statusCode"] == 404
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [b["image_id"] for b in bodies if b.get("type") == "image.ticketed"] == [ticket["image"]["id"]]
    runs = [(b["job"], b["runtime"]) for b in bodies if b.get("type") == registry.JOB_RUN]
    assert ("issue_upload_ticket", "lambda") in runs
