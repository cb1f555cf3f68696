"""Bounces and complaints: SES's notifications through the local SNS topic and SQS queue become suppressed addresses.

The local SES (moto) publishes a notification to the identity's notification topic when mail goes to the mailbox
simulator's bounce@ / complaint@ addresses (moto/ses/models.py ``__process_sns_feedback__``), so the end-to-end tests
send real mail there. moto's notification is AWS's documented example, fixed: it names the example recipients
(recipient1@example.com, recipient2@example.com), not the address mailed; those are the addresses suppressed. The
tests that need a given address publish an SES notification of AWS's documented shape (docs: "Amazon SNS
notification contents for Amazon SES") to the real local SNS topic instead. Nothing is stubbed.
"""

from __future__ import annotations

import json

import pytest
from django.core.mail import EmailMultiAlternatives

from boardsite.mail import feedback
from boardsite.mail.models import Suppression
from devstack import runner
from offload import aws, config, registry
from offload.events import sqs_event

BACKEND = "boardsite.mail.backends.JobEmailBackend"


def ses_notification(kind: str, address: str, **over: object) -> dict:
    """An SES identity notification as AWS documents it (mail object trimmed to what matters here)."""
    mail = {
        "timestamp": "2026-11-23T10:00:00.000Z",
        "messageId": "0000014a-f4d4-4f89-93f4-7ea3e1d3d5a3-000000",
        "source": config.mail_from(),
        "destination": [address],
    }
    if kind == "Bounce":
        body = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": address, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
            "timestamp": "2026-11-23T10:00:01.000Z",
            "feedbackId": "0000014a-f4d4-bounce",
        }
        return {"notificationType": "Bounce", "bounce": {**body, **over}, "mail": mail}
    body = {
        "complainedRecipients": [{"emailAddress": address}],
        "complaintFeedbackType": "abuse",
        "timestamp": "2026-11-23T10:00:01.000Z",
        "feedbackId": "0000014a-f4d4-complaint",
    }
    return {"notificationType": "Complaint", "complaint": {**body, **over}, "mail": mail}


def publish(notification: dict) -> None:
    """As SES does: to the feedback topic (the real local SNS, which delivers to the subscribed queue)."""
    sns = aws.client("sns")
    topic = next(
        t["TopicArn"]
        for t in sns.list_topics()["Topics"]
        if t["TopicArn"].endswith(":" + registry.MAIL_FEEDBACK.resolved())
    )
    sns.publish(TopicArn=topic, Message=json.dumps(notification))


def drain() -> int:
    """The local runner polls the feedback queue as Lambda's poller would; returns the messages handled."""
    job = registry.get("apply_mail_feedback")
    return runner.poll_once(job, wait_seconds=1)


def send_to(address: str) -> None:
    msg = EmailMultiAlternatives(subject="Photos added", body="3 new photos", to=[address])
    assert msg.send() == 1


def queue_depth(queue: str) -> int:
    sqs = aws.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=aws.queue_url(queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_provisioning_points_the_identitys_bounces_and_complaints_at_the_feedback_topic(local_aws):
    ses = aws.client("ses")
    domain = config.mail_from().rpartition("@")[2]
    attrs = ses.get_identity_notification_attributes(Identities=[domain])
    assert domain in attrs["NotificationAttributes"]
    sns = aws.client("sns")
    topic = f"arn:aws:sns:us-east-1:123456789012:{registry.MAIL_FEEDBACK.resolved()}"
    subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Endpoint"].rsplit(":", 1)[1] for s in subs] == [
        registry.queues()["BOARDSITE_MAIL_FEEDBACK_QUEUE"].resolved()
    ]


@pytest.mark.django_db
def test_mail_to_the_bounce_simulator_suppresses_end_to_end(local_aws, settings):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    send_to("bounce@simulator.amazonses.com")
    assert drain() == 1
    # moto's notification is AWS's documented example: it names these recipients, whatever was mailed.
    rows = {s.address_key: s for s in Suppression.objects.all()}
    assert set(rows) == {"recipient1@example.com", "recipient2@example.com"}
    assert rows["recipient1@example.com"].reason == "bounce"
    assert "550 user unknown" in rows["recipient1@example.com"].detail


@pytest.mark.django_db
def test_mail_to_the_complaint_simulator_suppresses_end_to_end(local_aws, settings):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    send_to("complaint@simulator.amazonses.com")
    assert drain() == 1
    (row,) = Suppression.objects.all()
    assert (row.address_key, row.reason) == ("recipient1@example.com", "complaint")
    assert "abuse" in row.detail


@pytest.mark.django_db
def test_a_documented_permanent_bounce_through_the_topic_suppresses_that_address(local_aws):
    publish(ses_notification("Bounce", "Gone.Person@Example.org"))
    assert drain() == 1
    (row,) = Suppression.objects.all()
    assert (row.address_key, row.reason) == ("gone.person@example.org", "bounce")
    assert "550 5.1.1" in row.detail
    assert queue_depth(registry.queues()["BOARDSITE_MAIL_FEEDBACK_QUEUE"].resolved()) == 0
    # SNS or SQS may deliver twice: the second changes nothing.
    publish(ses_notification("Bounce", "gone.person@example.org"))
    assert drain() == 1
    assert Suppression.objects.count() == 1


@pytest.mark.django_db
def test_transient_and_undetermined_bounces_are_not_suppressed(local_aws):
    publish(ses_notification("Bounce", "full@example.org", bounceType="Transient", bounceSubType="MailboxFull"))
    publish(ses_notification("Bounce", "odd@example.org", bounceType="Undetermined"))
    assert drain() == 2
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_complaint_after_a_bounce_is_what_the_row_says(local_aws):
    publish(ses_notification("Bounce", "ada@example.org"))
    publish(ses_notification("Complaint", "ada@example.org"))
    assert drain() == 2
    (row,) = Suppression.objects.all()
    assert row.reason == "complaint"


@pytest.mark.django_db
def test_raw_bodies_and_configuration_set_events_are_read_too():
    event_shape = ses_notification("Complaint", "c@example.org")
    event_shape["eventType"] = event_shape.pop("notificationType")
    out = feedback.handler(
        sqs_event(
            [("m-1", json.dumps(ses_notification("Bounce", "raw@example.org"))), ("m-2", json.dumps(event_shape))]
        )
    )
    assert out == {"suppressed": 2, "batchItemFailures": []}
    assert set(Suppression.objects.values_list("address_key", flat=True)) == {"raw@example.org", "c@example.org"}


@pytest.mark.django_db
def test_malformed_messages_are_reported_and_the_rest_of_the_batch_applied():
    bounce_without_recipients = ses_notification("Bounce", "x@example.org")
    bounce_without_recipients["bounce"]["bouncedRecipients"] = []
    bodies = [
        ("bad-json", "{not json"),
        ("bad-envelope", json.dumps({"Type": "Notification", "Message": "plain words"})),
        ("no-type", json.dumps({"mail": {}})),
        ("no-recipients", json.dumps(bounce_without_recipients)),
        ("good", json.dumps({"Type": "Notification", "Message": json.dumps(ses_notification("Bounce", "ok@x.org"))})),
        ("delivery", json.dumps({"notificationType": "Delivery", "delivery": {}})),  # nothing to do, not a failure
    ]
    out = feedback.handler(sqs_event(bodies))
    assert out["suppressed"] == 1
    assert out["batchItemFailures"] == [
        {"itemIdentifier": i} for i in ("bad-json", "bad-envelope", "no-type", "no-recipients")
    ]
    assert list(Suppression.objects.values_list("address_key", flat=True)) == ["ok@x.org"]
    # A batch of nothing but failures raises, so a single-message caller (the local runner) sees it fail too.
    with pytest.raises(feedback.BatchFailed):
        feedback.handler(sqs_event([("bad", "[]")]))


@pytest.mark.django_db
def test_a_malformed_notification_ends_on_the_dead_letter_queue(local_aws):
    # Published to the real topic; each receive runs the handler, which reports it failed, so it is not deleted. As
    # Lambda's poller does, only with no visibility timeout so the test need not wait: after MAX_RECEIVES receives
    # SQS moves it to the feedback queue's dead-letter queue instead of handing it out forever.
    sqs = aws.client("sqs")
    name = registry.queues()["BOARDSITE_MAIL_FEEDBACK_QUEUE"].resolved()
    url = aws.queue_url(name)
    publish({"neither": "notificationType nor eventType"})
    receives = 0
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        if not got:
            break
        receives += 1
        (message,) = got
        with pytest.raises(feedback.BatchFailed):
            feedback.handler(sqs_event([(message["MessageId"], message["Body"])]))
    assert receives == 5
    assert queue_depth(name) == 0
    assert queue_depth(f"{name}-dlq") == 1
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_suppressed_address_gets_no_notifications_and_its_owner_is_told(local_aws, settings):
    from django.contrib.auth import get_user_model
    from django.core import mail
    from django.test import Client

    from boardsite.accounts import emails
    from boardsite.notifications.services import mail_address

    user = get_user_model().objects.create_user(username="ada", password="a-long-test-password")
    c = Client()
    c.post("/login/", {"username": "ada", "password": "a-long-test-password"})
    c.post("/profile/email/", {"email": "ada@example.org", "password": "a-long-test-password"})
    (confirm,) = mail.outbox
    token = confirm.body.split("/email/confirm/")[1].split("/")[0]
    c.post(f"/email/confirm/{token}/")
    user.refresh_from_db()
    assert mail_address(user) == "ada@example.org"
    assert "data-suppressed" not in c.get("/profile/").content.decode()

    publish(ses_notification("Bounce", "ada@example.org"))
    assert drain() == 1
    assert mail_address(user) is None
    page = c.get("/profile/").content.decode()
    assert 'data-suppressed="bounce"' in page
    assert "add another address below and confirm it" in page

    # Password reset and confirmation mails to it are skipped, with the same answers as ever.
    mail.outbox.clear()
    r = Client().post("/password/reset/", {"email": "ADA@example.org"})
    assert r.status_code == 302
    emails.email_request(user=user, address="ada@example.org")  # asking for it again: not mailed
    assert mail.outbox == []

    # A different address, once confirmed, is mailed again.
    c.post("/profile/email/", {"email": "ada@new.example.org", "password": "a-long-test-password"})
    (confirm,) = mail.outbox
    token = confirm.body.split("/email/confirm/")[1].split("/")[0]
    c.post(f"/email/confirm/{token}/")
    user.refresh_from_db()
    assert mail_address(user) == "ada@new.example.org"
    assert "data-suppressed" not in c.get("/profile/").content.decode()
