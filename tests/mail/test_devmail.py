"""/dev/mail/: the mail the local SES accepted, for staff with DEBUG on; a 404 for everyone else."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.test import Client

from boardsite.mail import devmail

pytestmark = pytest.mark.django_db

BACKEND = "boardsite.mail.backends.JobEmailBackend"
PASSWORD = "a-long-test-password"


def client_for(username: str, *, staff: bool) -> Client:
    get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=staff)
    c = Client()
    assert c.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return c


def send(subject: str, html: str = "<p>3 new <b>photos</b></p>") -> None:
    msg = EmailMultiAlternatives(
        subject=subject,
        body="3 new photos\nhttp://127.0.0.1:8000/boards/1/",
        to=["ada@example.com"],
        headers={
            "List-Unsubscribe": "<http://127.0.0.1:8000/unsubscribe/tok/>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    msg.attach_alternative(html, "text/html")
    assert msg.send() == 1


def test_it_is_a_404_for_anonymous_non_staff_and_without_debug(settings, local_aws):
    settings.DEBUG = True
    assert Client().get("/dev/mail/").status_code == 404  # not a redirect to log in: nothing says it exists
    assert client_for("someone", staff=False).get("/dev/mail/").status_code == 404
    staff = client_for("staffer", staff=True)
    assert staff.get("/dev/mail/").status_code == 200
    settings.DEBUG = False
    assert staff.get("/dev/mail/").status_code == 404


def test_it_lists_real_mail_from_the_local_ses_newest_first(settings, local_aws):
    settings.EMAIL_BACKEND = BACKEND
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    send("First mail")
    send("Photos added to Holiday", html='<p onclick="x()">hi</p><script>alert("mail")</script>')
    settings.DEBUG = True
    page = client_for("staffer", staff=True).get("/dev/mail/").content.decode()
    assert page.index("Photos added to Holiday") < page.index("First mail")
    assert "ada@example.com" in page
    assert settings.DEFAULT_FROM_EMAIL in page
    assert "3 new photos" in page
    # The headers, the unsubscribe ones included.
    assert "List-Unsubscribe-Post" in page
    assert "&lt;http://127.0.0.1:8000/unsubscribe/tok/&gt;" in page
    # The HTML part only as escaped source: never markup of the page.
    assert '<script>alert("mail")</script>' not in page
    assert "&lt;script&gt;alert(&quot;mail&quot;)&lt;/script&gt;" in page
    assert "<p onclick" not in page


def test_a_local_aws_that_does_not_answer_is_said_on_the_page(settings, db):
    settings.DEBUG = True
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    page = client_for("staffer", staff=True).get("/dev/mail/")
    assert page.status_code == 200
    assert "did not answer" in page.content.decode()
    with pytest.raises(devmail.LocalSESUnavailable):
        devmail.local_mail("http://127.0.0.1:9")


def test_the_demo_user_is_staff_only_with_debug(settings):
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("demo")
    assert not get_user_model().objects.get(username="demo").is_staff
    settings.DEBUG = True
    call_command("demo")
    assert get_user_model().objects.get(username="demo").is_staff
