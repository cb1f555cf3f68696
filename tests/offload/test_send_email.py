"""send_email and the site's EMAIL_BACKEND: mail really accepted by the local SES (moto) and read back.

The one stub here is SES's throttling reply (moto never throttles): a botocore ``before-send`` hook answers
SendRawEmail with SES's error document a given number of times, then lets the call through to moto.
"""

from __future__ import annotations

import base64
import email
import json
import time

import pytest
import requests
from botocore.awsrequest import AWSResponse
from django.conf import settings as django_settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from boardsite.mail.backends import MESSAGE_KEY_HEADER, MailNotSent
from deploy import resources
from devstack import provision, runner
from offload import aws, config, registry
from offload.events import sqs_event
from offload.functions import send_email
from tests.helpers import celery_worker, wait_for
from tests.mail_helpers import BACKEND, parts, sent_mail

UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://boards.example/unsubscribe/abc.def>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def message(message_id: str = "m-1", **over: object) -> dict:
    return {
        "message_id": message_id,
        "to": ["ada@example.com"],
        "subject": "Photos added to Holiday",
        "text": "3 new photos",
        "html": "<p>3 new <b>photos</b></p>",
        "headers": dict(UNSUBSCRIBE),
        **over,
    }


def event(*bodies: object) -> dict:
    return sqs_event([(f"sqs-{n}", b if isinstance(b, str) else json.dumps(b)) for n, b in enumerate(bodies)])


def sns_envelope(body: dict) -> str:
    return json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(body)})


def assert_the_mail(msg: email.message.EmailMessage, *, to: str = "ada@example.com") -> None:
    assert msg["To"] == to
    assert msg["Subject"] == "Photos added to Holiday"
    assert msg["From"] == django_settings.DEFAULT_FROM_EMAIL
    assert msg.get_content_type() == "multipart/alternative"
    assert parts(msg) == {"text/plain": "3 new photos\n", "text/html": "<p>3 new <b>photos</b></p>\n"}
    assert msg["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == UNSUBSCRIBE["List-Unsubscribe-Post"]


def send_with_django(**extra_headers: str) -> int:
    msg = EmailMultiAlternatives(
        subject="Photos added to Holiday",
        body="3 new photos",
        to=["ada@example.com"],
        headers={**UNSUBSCRIBE, **extra_headers},
    )
    msg.attach_alternative("<p>3 new <b>photos</b></p>", "text/html")
    return msg.send()


@pytest.fixture
def no_waiting(monkeypatch):
    """Record back-off delays instead of sleeping them; jitter at its upper bound so the bound is what is checked."""
    delays: list[float] = []
    monkeypatch.setattr(send_email, "sleep", delays.append)
    monkeypatch.setattr(send_email, "jitter", lambda low, high: high)
    return delays


def test_tests_keep_djangos_locmem_backend_and_the_site_uses_the_job():
    # pytest-django installs locmem for every test (mail.outbox keeps working); the site's own setting is the job.
    assert django_settings.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"
    from boardsite import settings as site_settings

    assert site_settings.EMAIL_BACKEND == BACKEND
    assert site_settings.DEFAULT_FROM_EMAIL == config.mail_from()


def test_inline_django_mail_is_accepted_by_ses(local_aws, settings):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    assert send_with_django() == 1
    (msg,) = sent_mail(local_aws)
    assert_the_mail(msg)


def test_lambda_mode_goes_through_the_topic_and_queue_to_the_function(local_aws, settings, sqs):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "lambda"}
    assert send_with_django() == 1
    assert sent_mail(local_aws) == []  # published, not sent: the function sends it
    job = registry.get("send_email")
    assert runner.poll_once(job, wait_seconds=2) == 1  # the local runner, as Lambda's SQS poller
    (msg,) = sent_mail(local_aws)
    assert_the_mail(msg)
    url = aws.queue_url(registry.queues()["BOARDSITE_MAIL_QUEUE"].resolved())
    left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert left["ApproximateNumberOfMessages"] == "0"


def test_a_password_reset_style_send_mail_keeps_working_under_locmem(db):
    # Existing code and tests that read mail.outbox are untouched by the new backend.
    mail.send_mail("Reset", "link", None, ["ada@example.com"])
    assert [m.subject for m in mail.outbox] == ["Reset"]


def test_sns_envelope_and_raw_body_are_both_accepted(local_aws):
    out = send_email.handler(event(sns_envelope(message("m-1")), message("m-2", to="bob@example.com")))
    assert out["batchItemFailures"] == []
    assert sorted(m["To"] for m in sent_mail(local_aws)) == ["ada@example.com", "bob@example.com"]


def test_a_duplicate_delivery_sends_one_mail(local_aws, settings):
    first = send_email.handler(event(sns_envelope(message("dup"))))
    again = send_email.handler(event(message("dup"), sns_envelope(message("dup"))))
    assert [r["status"] for r in first["results"]] == ["sent"]
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["batchItemFailures"] == []
    assert len(sent_mail(local_aws)) == 1
    # The same through Django: a caller's stable key makes a retried send one mail.
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    send_with_django(**{MESSAGE_KEY_HEADER: "weekly-2026-47-ada"})
    send_with_django(**{MESSAGE_KEY_HEADER: "weekly-2026-47-ada"})
    assert len(sent_mail(local_aws)) == 2
    assert MESSAGE_KEY_HEADER not in sent_mail(local_aws)[1]


def test_a_claim_left_by_a_run_that_died_is_taken_over(local_aws, s3):
    bucket = config.load().bucket
    key = f"{config.MAIL_SENT_PREFIX}fresh"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"state": "sending", "at": time.time()}))
    out = send_email.handler(event(message("fresh")))
    assert [r["status"] for r in out["results"]] == ["duplicate"]  # someone is sending it right now
    stale = time.time() - send_email.STALE_CLAIM_SECONDS - 1
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"state": "sending", "at": stale}))
    out = send_email.handler(event(message("fresh")))
    assert [r["status"] for r in out["results"]] == ["sent"]
    assert len(sent_mail(local_aws)) == 1
    assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["state"] == "sent"


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: object):
        yield self.data


def throttle(code: str, times: int) -> list[int]:
    """Stub ONLY SES's reply: SendRawEmail answers SES's throttling error ``times`` times, then moto answers."""
    calls: list[int] = []
    body = (
        '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>Maximum sending rate exceeded.</Message></Error>"
        "<RequestId>stub</RequestId></ErrorResponse>"
    ).encode()

    def hook(request, **_: object):
        calls.append(1)
        if len(calls) <= times:
            return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Body(body))
        return None

    aws.client("ses").meta.events.register("before-send.ses.SendRawEmail", hook)
    return calls


def test_a_throttled_send_is_retried_with_capped_backoff(local_aws, no_waiting):
    calls = throttle("MaxSendingRateExceeded", 3)
    out = send_email.handler(event(message("slow")))
    assert out["batchItemFailures"] == []
    assert [r["status"] for r in out["results"]] == ["sent"]
    assert len(calls) == 4
    assert no_waiting == [0.2, 0.4, 0.8]  # full jitter's upper bounds: base * 2**attempt, capped
    assert len(sent_mail(local_aws)) == 1


def test_throttled_beyond_the_retries_is_a_batch_item_failure_and_redelivery_sends(local_aws, no_waiting):
    throttle("MaxSendingRateExceeded", send_email.MAX_ATTEMPTS)
    out = send_email.handler(event(message("later")))
    assert out["batchItemFailures"] == [{"itemIdentifier": "sqs-0"}]
    assert max(no_waiting) <= send_email.BACKOFF_CAP
    assert sent_mail(local_aws) == []
    # The claim was released: SQS's redelivery sends it.
    out = send_email.handler(event(message("later")))
    assert [r["status"] for r in out["results"]] == ["sent"]
    assert len(sent_mail(local_aws)) == 1


# A message SES refuses for good, whatever the installation's state: more recipients than SES takes in one mail
# (moto refuses it as SES does, MessageRejected "Too many recipients.").
TOO_MANY = [f"p{n}@example.com" for n in range(51)]


def test_a_permanent_rejection_is_reported_not_retried(local_aws, no_waiting):
    out = send_email.handler(event(message("bad-from", to=TOO_MANY)))
    assert out["batchItemFailures"] == []  # not retried
    (result,) = out["results"]
    assert result["status"] == "rejected"
    assert result["error"].startswith("MessageRejected")
    assert no_waiting == []
    again = send_email.handler(event(message("bad-from", to=TOO_MANY)))
    assert [r["status"] for r in again["results"]] == ["duplicate"]
    assert sent_mail(local_aws) == []


def test_a_rejection_is_reported_and_a_failed_report_comes_back_until_it_is_made(local_aws, no_waiting, sqs):
    # The callback stands for the results queue being unreachable once; the rejection itself is moto's.
    reported: list[dict] = []

    def unreachable_once(result: dict) -> None:
        if not reported:
            reported.append({})
            raise ConnectionError("results queue unreachable")
        reported.append(result)

    bad = message("notification-7", to=TOO_MANY)
    first = send_email.handler(event(bad), report=unreachable_once)
    assert first["batchItemFailures"] == [{"itemIdentifier": "sqs-0"}]  # redelivered: the report is not lost
    again = send_email.handler(event(bad), report=unreachable_once)
    assert again["batchItemFailures"] == []
    assert [r["status"] for r in again["results"]] == ["duplicate"]  # SES is not asked twice
    (report,) = reported[1:]
    assert report["type"] == "mail.delivery"
    assert (report["message_id"], report["status"]) == ("notification-7", "rejected")
    assert report["error"].startswith("MessageRejected")
    # On Lambda (no callback) the report goes to the results queue.
    send_email.handler(event(bad))
    url = aws.queue_url(registry.RESULTS.resolved())
    (queued,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(queued["Body"]) == report
    assert sent_mail(local_aws) == []


def test_inline_mode_raises_on_a_rejection(local_aws, settings):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    with pytest.raises(MailNotSent, match="rejected"):
        mail.send_mail("Hi", "text", None, TOO_MANY)
    assert mail.send_mail("Hi", "text", None, TOO_MANY, fail_silently=True) == 0
    # An unverified sender is SES not being ready, not the message's fault: a transient failure, never "rejected".
    with pytest.raises(MailNotSent, match="deferred") as refused:
        mail.send_mail("Hi", "text", "someone@unverified.example", ["ada@example.com"])
    assert refused.value.status == "deferred"


def test_bad_records_are_batch_item_failures_and_the_rest_is_sent(local_aws):
    out = send_email.handler(
        event("not json", {"message_id": "no-recipient", "subject": "x", "text": "y"}, message("good"))
    )
    assert out["batchItemFailures"] == [{"itemIdentifier": "sqs-0"}, {"itemIdentifier": "sqs-1"}]
    assert [r["status"] for r in out["results"]] == ["invalid", "invalid", "sent"]
    assert len(sent_mail(local_aws)) == 1


def test_the_local_runner_leaves_a_reported_failure_on_the_queue(local_aws, sqs):
    url = aws.queue_url(registry.queues()["BOARDSITE_MAIL_QUEUE"].resolved())
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    assert runner.poll_once(registry.get("send_email"), wait_seconds=1) == 0
    # Not deleted: hidden for its visibility timeout, then redelivered (and after maxReceiveCount, the DLQ).
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_provisioning_wires_topic_queue_dlq_and_sender(local_aws, sqs):
    sns = aws.client("sns")
    (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(":boardsite-mail")]
    assert topic == django_settings.TOPIC_ARNS[registry.MAIL.setting]
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    url = aws.queue_url("boardsite-mail")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("sqs", attrs["QueueArn"])]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith(":boardsite-mail-dlq")
    assert int(attrs["VisibilityTimeout"]) == registry.visibility_timeout(registry.get("send_email"))
    identities = aws.client("ses").list_identities()["Identities"]
    assert config.mail_from() in identities
    provision.provision(origins=["http://127.0.0.1"])  # idempotent: no second subscription
    assert len(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]) == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_mode_a_real_worker_sends_it(local_aws, settings, tmp_path):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "celery"}
    with celery_worker(tmp_path, "send_email=celery"):
        assert send_with_django() == 1
        wait_for(lambda: len(sent_mail(local_aws)) == 1, timeout=60)
    (msg,) = sent_mail(local_aws)
    assert_the_mail(msg)


def encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def test_encoded_words_in_a_subject_or_header_cannot_add_headers_or_a_body(local_aws):
    """A board title like ``=?utf-8?b?DQpCY2M6…?=`` is ASCII and passes the site's checks; the header parser would
    decode it into a line break and an attacker's Bcc (found by the outside review)."""
    attack = encoded_word("\r\nBcc: evil@attacker.example\r\nContent-Type: text/html\r\n\r\n<h1>PHISH</h1>")
    out = send_email.handler(
        event(message("inject", subject=f"Trip {attack}", headers={**UNSUBSCRIBE, "X-Note": f"a {attack}"}))
    )
    assert [r["status"] for r in out["results"]] == ["sent"]
    raw = requests.get(f"{local_aws}/moto-api/data.json", timeout=10).json()["ses"]["RawMessage"]
    [stored] = raw
    head = stored["raw_data"].split("\n\n")[0]
    assert "\nBcc:" not in head
    assert "PHISH" not in stored["raw_data"].split("\n\n", 1)[1]
    assert set(stored["destinations"]) == {"ada@example.com"}  # moto lists the To header and Destinations both
    [msg] = sent_mail(local_aws)
    assert "\n" not in msg["Subject"]
    assert msg["Subject"].startswith("Trip = ?utf-8?b?")
    assert parts(msg)["text/plain"] == "3 new photos\n"


def test_line_breaks_in_a_subject_or_header_are_folded_and_the_mail_is_sent(local_aws):
    """A subject or header value with CR, LF or CRLF in it (a board title pasted with a line break) goes out on one
    line: MIME refuses a line break in a header, so without the folding the mail would be rejected, not sent."""
    out = send_email.handler(
        event(
            message(
                "crlf",
                subject="Photos added\r\nto\nHoliday",
                headers={**UNSUBSCRIBE, "X-Board": "Trip\rto\r\nthe sea"},
            )
        )
    )
    assert [r["status"] for r in out["results"]] == ["sent"]
    [msg] = sent_mail(local_aws)
    assert msg["Subject"] == "Photos added to Holiday"
    assert msg["X-Board"] == "Trip to the sea"
    assert msg["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert parts(msg)["text/plain"] == "3 new photos\n"


def test_the_list_unsubscribe_header_stays_a_plain_url_however_long(local_aws):
    """RFC 8058 one-click needs ``<https://…>`` as it is; a default policy folds a long URL into encoded words."""
    url = "<https://photos.example.com/unsubscribe/eyJ1IjoyLCJrIjoicGhvdG9zX2FkZGVkIn0:1xWTSm:1BlPpehtP2Zw_WaLToyC2QAnr-vVp1sUB3A0FGD55yA/>"
    send_email.handler(event(message("long-url", headers={**UNSUBSCRIBE, "List-Unsubscribe": url})))
    [stored] = requests.get(f"{local_aws}/moto-api/data.json", timeout=10).json()["ses"]["RawMessage"]
    assert f"\nList-Unsubscribe: {url}\n" in stored["raw_data"]


@pytest.mark.parametrize(
    "bad",
    [
        encoded_word("\r\nBcc: e@evil.example") + "@example.com",
        "owner@",  # Python's header parser fails on it with an IndexError: it was retried until the dead-letter queue
    ],
)
def test_an_address_mime_refuses_is_rejected_not_retried(local_aws, bad):
    out = send_email.handler(event(message("bad-to", to=[bad])))
    assert out["batchItemFailures"] == []
    (result,) = out["results"]
    assert result["status"] == "rejected"
    assert result["error"].startswith("Unsendable")
    assert sent_mail(local_aws) == []


# --- SES not ready yet (a new installation: identity unverified, sandbox): nothing is lost (issue 16 row 8) --------


@pytest.mark.parametrize(
    ("code", "text", "ready"),
    [
        # SES's own words in the sandbox (a recipient) or before the domain verifies (the sender).
        ("MessageRejected", "Email address is not verified. The following identities failed the check in region "
         "EU-WEST-1: ada@example.com", False),
        ("MessageRejected", "Did not have authority to send from email someone@unverified.example", False),  # moto
        ("MessageRejected", "Sending paused for this account.", False),
        ("AccessDenied", "User arn:aws:sts::1:assumed-role/x is not authorized to perform ses:SendRawEmail", False),
        ("MailFromDomainNotVerified", "", False),
        ("ConfigurationSetDoesNotExist", "", False),
        ("MessageRejected", "Too many recipients.", True),
        ("MessageRejected", "Email address is on the suppression list", True),
        ("InvalidParameterValue", "Missing final '@domain'", True),
    ],
)  # fmt: skip
def test_what_counts_as_ses_not_ready(code, text, ready):
    assert send_email.not_ready({"Code": code, "Message": text}) is not ready


def _received(sqs, *, visibility: int) -> dict:
    """The next mail-queue message as Lambda's poller hands it to the function: one record of an SQS batch."""
    url = aws.queue_url(registry.queues()["BOARDSITE_MAIL_QUEUE"].resolved())
    (msg,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], VisibilityTimeout=visibility, WaitTimeSeconds=1)[
        "Messages"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    record = {
        "messageId": msg["MessageId"],
        "receiptHandle": msg["ReceiptHandle"],
        "body": msg["Body"],
        "attributes": msg["Attributes"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
    }
    return {"Records": [record]}


def test_mail_ses_is_not_ready_to_send_waits_on_the_queue_and_goes_out_once_it_is(local_aws, sqs, s3, caplog):
    sender = "boardsite@not-yet-verified.example"  # moto refuses an unverified sender, as SES does
    url = aws.queue_url(registry.queues()["BOARDSITE_MAIL_QUEUE"].resolved())
    sqs.send_message(QueueUrl=url, MessageBody=sns_envelope(message("welcome-1", **{"from": sender})))

    batch = _received(sqs, visibility=1)
    out = send_email.handler(batch)
    assert out["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]  # back to the queue
    (result,) = out["results"]
    assert result["status"] == "deferred"
    assert "Did not have authority to send" in result["error"]
    assert sent_mail(local_aws) == []
    assert aws.list_keys(config.load().bucket, config.MAIL_SENT_PREFIX, s3) == []  # no claim, no "rejected" marker
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR" and "SES is not ready" in r.getMessage()]
    assert "sandbox" in logged.getMessage()
    assert "tried again in 5 min" in logged.getMessage()
    # Hidden for the first delay, not the 1 s it was received with: later receives find nothing yet. A probe received
    # now with the same 1 s says, on moto's own clock, when that second is over.
    probe = sqs.create_queue(QueueName="visibility-probe")["QueueUrl"]
    sqs.send_message(QueueUrl=probe, MessageBody="probe")
    assert sqs.receive_message(QueueUrl=probe, VisibilityTimeout=1)["Messages"]
    wait_for(lambda: sqs.receive_message(QueueUrl=probe, VisibilityTimeout=60).get("Messages"), timeout=10)
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []

    # The operator verifies the sender; the delay passes (here: made visible at once); the redelivery sends it.
    aws.client("ses").verify_email_identity(EmailAddress=sender)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=batch["Records"][0]["receiptHandle"], VisibilityTimeout=0)
    again = _received(sqs, visibility=60)
    assert again["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    out = send_email.handler(again)
    assert out["batchItemFailures"] == []
    assert [r["status"] for r in out["results"]] == ["sent"]
    (msg,) = sent_mail(local_aws)
    assert msg["From"] == sender


def test_the_wait_grows_with_each_receive_until_the_dead_letter_queue(local_aws, sqs):
    url = aws.queue_url(registry.queues()["BOARDSITE_MAIL_QUEUE"].resolved())
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message("m-9")))
    record = _received(sqs, visibility=60)["Records"][0]
    delays = []
    for received in range(1, resources.MAX_RECEIVES + 1):
        record["attributes"]["ApproximateReceiveCount"] = str(received)
        delays.append(send_email._defer(record))
    assert delays == sorted(delays)
    assert delays[: len(send_email.NOT_READY_DELAYS)] == list(send_email.NOT_READY_DELAYS)
    assert max(delays) <= 12 * 3600  # SQS's longest visibility timeout
    # Outside a queue (inline and Celery modes build the batch themselves) there is nothing to delay.
    assert send_email._defer({"messageId": "x", "body": "{}"}) == 0
