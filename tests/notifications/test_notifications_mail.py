"""The ``mail_notifications`` job: due notifications rendered, handed to send_email and really accepted by the local
SES (moto's server), read back from ``/moto-api/data.json``; in inline, lambda and celery mode.

Nothing is stubbed: moto's SES refusing a sender that is not a verified identity is the real rejection used here.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import time
from email import policy
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone

from boardsite.boards.models import Membership
from boardsite.core import results as image_results
from boardsite.mail.models import Suppression
from boardsite.notifications import mailer, services
from boardsite.notifications.models import Delivery, Kind, MailState, Notification
from devstack import runner
from offload import aws, registry
from offload.events import sqs_event
from offload.results import MAIL_RESULT_TYPE
from tests.factories import confirm_address, members
from tests.helpers import celery_worker, wait_for

BACKEND = "boardsite.mail.backends.JobEmailBackend"
SITE = "https://boards.example"
UNVERIFIED = "someone@unverified.example"
# An address SES would refuse for good (moto: "Missing domain"): the job refuses it before SES sees it
# (mailformat.recipient_problem), a rejection for good all the same. An unverified sender is no such refusal: SES is
# not ready yet, and the mail waits (offload/functions/send_email.py).
REFUSED = "<owner@>"


def sent_mail(endpoint: str) -> list[email.message.EmailMessage]:
    """What the local SES accepted, parsed. Retried: moto's data.json can fail while another request changes S3."""
    for attempt in range(5):
        try:
            raw = requests.get(f"{endpoint}/moto-api/data.json", timeout=10).json()["ses"]["RawMessage"]
            break
        except ValueError:
            if attempt == 4:
                raise
            time.sleep(0.2)
    return [email.message_from_string(m["raw_data"], policy=policy.default) for m in raw]


def parts(msg: email.message.EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}


def mode(settings, send_email: str) -> None:
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": send_email}


@pytest.fixture
def mailing(local_aws, settings):
    """The site's real mail path (the send_email job) with links to ``SITE``; send_email inline unless changed."""
    settings.EMAIL_BACKEND = BACKEND
    settings.SITE_URL = SITE
    mode(settings, "inline")
    return local_aws


def photos_burst(board, actor, t0: dt.datetime, n: int = 5, gap: int = 30) -> dt.datetime:
    """``n`` photos by ``actor``, ``gap`` seconds apart; returns the time of the last one."""
    for i in range(n):
        services.notify_photos_added(
            board=board, actor=actor, recipients=members(board), now=t0 + dt.timedelta(seconds=gap * i)
        )
    return t0 + dt.timedelta(seconds=gap * (n - 1))


def quiet(last: dt.datetime) -> dt.datetime:
    return last + dt.timedelta(seconds=services.NOTIFY_BURST_SECONDS)


def row(user, kind: str = Kind.PHOTOS_ADDED) -> Notification:
    return Notification.objects.get(user=user, kind=kind)


def results_queue_drain() -> list[dict]:
    """Apply what is on the results queue with the site's ``apply_results`` handler, as Lambda would."""
    sqs = aws.client("sqs")
    url = aws.queue_url(registry.RESULTS.resolved())
    reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = reply.get("Messages", [])
    if messages:
        out = image_results.handler(sqs_event([(m["MessageId"], m["Body"]) for m in messages]))
        assert out["batchItemFailures"] == []
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    # The runs' own records (offload/runs.py) travel there too; the jobs' results are what these tests read.
    return [body for m in messages if (body := json.loads(m["Body"])).get("type") != registry.JOB_RUN]


@pytest.mark.django_db
def test_a_burst_is_one_mail_once_quiet_with_both_parts_links_and_a_working_one_click_unsubscribe(
    mailing, board, people, client
):
    confirm_address(people["owner"], "owner@example.org")  # the viewer has no confirmed address: no mail
    t0 = timezone.now()
    last = photos_burst(board, people["contributor"], t0)
    assert mailer.notifications_mail_due(now=quiet(last) - dt.timedelta(seconds=1)) == {}
    assert sent_mail(mailing) == []  # still a burst: nothing before it went quiet

    assert mailer.notifications_mail_due(now=quiet(last)) == {"sent": 1}
    (msg,) = sent_mail(mailing)
    assert msg["To"] == "owner@example.org"
    assert msg["Subject"] == "contributor added 5 photos to Holiday"
    body = parts(msg)
    board_url = f"{SITE}/boards/{board.pk}/"
    assert "contributor added 5 photos to Holiday." in body["text/plain"]
    assert board_url in body["text/plain"]
    assert f'<a href="{board_url}">Holiday</a>' in body["text/html"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{SITE}/")
    assert unsubscribe in body["text/plain"]
    assert "X-Boardsite-Message-Key" not in msg
    assert row(people["owner"]).mail_state == MailState.SENT
    assert row(people["viewer"]).mail_state == MailState.NONE

    # RFC 8058 one-click: a POST to the header's URL, no log-in, no cookie.
    response = client.post(urlsplit(unsubscribe).path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert services.delivery_for(people["owner"], Kind.PHOTOS_ADDED) == Delivery.OFF

    # A re-run mails nothing more, and the next burst is not mailed: the owner unsubscribed.
    assert mailer.notifications_mail_due(now=quiet(last) + dt.timedelta(minutes=5)) == {}
    photos_burst(board, people["contributor"], quiet(last) + dt.timedelta(minutes=10), n=1)
    assert mailer.notifications_mail_due(now=quiet(last) + dt.timedelta(hours=1)) == {}
    assert len(sent_mail(mailing)) == 1


@pytest.mark.django_db
def test_board_added_and_upload_failed_mails(mailing, board, people):
    owner = people["owner"]
    confirm_address(owner, "owner@example.org")
    services.preference_set(user=owner, kind=Kind.UPLOAD_FAILED, delivery=Delivery.IMMEDIATELY)
    t0 = timezone.now()
    services.notify(
        user=owner, kind=Kind.BOARD_ADDED, board=board, actor=people["viewer"], data={"role": "contributor"}, now=t0
    )
    services.notify(
        user=owner,
        kind=Kind.UPLOAD_FAILED,
        board=board,
        data={"filename": "beach.heic", "reason": "Not a photo we can read."},
        now=t0,
    )
    assert mailer.notifications_mail_due(now=t0) == {"sent": 2}
    by_subject = {m["Subject"]: parts(m)["text/plain"] for m in sent_mail(mailing)}
    assert set(by_subject) == {"viewer added you to Holiday", "Your upload beach.heic to Holiday failed"}
    assert "added you to Holiday as contributor" in by_subject["viewer added you to Holiday"]
    assert "Not a photo we can read." in by_subject["Your upload beach.heic to Holiday failed"]


@pytest.mark.django_db
@pytest.mark.parametrize("delivery", [Delivery.DIGEST, Delivery.OFF])
def test_a_choice_changed_before_the_mail_was_due_skips_it(mailing, board, people, delivery):
    confirm_address(people["owner"], "owner@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=2)
    assert row(people["owner"]).mail_state == MailState.DUE
    services.preference_set(user=people["owner"], kind=Kind.PHOTOS_ADDED, delivery=delivery)
    assert mailer.notifications_mail_due(now=quiet(last)) == {"skipped": 1}
    owner_row = row(people["owner"])
    assert (owner_row.mail_state, owner_row.mail_error) == (MailState.SKIPPED, mailer.NOT_CHOSEN)
    assert sent_mail(mailing) == []


@pytest.mark.django_db
def test_no_confirmed_address_suppressed_or_no_longer_a_member_is_not_mailed(mailing, board, people):
    owner, viewer, contributor = people["owner"], people["viewer"], people["contributor"]
    confirm_address(owner, "owner@example.org")
    confirm_address(viewer, "viewer@example.org")
    confirm_address(people["stranger"], "stranger@example.org")
    t0 = timezone.now()
    last = photos_burst(board, contributor, t0, n=1)
    services.notify(user=people["stranger"], kind=Kind.BOARD_ADDED, board=board, actor=owner, now=t0)
    # Since it was recorded: the owner's address bounced, the viewer left, the stranger's address was removed.
    Suppression.objects.create(address_key="owner@example.org", reason="bounce")
    Membership.objects.filter(board=board, user=viewer).delete()
    people["stranger"].email = ""
    people["stranger"].save(update_fields=["email"])
    assert mailer.notifications_mail_due(now=quiet(last)) == {"skipped": 3}
    assert row(owner).mail_error == mailer.NO_ADDRESS
    assert row(viewer).mail_error == mailer.NO_ACCESS
    assert row(people["stranger"], Kind.BOARD_ADDED).mail_error == mailer.NO_ADDRESS
    assert sent_mail(mailing) == []


@pytest.mark.django_db
def test_two_runs_at_once_and_a_run_that_died_after_claiming_send_one_mail(mailing, board, people):
    confirm_address(people["owner"], "owner@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=1)
    now = quiet(last)
    owner_row = row(people["owner"])
    # Two runs read the same due row; the second one's compare-and-set finds it claimed.
    assert mailer._mail_one(owner_row.pk, MailState.DUE, owner_row.mail_due_at, now) == "sent"
    assert mailer._mail_one(owner_row.pk, MailState.DUE, owner_row.mail_due_at, now) == "taken"
    assert len(sent_mail(mailing)) == 1

    # A run that claimed the next notification, handed its mail over and died before recording it.
    services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board, actor=people["viewer"], now=now)
    died = row(people["owner"], Kind.BOARD_ADDED)
    lease = now + dt.timedelta(seconds=mailer.CLAIM_SECONDS)
    Notification.objects.filter(pk=died.pk).update(mail_state=MailState.SENDING, mail_due_at=lease)
    mailer.notification_mail(died, "owner@example.org").send()
    assert len(sent_mail(mailing)) == 2
    assert mailer.notifications_mail_due(now=lease - dt.timedelta(seconds=1)) == {}  # its lease still holds
    assert mailer.notifications_mail_due(now=lease) == {"sent": 1}  # taken over...
    assert len(sent_mail(mailing)) == 2  # ...and send_email, by the message key, sent nothing again
    assert row(people["owner"], Kind.BOARD_ADDED).mail_state == MailState.SENT


@pytest.mark.django_db
def test_inline_a_rejected_mail_is_recorded_and_not_retried(mailing, board, people, settings):
    confirm_address(people["owner"], REFUSED)
    last = photos_burst(board, people["contributor"], timezone.now(), n=2)
    assert mailer.notifications_mail_due(now=quiet(last)) == {"rejected": 1}
    owner_row = row(people["owner"])
    assert owner_row.mail_state == MailState.REJECTED
    assert owner_row.mail_error.startswith("Unsendable: cannot mail '<owner@>': it is not an email address")
    assert mailer.notifications_mail_due(now=quiet(last) + dt.timedelta(days=1)) == {}
    assert sent_mail(mailing) == []


@pytest.mark.django_db
def test_until_ses_verifies_the_sender_a_mail_stays_due_and_goes_out_once_it_has(mailing, board, people, settings):
    settings.DEFAULT_FROM_EMAIL = UNVERIFIED  # moto's SES refuses a sender it has not verified, as SES does
    confirm_address(people["owner"], "owner@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=2)
    assert mailer.notifications_mail_due(now=quiet(last)) == {"retry": 1}  # SES not ready: never "rejected"
    owner_row = row(people["owner"])
    assert owner_row.mail_state == MailState.DUE
    aws.client("ses").verify_email_identity(EmailAddress=UNVERIFIED)  # the operator's DNS records verified
    assert mailer.notifications_mail_due(now=owner_row.mail_due_at) == {"sent": 1}
    assert len(sent_mail(mailing)) == 1


@pytest.mark.django_db
def test_a_transient_failure_leaves_it_due_with_back_off_and_the_next_run_sends(mailing, board, people, settings):
    confirm_address(people["owner"], "owner@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=1)
    now = quiet(last)
    # Lambda mode with a topic that does not exist: SNS answers NotFound (a real error from the local AWS).
    mode(settings, "lambda")
    good_topic = settings.TOPIC_ARNS[registry.MAIL.setting]
    settings.TOPIC_ARNS[registry.MAIL.setting] = good_topic + "-missing"
    assert mailer.notifications_mail_due(now=now) == {"retry": 1}
    owner_row = row(people["owner"])
    assert owner_row.mail_state == MailState.DUE
    assert "NotFound" in owner_row.mail_error
    wait = (owner_row.mail_due_at - now).total_seconds()
    assert mailer.RETRY_MIN_SECONDS <= wait <= mailer.RETRY_MAX_SECONDS
    assert mailer.notifications_mail_due(now=owner_row.mail_due_at - dt.timedelta(seconds=1)) == {}  # backing off
    settings.TOPIC_ARNS[registry.MAIL.setting] = good_topic
    mode(settings, "inline")
    assert mailer.notifications_mail_due(now=owner_row.mail_due_at) == {"sent": 1}
    assert len(sent_mail(mailing)) == 1


@pytest.mark.django_db
def test_lambda_mode_topic_queue_function_and_the_rejection_back_through_the_results_queue(
    mailing, board, people, settings
):
    mode(settings, "lambda")
    confirm_address(people["owner"], "owner@example.org")
    confirm_address(people["viewer"], "viewer@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=3)
    assert mailer.notifications_mail_due(now=quiet(last)) == {"sent": 2}  # handed to the topic
    assert sent_mail(mailing) == []
    assert runner.poll_once(registry.get("send_email"), wait_seconds=2) == 2  # as Lambda's SQS poller
    assert sorted(m["To"] for m in sent_mail(mailing)) == ["owner@example.org", "viewer@example.org"]
    assert {m["Subject"] for m in sent_mail(mailing)} == {"contributor added 3 photos to Holiday"}
    assert results_queue_drain() == []  # nothing to report for mail that was sent

    # SES refuses the next one in the functions Lambda: the rejection travels back through the results queue.
    confirm_address(people["owner"], REFUSED)
    services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board, actor=people["viewer"], now=last)
    assert mailer.notifications_mail_due(now=quiet(last)) == {"sent": 1}
    board_added = row(people["owner"], Kind.BOARD_ADDED)
    assert board_added.mail_state == MailState.SENT
    assert runner.poll_once(registry.get("send_email"), wait_seconds=2) == 1  # rejected, not retried
    (report,) = results_queue_drain()
    assert report["type"] == MAIL_RESULT_TYPE
    assert report["message_id"] == mailer.message_key(board_added.pk)
    board_added.refresh_from_db()
    assert board_added.mail_state == MailState.REJECTED
    assert board_added.mail_error.startswith("Unsendable: cannot mail '<owner@>': it is not an email address")
    assert mailer.notification_mail_result_apply(result=report) is False  # a repeated report changes nothing
    assert len(sent_mail(mailing)) == 2


@pytest.mark.django_db
def test_a_report_for_mail_that_is_not_a_notification_is_ignored(people):
    result = {"type": MAIL_RESULT_TYPE, "message_id": "password-reset-1", "status": "rejected", "error": "x"}
    assert mailer.notification_mail_result_apply(result=result) is False
    out = image_results.handler(sqs_event([("m-1", json.dumps(result))]))
    assert out == {"applied": 0, "batchItemFailures": []}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_mode_a_real_worker_sends_it_and_reports_a_rejection(mailing, board, people, settings, tmp_path):
    mode(settings, "celery")
    confirm_address(people["owner"], "owner@example.org")
    last = photos_burst(board, people["contributor"], timezone.now(), n=2)
    with celery_worker(tmp_path, "send_email=celery"):
        assert mailer.notifications_mail_due(now=quiet(last)) == {"sent": 1}  # enqueued
        wait_for(lambda: len(sent_mail(mailing)) == 1, timeout=60)
        (msg,) = sent_mail(mailing)
        assert (msg["To"], msg["Subject"]) == ("owner@example.org", "contributor added 2 photos to Holiday")

        # The worker's send is refused: its report goes where apply_results runs (lambda: the results queue).
        confirm_address(people["owner"], REFUSED)
        services.notify(user=people["owner"], kind=Kind.BOARD_ADDED, board=board, actor=people["viewer"], now=last)
        assert mailer.notifications_mail_due(now=quiet(last)) == {"sent": 1}
        reports: list[dict] = []
        wait_for(lambda: reports.extend(results_queue_drain()) or reports, timeout=60)
    assert [r["status"] for r in reports] == ["rejected"]
    board_added = row(people["owner"], Kind.BOARD_ADDED)
    assert board_added.mail_state == MailState.REJECTED
    assert board_added.mail_error.startswith("Unsendable: cannot mail '<owner@>': it is not an email address")
    assert len(sent_mail(mailing)) == 1


def test_the_job_is_scheduled_every_minute_on_the_web_side():
    job = registry.get("mail_notifications")
    assert (job.side, job.handler) == ("web", "boardsite.notifications.mailer.handler")
    assert (job.trigger.expression, job.trigger.every_seconds) == ("rate(1 minute)", 60)
    assert job.resolve() is mailer.handler
