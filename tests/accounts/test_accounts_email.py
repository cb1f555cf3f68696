"""Email addresses of accounts (issue 9, "Accounts"): sign-up with an address, change + confirm by a signed link,
password reset by email (Django's views), no account enumeration, a prompt for users without an address.

Mail goes through Django's configured EMAIL_BACKEND: the test run's locmem outbox (pytest-django)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.test import Client

from boardsite.accounts import emails
from boardsite.accounts.models import Profile

pytestmark = pytest.mark.django_db

User = get_user_model()
PASSWORD = "a-long-test-password"
NEW_PASSWORD = "another-long-secret-42"


def sign_up(client: Client, username: str, email: str = "", **extra: str):
    form = {"username": username, "email": email, "password": PASSWORD, "password_again": PASSWORD, **extra}
    return client.post("/signup/", form)


def link_in(message: mail.EmailMessage) -> str:
    """The path of the one http link in a mail's body."""
    urls = re.findall(r"https?://[^\s]+", message.body)
    assert len(urls) == 1, message.body
    return re.sub(r"^https?://[^/]+", "", urls[0])


def confirm(client: Client, path: str):
    page = client.get(path)
    assert page.status_code == 200, page.content.decode()
    return client.post(path)


def test_sign_up_with_an_email_address_confirms_it_by_the_mailed_link():
    c = Client()
    assert sign_up(c, "grace", "Grace@Example.org").status_code == 302
    user = User.objects.get(username="grace")
    assert user.email == ""  # not used before it is confirmed
    assert user.profile.pending_email == "Grace@Example.org"
    assert emails.confirmed_email(user) is None
    [message] = mail.outbox
    assert message.to == ["Grace@Example.org"]
    assert "Confirm" in message.subject

    page = c.get(link_in(message))
    assert "Grace@Example.org" in page.content.decode()
    assert emails.confirmed_email(User.objects.get(pk=user.pk)) is None  # GET (a mail scanner) confirms nothing
    r = c.post(link_in(message))
    assert r.status_code == 302
    user.refresh_from_db()
    assert (user.email, emails.confirmed_email(user)) == ("Grace@Example.org", "Grace@Example.org")
    assert user.profile.pending_email == ""
    assert "Grace@Example.org" in c.get("/profile/").content.decode()


@pytest.mark.parametrize("bad", ["not-an-address", "a@", "@b.org", "a b@c.org"])
def test_sign_up_refuses_a_malformed_address(bad):
    r = sign_up(Client(), "grace", bad)
    assert r.status_code == 200
    assert "valid email address" in r.content.decode()
    assert not User.objects.exists()
    assert mail.outbox == []


def test_changed_address_is_used_only_after_confirmation_and_the_link_works_without_login():
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    confirm(c, link_in(mail.outbox[0]))
    mail.outbox.clear()

    r = c.post("/profile/email/", {"email": "hopper@example.net", "password": PASSWORD})
    assert r.status_code == 302
    user = User.objects.get(username="grace")
    assert user.email == "grace@example.org"  # the old address until the new one is confirmed
    [message] = mail.outbox
    assert message.to == ["hopper@example.net"]
    assert "hopper@example.net" in c.get("/profile/").content.decode()  # shown as waiting

    assert confirm(Client(), link_in(message)).status_code == 302  # another browser, not logged in
    user.refresh_from_db()
    assert emails.confirmed_email(user) == "hopper@example.net"


def test_a_used_link_is_refused():
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    path = link_in(mail.outbox[0])
    confirm(c, path)
    assert c.get(path).status_code == 400
    r = c.post(path)
    assert r.status_code == 400
    assert emails.INVALID in r.content.decode()


def test_an_older_link_is_refused_once_a_newer_one_was_sent():
    c = Client()
    sign_up(c, "grace", "first@example.org")
    old = link_in(mail.outbox[0])
    c.post("/profile/email/", {"email": "second@example.org", "password": PASSWORD})
    assert c.post(old).status_code == 400
    assert emails.confirmed_email(User.objects.get(username="grace")) is None
    assert confirm(c, link_in(mail.outbox[1])).status_code == 302
    assert emails.confirmed_email(User.objects.get(username="grace")) == "second@example.org"


def test_an_expired_link_is_refused(settings, monkeypatch):
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    path = link_in(mail.outbox[0])
    real_time = signing.time.time
    monkeypatch.setattr(signing.time, "time", lambda: real_time() + emails.EMAIL_CONFIRM_MAX_AGE + 60)
    r = c.post(path)
    assert r.status_code == 400
    assert emails.EXPIRED in r.content.decode()
    assert emails.confirmed_email(User.objects.get(username="grace")) is None


@pytest.mark.parametrize("tamper", ["signature", "payload", "other-key", "other-salt"])
def test_a_tampered_link_is_refused(tamper):
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    sign_up(Client(), "mallory", "mallory@example.org")
    mallory = Profile.objects.get(user__username="mallory")
    token = link_in(mail.outbox[0]).rstrip("/").rsplit("/", 1)[1]
    payload, stamp, signature = token.rsplit(":", 2)
    wanted = {"u": mallory.user_id, "e": "mallory@example.org", "n": mallory.email_nonce}
    salt = "boardsite.accounts.emails.confirm"
    if tamper == "signature":
        forged = f"{payload}:{stamp}:{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
    elif tamper == "payload":  # mallory's payload under grace's signature
        other = signing.TimestampSigner(key="not-the-site-key", salt=salt).sign_object(wanted, compress=True)
        forged = f"{other.rsplit(':', 2)[0]}:{stamp}:{signature}"
    elif tamper == "other-key":
        forged = signing.TimestampSigner(key="not-the-site-key", salt=salt).sign_object(wanted, compress=True)
    else:  # a value signed with the site key for another purpose
        forged = signing.TimestampSigner(salt="boardsite.accounts.throttle.device").sign_object(wanted)
    r = c.post(f"/email/confirm/{forged}/")
    assert r.status_code == 400
    assert emails.INVALID in r.content.decode()
    assert not Profile.objects.exclude(email_key=None).exists()


def test_a_confirmed_address_is_one_accounts_whatever_its_case_and_the_page_does_not_tell():
    owner = Client()
    sign_up(owner, "grace", "grace@example.org")
    confirm(owner, link_in(mail.outbox[0]))
    mail.outbox.clear()

    other = Client()
    r = sign_up(other, "mallory", "GRACE@Example.ORG")
    assert r.status_code == 302  # the same answer as for a free address: no enumeration
    [message] = mail.outbox  # the address's owner is told, and gets no link
    assert message.to == ["GRACE@Example.ORG"]
    assert "already belongs to another" in message.body
    assert "http" not in message.body
    assert emails.confirmed_email(User.objects.get(username="mallory")) is None

    # Even a link made for it (e.g. before the other account confirmed) is refused.
    profile = Profile.objects.get(user__username="mallory")
    r = other.post(f"/email/confirm/{emails.make_token(profile)}/")
    assert r.status_code == 400
    assert emails.TAKEN in r.content.decode()


def test_reset_by_email_end_to_end():
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    confirm(c, link_in(mail.outbox[0]))
    c.post("/logout/")
    mail.outbox.clear()

    r = Client().post("/password/reset/", {"email": "Grace@EXAMPLE.org"})
    assert r.status_code == 302
    assert r["Location"] == "/password/reset/sent/"
    [message] = mail.outbox
    assert message.to == ["grace@example.org"]
    assert "grace" in message.body

    browser = Client()
    page = browser.get(link_in(message), follow=True)  # Django moves the token into the session and redirects
    assert "Choose a new password" in page.content.decode()
    r = browser.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert r.status_code == 302
    assert r["Location"] == "/password/reset/done/"

    assert Client().post("/login/", {"username": "grace", "password": PASSWORD}).status_code == 200  # refused
    assert Client().post("/login/", {"username": "grace", "password": NEW_PASSWORD}).status_code == 302
    # The link works once.
    again = Client().get(link_in(message), follow=True)
    assert "does not work" in again.content.decode()


def test_reset_gives_the_same_answer_for_any_address_and_mails_only_confirmed_ones():
    c = Client()
    sign_up(c, "grace", "grace@example.org")
    confirm(c, link_in(mail.outbox[0]))
    sign_up(Client(), "pending", "pending@example.org")  # typed, never confirmed
    User.objects.create_user(username="admin-set", email="adminset@example.org", password=PASSWORD)
    mail.outbox.clear()

    answers = []
    for address in ("grace@example.org", "nobody@example.org", "pending@example.org", "adminset@example.org"):
        r = Client().post("/password/reset/", {"email": address})
        answers.append((r.status_code, r["Location"], Client().get(r["Location"]).content))
    assert len(set(answers)) == 1
    assert [m.to for m in mail.outbox] == [["grace@example.org"]]


def test_reset_is_throttled_per_address_and_per_network(settings):
    settings.PASSWORD_RESET_RATE = "3/h"
    for i in range(3):
        r = Client(REMOTE_ADDR="203.0.113.9").post("/password/reset/", {"email": f"n{i}@example.org"})
        assert r.status_code == 302
    r = Client(REMOTE_ADDR="203.0.113.9").post("/password/reset/", {"email": "n9@example.org"})
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    assert "Too many requests" in r.content.decode()
    # One address from one network: limited (a stranger cannot flood someone's mailbox) ...
    stranger = Client(REMOTE_ADDR="198.51.100.1")
    codes = [stranger.post("/password/reset/", {"email": "victim@example.org"}).status_code for _ in range(4)]
    assert codes == [302, 302, 302, 429]
    # ... but that does not keep the address's owner, elsewhere, from asking (per address *and* requester).
    owner = Client(REMOTE_ADDR="192.0.2.77")
    assert owner.post("/password/reset/", {"email": "victim@example.org"}).status_code == 302


def test_users_without_an_address_still_log_in_and_are_prompted():
    User.objects.create_user(username="old-timer", password=PASSWORD)  # from before addresses were asked
    c = Client()
    r = c.post("/login/", {"username": "old-timer", "password": PASSWORD}, follow=True)
    assert r.status_code == 200
    assert "Add an email address on your profile" in r.content.decode()
    page = c.get("/profile/").content.decode()
    assert 'data-prompt="email"' in page
    # Once confirmed, no prompt.
    c.post("/profile/email/", {"email": "old@example.org", "password": PASSWORD})
    confirm(c, link_in(mail.outbox[-1]))
    c.post("/logout/")
    r = c.post("/login/", {"username": "old-timer", "password": PASSWORD}, follow=True)
    assert "Add an email address" not in r.content.decode()
    assert 'data-prompt="email"' not in c.get("/profile/").content.decode()


def test_sign_up_asks_for_an_address():
    r = sign_up(Client(), "grace")
    assert r.status_code == 200
    assert "This field is required" in r.content.decode()
    assert not User.objects.filter(username="grace").exists()
    assert mail.outbox == []


def logged_in_without_address(username: str, **client: str) -> Client:
    """An account from before sign-up asked for an address."""
    User.objects.create_user(username=username, password=PASSWORD)
    c = Client(**client)
    assert c.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return c


def test_profile_refuses_a_malformed_address():
    c = logged_in_without_address("grace")
    r = c.post("/profile/email/", {"email": "nope", "password": PASSWORD})
    assert r.status_code == 400
    assert "valid email address" in r.content.decode()
    assert mail.outbox == []


def test_asking_for_confirmation_mails_is_throttled_per_account_and_per_address(settings):
    settings.PASSWORD_RESET_RATE = "2/h"
    users = []
    for i in range(3):
        users.append(logged_in_without_address(f"user{i}", REMOTE_ADDR=f"192.0.2.{i}"))
    assert [
        users[0].post("/profile/email/", {"email": f"a{i}@example.org", "password": PASSWORD}).status_code
        for i in range(3)
    ] == [
        302,
        302,
        429,
    ]
    # Per address *and* network: another network's requests for a0 do not use up this one's (a stranger asking for
    # someone's address cannot keep its owner from asking), but each network is held to the rate.
    assert users[1].post("/profile/email/", {"email": "a0@example.org", "password": PASSWORD}).status_code == 302
    assert users[1].post("/profile/email/", {"email": "a0@example.org", "password": PASSWORD}).status_code == 302
    assert users[1].post("/profile/email/", {"email": "a0@example.org", "password": PASSWORD}).status_code == 429
    assert users[2].post("/profile/email/", {"email": "a0@example.org", "password": PASSWORD}).status_code == 302
    assert [m.to for m in mail.outbox] == [
        ["a0@example.org"],
        ["a1@example.org"],
        ["a0@example.org"],
        ["a0@example.org"],
        ["a0@example.org"],
    ]


def test_a_reset_ends_the_accounts_lock_out(settings):
    c = Client(REMOTE_ADDR="203.0.113.50")
    sign_up(c, "grace", "grace@example.org")
    confirm(c, link_in(mail.outbox[0]))
    c.post("/logout/")
    mail.outbox.clear()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        Client(REMOTE_ADDR="203.0.113.50").post("/login/", {"username": "grace", "password": "wrong-guess"})
    assert (
        Client(REMOTE_ADDR="198.51.100.7").post("/login/", {"username": "grace", "password": PASSWORD}).status_code
        == 429
    )

    Client().post("/password/reset/", {"email": "grace@example.org"})
    browser = Client()
    page = browser.get(link_in(mail.outbox[0]), follow=True)
    browser.post(page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    r = Client(REMOTE_ADDR="198.51.100.7").post("/login/", {"username": "grace", "password": NEW_PASSWORD})
    assert r.status_code == 302


def test_an_address_with_an_encoded_word_is_refused():
    with pytest.raises(ValidationError, match="cannot receive mail"):
        emails.clean_address("=?utf-8?b?DQpCY2M6IGVAZQ==?=@example.com")
