"""Shadow runs of send_email: the shadow renders the mail exactly as it would be sent and never sends it; the pair is
compared by the digest the real run keeps in its marker (offload/functions/send_email.py, boardsite/control/shadow.py
``compare_mail``). Mail really goes to the local SES (moto's server), which is how "never sent" is checked."""

from __future__ import annotations

import json

import pytest
from django.core.mail import EmailMultiAlternatives
from django.test import Client

from boardsite.control import shadow
from boardsite.core import jobs, routing
from boardsite.core.models import JobRun, ShadowPair
from boardsite.mail.backends import MailNotSent
from devstack import runner
from offload import aws, registry
from offload.config import MAIL_SENT_PREFIX
from offload.events import mark_shadow, shadow_mark, sqs_event
from tests.factories import make_user
from tests.helpers import Now
from tests.mail_helpers import BACKEND, sent_mail


@pytest.fixture
def mail_site(local_aws, settings, monkeypatch, db):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline", "apply_results": "inline"}
    monkeypatch.setattr(jobs, "SHADOW_EXECUTOR", Now())
    return local_aws


def send(to: str = "ada@example.com", subject: str = "Photos added to Holiday") -> None:
    msg = EmailMultiAlternatives(subject=subject, body="3 new photos", to=[to])
    msg.attach_alternative("<p>3 new <b>photos</b></p>", "text/html")
    assert msg.send() == 1


def test_a_shadow_of_a_mail_renders_it_never_sends_it_and_agrees(mail_site):
    routing.route_set(job="send_email", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    send()
    assert len(sent_mail(mail_site)) == 1, "the real run sent it; the shadow did not"
    pair = ShadowPair.objects.get()
    assert (pair.primary_runtime, pair.shadow_runtime, pair.noise) == ("inline", "inline", True)
    assert pair.shadow_result["status"] == "rendered"
    assert pair.agreed is True, pair.comparison
    assert pair.comparison["checks"]["message"]["passed"] is True
    found = aws.client("s3").get_object(Bucket=aws.config.load().bucket, Key=f"{MAIL_SENT_PREFIX}{pair.unit}")
    marker = json.loads(found["Body"].read())
    assert marker["digest"] == pair.shadow_result["digest"]
    assert JobRun.objects.filter(job="send_email", shadow=True).count() == 1
    assert JobRun.objects.filter(job="send_email", shadow=False).count() == 1


def test_a_shadow_on_lambda_goes_through_the_mail_queue_and_sends_nothing(mail_site, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "apply_results": "lambda"}
    routing.route_set(job="send_email", by="ada", source="page", why="shadow", canary="lambda", shadow_share=10_000)
    for n in range(12):
        send(to=f"person{n}@example.com")
    assert len(sent_mail(mail_site)) == 12
    mail, apply = registry.get("send_email"), registry.get("apply_results")
    while runner.poll_once(mail, wait_seconds=0):  # Lambda's part, locally: the shadow runs, from the mail queue
        pass
    while runner.poll_once(apply, wait_seconds=0):  # their reports
        pass
    assert len(sent_mail(mail_site)) == 12, "no shadow run sent a mail"
    pairs = list(ShadowPair.objects.all())
    assert len(pairs) == 12
    assert {(p.primary_runtime, p.shadow_runtime) for p in pairs if not p.noise} == {("inline", "lambda")}
    assert all(p.agreed for p in pairs), [p.comparison for p in pairs if not p.agreed]
    assert JobRun.objects.filter(job="send_email", runtime="lambda", shadow=True).count() == len(
        [p for p in pairs if not p.noise]
    )


def test_a_refused_address_is_refused_by_both_and_a_different_message_is_a_disagreement(mail_site, settings):
    routing.route_set(job="send_email", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    with pytest.raises(MailNotSent, match="Unsendable"):  # refused for good by the job, before SES sees it
        send(to="<owner@>")
    refused = ShadowPair.objects.get()
    assert refused.shadow_result["status"] == "rejected"
    assert refused.agreed is True, refused.comparison
    assert "rejected / rejected" in refused.comparison["checks"]["outcome"]["found"]
    # What another runtime might render (another library version): other bytes for the same message.
    send()
    pair = ShadowPair.objects.exclude(pk=refused.pk).get()
    pair.shadow_result = {**pair.shadow_result, "digest": "0" * 64}
    pair.save()
    assert shadow.compare(pair)
    pair.refresh_from_db()
    assert pair.agreed is False
    assert pair.comparison["checks"]["message"]["passed"] is False
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    page = staff.get("/control/jobs/send_email/").content.decode()
    assert f"{pair.unit}: inline vs inline" in page
    assert "message: differs" in page


def test_the_mark_travels_in_each_queued_body_and_only_there():
    event = sqs_event([("m-1", json.dumps({"message_id": "m-1"})), ("m-2", "not json")])
    assert shadow_mark(event) is None
    marked = mark_shadow(event, {"pair": "p"})
    assert shadow_mark(marked) == {"pair": "p"}
    assert json.loads(marked["Records"][0]["body"])["boardsite_shadow"] == {"pair": "p"}
    assert marked["Records"][1]["body"] == "not json"  # a body that is not an object is left as it is
    assert shadow_mark({"Records": [marked["Records"][0]]}) == {"pair": "p"}  # one record, as the handler sees it
    assert shadow_mark(event) is None, "the original event is not changed"
