"""Invitations to a board by email address (issue 20): the whole path through the site's pages, the real mail path
(the send_email job, inline, into the local SES on moto's server, read back from ``/moto-api/data.json``), the real
throttles in the shared cache. Nothing of ours is stubbed."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from boardsite.accounts import emails
from boardsite.boards.models import Membership, Role
from boardsite.core.errors import Forbidden
from boardsite.invitations import services
from boardsite.invitations.models import Invitation, Status
from boardsite.mail.models import Suppression
from boardsite.notifications.models import Kind, Notification
from tests.factories import PASSWORD, confirm_address, make_board, make_user
from tests.mail_helpers import BACKEND, parts, sent_mail

pytestmark = pytest.mark.django_db
User = get_user_model()
SITE = "https://boards.example"
NEW = "newcomer@example.org"
KNOWN = "known@example.org"


@pytest.fixture
def mailing(local_aws, settings):
    """The site's real mail path, send_email inline, links on ``SITE``; no padding (one test checks it)."""
    settings.EMAIL_BACKEND = BACKEND
    settings.SITE_URL = SITE
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    settings.INVITATION_MIN_SECONDS = 0
    return local_aws


@pytest.fixture
def known(db):
    """An account that has confirmed ``KNOWN``."""
    user = make_user("known")
    confirm_address(user, KNOWN)
    return user


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def invite(c: Client, board, email: str, role: str = Role.CONTRIBUTOR):
    return c.post(f"/boards/{board.pk}/invitations/", {"email": email, "role": role}, follow=True)


def mail_to(endpoint: str, address: str) -> list:
    return [m for m in sent_mail(endpoint) if m["To"] == address]


def link_path(msg) -> str:
    [url] = re.findall(r"https?://\S+", parts(msg)["text/plain"])
    assert url.startswith(SITE + "/invitations/"), url
    return url[len(SITE) :]


def sign_up(c: Client, path: str, username: str = "newcomer", **extra: str):
    form = {"username": username, "password": PASSWORD, "password_again": PASSWORD, **extra}
    return c.post(path, form)


def shows(response, sentence: str) -> bool:
    return html.escape(sentence) in response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_new_address_signs_up_through_the_link_confirmed_and_lands_on_the_board(mailing, people, board):
    r = invite(client_for(people["owner"]), board, NEW, Role.VIEWER)
    assert messages_of(r) == [f"Invitation sent to {NEW}."]
    [msg] = mail_to(mailing, NEW)
    assert "owner invited you" in msg["Subject"]
    assert "Holiday" in msg["Subject"]
    assert "create your account" in parts(msg)["text/plain"]
    path = link_path(msg)

    c = Client()
    page = c.get(path)
    assert page.status_code == 200
    assert NEW in page.content.decode()
    assert "Holiday" in page.content.decode()
    assert not User.objects.filter(username="newcomer").exists()  # a GET (a mail scanner) makes nothing
    r = sign_up(c, path)
    assert r.status_code == 302
    assert r["Location"] == f"/boards/{board.pk}/"
    user = User.objects.get(username="newcomer")
    assert emails.confirmed_email(user) == NEW  # confirmed by following the link: no second mail to confirm it
    assert Membership.objects.get(board=board, user=user).role == Role.VIEWER
    assert Invitation.objects.get().status == Status.ACCEPTED
    assert c.get(f"/boards/{board.pk}/").status_code == 200  # logged in, a member
    assert [m["To"] for m in sent_mail(mailing)] == [NEW]  # only the invitation: no confirmation mail


def test_an_existing_confirmed_address_gets_the_link_and_accepts_into_its_account(mailing, people, board, known):
    invite(client_for(people["owner"]), board, KNOWN)
    assert not Membership.objects.filter(user=known).exists()  # not at once: the members list would tell the owner
    [msg] = mail_to(mailing, KNOWN)
    assert "already have a boardsite account" in parts(msg)["text/plain"]
    path = link_path(msg)

    signed_out = Client().get(path).content.decode()
    assert f"/login/?next={path}" in signed_out
    c = client_for(known)
    page = c.get(path)
    assert "Accept as known" in page.content.decode()
    assert not Membership.objects.filter(user=known).exists()  # only the POST accepts
    r = c.post(path)
    assert r.status_code == 302
    assert r["Location"] == f"/boards/{board.pk}/"
    assert Membership.objects.get(board=board, user=known).role == Role.CONTRIBUTOR
    # The notification an owner's adding makes (boards.signals.member_added, as adding by name).
    note = Notification.objects.get(user=known, kind=Kind.BOARD_ADDED)
    assert (note.board, note.actor, note.data["role"]) == (board, people["owner"], Role.CONTRIBUTOR)


def test_an_existing_account_hears_of_its_invitation_in_the_site_and_nobody_else_does(mailing, people, board, known):
    owner = client_for(people["owner"])
    confirm_address(people["viewer"], "viewer@example.org")
    for address in (KNOWN, NEW, "viewer@example.org"):
        invite(owner, board, address)
    # Only the account that is not a member yet; the private board is named (the mail named it too).
    [note] = Notification.objects.filter(kind=Kind.BOARD_INVITED)
    assert (note.user, note.board, note.actor, note.mail_state) == (known, board, people["owner"], "")
    c = client_for(known)
    listed = c.get("/notifications/").content.decode()
    assert "owner invited you to Holiday as contributor" in listed
    assert 'href="/invitations/"' not in listed  # an unread one is a POST to mark it read, then there:
    r = c.post(f"/notifications/{note.pk}/read/")
    assert r["Location"] == "/invitations/"
    assert "Holiday" in c.get("/invitations/").content.decode()
    # Its mail is the invitation's: the notification mailer never sends one, and there is no choice to make.
    assert len(mail_to(mailing, KNOWN)) == 1
    assert Kind.BOARD_INVITED.value not in c.get("/notifications/preferences/").content.decode()


def test_a_logged_in_person_accepts_into_their_own_account_only_after_confirming(mailing, people, board):
    other = make_user("other")
    confirm_address(other, "other@example.org")
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    c = client_for(other)
    assert "Accept as other" in c.get(path).content.decode()
    assert c.post(path).status_code == 302
    assert Membership.objects.filter(board=board, user=other).exists()
    other.refresh_from_db()
    assert emails.confirmed_email(other) == "other@example.org"  # accepting does not move an account's address


def test_the_owner_sees_the_same_answer_and_pending_entry_whoever_holds_the_address(mailing, people, board, known):
    owner = client_for(people["owner"])
    answers = {address: messages_of(invite(owner, board, address)) for address in (KNOWN, NEW)}
    assert answers == {KNOWN: [f"Invitation sent to {KNOWN}."], NEW: [f"Invitation sent to {NEW}."]}
    page = owner.get(f"/boards/{board.pk}/").content.decode()
    entries = {}
    for address in (KNOWN, NEW):
        [entry] = re.findall(rf"<li>{re.escape(address)}.*?</li>", page, re.S)
        entries[address] = re.sub(r"/invitations/\d+/", "/invitations/N/", entry.replace(address, "ADDRESS"))
    assert entries[KNOWN] == entries[NEW]
    assert ">known</span>" not in page  # not a member: the members list does not name them
    assert ">owner</span>" in page
    assert set(Invitation.objects.values_list("status", flat=True)) == {Status.PENDING}


def test_an_address_whose_account_is_a_member_already_is_answered_the_same(mailing, people, board):
    confirm_address(people["viewer"], "viewer@example.org")
    r = invite(client_for(people["owner"]), board, "viewer@example.org", Role.OWNER)
    assert messages_of(r) == ["Invitation sent to viewer@example.org."]
    path = link_path(mail_to(mailing, "viewer@example.org")[0])
    client_for(people["viewer"]).post(path)
    assert Membership.objects.get(board=board, user=people["viewer"]).role == Role.VIEWER  # an invitation never
    assert Invitation.objects.get().status == Status.ACCEPTED  # changes a role it did not grant


def test_an_expired_link_is_refused_with_a_clear_page(mailing, people, board, settings):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for r in (Client().get(path), sign_up(Client(), path)):
        assert r.status_code == 400
        assert shows(r, services.EXPIRED)
    assert not User.objects.filter(username="newcomer").exists()
    assert not Invitation.objects.filter(board=board, status=Status.PENDING, expires_at__gt=timezone.now()).exists()
    # The lifetime is the setting's.
    settings.INVITATION_MAX_AGE = 3600
    invite(client_for(people["owner"]), board, "later@example.org")
    fresh = Invitation.objects.get(email="later@example.org")
    assert timedelta(minutes=59) < fresh.expires_at - fresh.created_at <= timedelta(hours=1)


def test_a_used_link_is_refused_with_a_clear_page(mailing, people, board):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    assert sign_up(Client(), path).status_code == 302
    for r in (
        Client().get(path),
        sign_up(Client(), path, username="second"),
        client_for(people["stranger"]).post(path),
    ):
        assert r.status_code == 400
        assert shows(r, services.USED)
    assert not User.objects.filter(username="second").exists()
    assert not Membership.objects.filter(user=people["stranger"]).exists()


def test_a_revoked_link_stops_working_and_leaves_the_pending_list(mailing, people, board):
    owner = client_for(people["owner"])
    invite(owner, board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    invitation = Invitation.objects.get()
    r = owner.post(f"/boards/{board.pk}/invitations/{invitation.pk}/revoke/", follow=True)
    assert messages_of(r) == [f"The invitation to {NEW} is withdrawn: its link no longer works."]
    assert NEW not in owner.get(f"/boards/{board.pk}/").content.decode()
    for r in (Client().get(path), sign_up(Client(), path)):
        assert r.status_code == 400
        assert shows(r, services.REVOKED)
    assert not User.objects.filter(username="newcomer").exists()


def test_inviting_an_address_again_replaces_the_old_link(mailing, people, board):
    owner = client_for(people["owner"])
    invite(owner, board, NEW)
    invite(owner, board, NEW.upper(), Role.VIEWER)
    first, second = (link_path(m) for m in mail_to(mailing, NEW) + mail_to(mailing, NEW.upper()))
    assert shows(Client().get(first), services.REVOKED)
    assert Invitation.objects.filter(status=Status.PENDING).count() == 1
    assert sign_up(Client(), second).status_code == 302
    assert Membership.objects.get(board=board, user__username="newcomer").role == Role.VIEWER


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character changed
        lambda t: t[:-2],  # cut short
        lambda t: t + "x",  # lengthened
        lambda t: "x" * 200,  # nothing like it
    ],
)
def test_a_tampered_link_is_refused_with_a_clear_page(mailing, people, board, alter):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    token = path.split("/")[2]
    bad = f"/invitations/{alter(token)}/"
    for r in (Client().get(bad), sign_up(Client(), bad), client_for(people["stranger"]).post(bad)):
        assert r.status_code == 400
        assert shows(r, services.TAMPERED)
    assert not User.objects.filter(username="newcomer").exists()
    assert not Membership.objects.filter(user=people["stranger"]).exists()
    assert Invitation.objects.get().status == Status.PENDING
    assert Client().get(path).status_code == 200  # the real link still works


def test_a_link_ends_with_its_inviters_right_to_invite(mailing, people, board):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    Membership.objects.filter(board=board, user=people["contributor"]).update(role=Role.OWNER)  # another owner stays
    Membership.objects.filter(board=board, user=people["owner"]).update(role=Role.VIEWER)
    assert shows(Client().get(path), services.REVOKED)


def test_an_owner_who_hands_the_board_over_withdraws_their_invitations_for_good(mailing, people, board):
    from boardsite.boards import services as boards

    owner = client_for(people["owner"])
    invite(owner, board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    boards.ownership_offer(board=board, user=people["owner"], username="contributor")
    boards.ownership_accept(board=board, user=people["contributor"])
    # The list, the link and the records agree: withdrawn.
    new_owner = client_for(people["contributor"])
    assert NEW not in new_owner.get(f"/boards/{board.pk}/").content.decode()
    assert Invitation.objects.get().status == Status.REVOKED
    assert shows(Client().get(path), services.REVOKED)
    # An owner again later: what was withdrawn stays withdrawn.
    boards.board_member_add(board=board, user=people["contributor"], username="owner", role=Role.OWNER)
    assert shows(Client().get(path), services.REVOKED)
    assert NEW not in new_owner.get(f"/boards/{board.pk}/").content.decode()


def test_signing_up_with_an_address_another_account_confirmed_makes_nothing(mailing, people, board):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    confirm_address(make_user("meanwhile"), NEW)  # confirmed by someone after the invitation went out
    r = sign_up(Client(), path)
    assert r.status_code == 400
    assert shows(r, services.TAKEN)
    assert not User.objects.filter(username="newcomer").exists()
    assert Invitation.objects.get().status == Status.PENDING


def test_sign_up_through_the_link_keeps_the_sign_up_rules(mailing, people, board):
    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    r = sign_up(Client(), path, username="owner")  # taken
    assert r.status_code == 400
    assert "That username is taken" in r.content.decode()
    r = Client().post(path, {"username": "newcomer", "password": PASSWORD, "password_again": "other-long-password"})
    assert r.status_code == 400
    assert "The two passwords differ." in r.content.decode()
    assert not User.objects.filter(username="newcomer").exists()
    assert Invitation.objects.get().status == Status.PENDING


@pytest.mark.parametrize("who", ["contributor", "viewer", "stranger"])
def test_only_owners_invite_and_revoke(mailing, people, board, who):
    invite(client_for(people["owner"]), board, NEW)
    invitation = Invitation.objects.get()
    c = client_for(people[who])
    r = c.post(f"/boards/{board.pk}/invitations/", {"email": "else@example.org", "role": Role.OWNER})
    assert r.status_code == (404 if who == "stranger" else 403)
    r = c.post(f"/boards/{board.pk}/invitations/{invitation.pk}/revoke/")
    assert r.status_code == (404 if who == "stranger" else 403)
    assert list(Invitation.objects.values_list("email", "status")) == [(NEW, Status.PENDING)]
    assert mail_to(mailing, "else@example.org") == []
    if who != "stranger":
        assert NEW not in c.get(f"/boards/{board.pk}/").content.decode()  # addresses are the owners' to see
    with pytest.raises(Forbidden):
        services.invitation_create(board=board, user=people[who], address="else@example.org", role=Role.VIEWER)
    with pytest.raises(Forbidden):
        services.invitation_revoke(board=board, user=people[who], invitation_id=invitation.pk)


def test_an_owner_revokes_only_their_boards_invitations(mailing, people, board):
    other = make_board(people["stranger"], title="Other")
    invite(client_for(people["stranger"]), other, NEW)
    invitation = Invitation.objects.get()
    r = client_for(people["owner"]).post(f"/boards/{board.pk}/invitations/{invitation.pk}/revoke/", follow=True)
    assert messages_of(r) == ["No such pending invitation."]
    assert Invitation.objects.get().status == Status.PENDING


@pytest.mark.parametrize(
    ("email", "role", "says"),
    [
        ("not-an-address", Role.VIEWER, "valid email address"),
        ("a b@example.org", Role.VIEWER, "valid email address"),
        ("x" * 250 + "@example.org", Role.VIEWER, "at most 254 characters"),
        ("", Role.VIEWER, "Give the email address to invite."),
        (NEW, "admin", "Choose a role"),
        (NEW, "", "Choose a role"),
    ],
)
def test_input_is_bounded_and_validated(mailing, people, board, email, role, says):
    r = invite(client_for(people["owner"]), board, email, role)
    [message] = messages_of(r)
    assert says in message
    assert not Invitation.objects.exists()
    assert sent_mail(mailing) == []


def test_invitations_are_limited_per_owner(mailing, people, board, settings):
    settings.INVITE_RATE_OWNER = "2/h"
    owner = client_for(people["owner"])
    for i in range(2):
        assert messages_of(invite(owner, board, f"p{i}@example.org")) == [f"Invitation sent to p{i}@example.org."]
    r = invite(owner, board, "p2@example.org")
    assert "Too many invitations" in messages_of(r)[0]
    assert not Invitation.objects.filter(email="p2@example.org").exists()
    assert mail_to(mailing, "p2@example.org") == []
    # Another owner is not held back by this one.
    other = make_board(people["stranger"], title="Other")
    assert messages_of(invite(client_for(people["stranger"]), other, "p2@example.org")) == [
        "Invitation sent to p2@example.org."
    ]


def test_invitations_are_limited_per_owner_and_address_and_no_owner_uses_up_anothers(
    mailing, people, board, settings, known
):
    settings.INVITE_RATE_ADDRESS = "2/d"
    other = make_board(people["stranger"], title="Other")
    answers = []
    for address in (NEW, KNOWN):  # the limit answers the same whether the address has an account
        invite(client_for(people["owner"]), board, address)
        invite(client_for(people["owner"]), board, address)
        refused = messages_of(invite(client_for(people["owner"]), board, address))[0]
        answers.append(refused.split(" Try again in ")[0])  # the window's end differs by the counter's start
        # Another owner is neither stopped nor told anything of the first one's invitations (the outside review
        # used up a stranger's address for everyone with one board).
        assert messages_of(invite(client_for(people["stranger"]), other, address)) == [f"Invitation sent to {address}."]
        assert len(mail_to(mailing, address)) == 3
    assert answers == ["Too many invitations from you, or from you to this address."] * 2
    assert messages_of(invite(client_for(people["owner"]), board, "else@example.org")) == [
        "Invitation sent to else@example.org."
    ]


def test_a_suppressed_address_gets_no_mail_and_the_owner_cannot_tell(mailing, people, board):
    Suppression.objects.create(address_key=NEW, reason="bounce")
    owner = client_for(people["owner"])
    assert messages_of(invite(owner, board, NEW)) == [f"Invitation sent to {NEW}."]
    assert messages_of(invite(owner, board, "fine@example.org")) == ["Invitation sent to fine@example.org."]
    assert [m["To"] for m in sent_mail(mailing)] == ["fine@example.org"]
    page = owner.get(f"/boards/{board.pk}/").content.decode()
    assert NEW in page
    assert "fine@example.org" in page


def test_the_answer_is_padded_to_the_same_floor(mailing, people, board, known, settings):
    settings.INVITATION_MIN_SECONDS = 0.3
    owner = client_for(people["owner"])
    Suppression.objects.create(address_key="gone@example.org", reason="bounce")
    for address in (KNOWN, NEW, "gone@example.org"):  # an account, none, suppressed (no mail handed on)
        started = time.monotonic()
        invite(owner, board, address)
        assert time.monotonic() - started >= 0.3


def test_one_pending_invitation_per_address_and_board_even_when_two_arrive_at_once(db, people, board):
    """The service replaces a pending invitation before it makes one; two at the same moment both find none to
    replace, and the database's constraint refuses the second (the service answers services.BUSY)."""
    from django.db import IntegrityError, transaction

    row = {"board": board, "email": NEW, "role": Role.VIEWER, "invited_by": people["owner"]}
    expires = timezone.now() + timedelta(days=1)
    Invitation.objects.create(**row, email_key=NEW, token_digest="a" * 64, expires_at=expires)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(**row, email_key=NEW, token_digest="b" * 64, expires_at=expires)
    Invitation.objects.update(status=Status.REVOKED)
    Invitation.objects.create(**row, email_key=NEW, token_digest="c" * 64, expires_at=expires)  # once none is pending


def test_an_account_sees_and_accepts_the_invitations_of_its_confirmed_address_in_the_site(
    mailing, people, board, known
):
    owner = client_for(people["owner"])
    invite(owner, board, KNOWN, Role.VIEWER)
    other = make_board(people["stranger"], title="Other")
    invite(client_for(people["stranger"]), other, KNOWN)
    Invitation.objects.filter(board=other).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )  # expired: not listed
    c = client_for(known)
    assert "1 invitation to a board for your address" in c.get("/").content.decode()
    page = c.get("/invitations/").content.decode()
    assert "owner invited you to “Holiday” as viewer" in page
    assert "Other" not in page
    invitation = Invitation.objects.get(board=board)
    r = c.post(f"/invitations/{invitation.pk}/accept/")
    assert r.status_code == 302
    assert r["Location"] == f"/boards/{board.pk}/"
    assert Membership.objects.get(board=board, user=known).role == Role.VIEWER
    assert Notification.objects.filter(user=known, kind=Kind.BOARD_ADDED).exists()
    assert "No invitations are waiting for you." in c.get("/invitations/").content.decode()
    assert c.post(f"/invitations/{invitation.pk}/accept/").status_code == 404  # used: only once


def test_only_the_confirmed_address_accepts_in_the_site(mailing, people, board, known):
    invite(client_for(people["owner"]), board, KNOWN)
    invitation = Invitation.objects.get()
    # Someone who typed the address but never confirmed it, and someone with another address: nothing to see or take.
    typed = make_user("typed")
    typed.email = KNOWN
    typed.save(update_fields=["email"])
    confirm_address(people["stranger"], "stranger@example.org")
    for user in (typed, people["stranger"]):
        c = client_for(user)
        assert "Holiday" not in c.get("/invitations/").content.decode()
        assert "invitation to a board" not in c.get("/").content.decode()
        assert c.post(f"/invitations/{invitation.pk}/accept/").status_code == 404
    assert not Membership.objects.filter(user__in=[typed, people["stranger"]]).exists()
    # Revoked: gone for its addressee too.
    client_for(people["owner"]).post(f"/boards/{board.pk}/invitations/{invitation.pk}/revoke/")
    c = client_for(known)
    assert "Holiday" not in c.get("/invitations/").content.decode()
    assert c.post(f"/invitations/{invitation.pk}/accept/").status_code == 404
    assert not Membership.objects.filter(user=known).exists()


def test_the_address_limit_counts_one_mailbox_however_its_domain_is_written(mailing, people, board, settings):
    settings.INVITE_RATE_ADDRESS = "1/d"
    owner = client_for(people["owner"])
    assert messages_of(invite(owner, board, "carol@bücher.example")) == [
        "Invitation sent to carol@xn--bcher-kva.example."
    ]
    r = invite(owner, board, "Carol@XN--BCHER-KVA.example")
    assert messages_of(r)[0].startswith("Too many invitations")


def test_deleting_the_board_ends_its_invitations(mailing, people, board):
    from boardsite.boards.services import board_delete

    invite(client_for(people["owner"]), board, NEW)
    path = link_path(mail_to(mailing, NEW)[0])
    board_delete(board=board, user=people["owner"])
    assert not Invitation.objects.exists()
    r = sign_up(Client(), path)
    assert r.status_code == 400
    assert shows(r, services.TAMPERED)
    assert not User.objects.filter(username="newcomer").exists()


def test_an_invitation_whose_mail_cannot_be_handed_on_is_not_recorded(mailing, people, board, settings, monkeypatch):
    """The mail path down for real (lambda mode: the site publishes to the topic, whose endpoint answers nothing):
    the owner is told to try again and no pending invitation claims a mail was sent."""
    from offload import aws as offload_aws

    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "lambda"}
    dead = "http://127.0.0.1:9"
    settings.AWS_ENDPOINT_URL = dead
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    offload_aws.clear_caches()
    try:
        r = invite(client_for(people["owner"]), board, NEW)
    finally:
        offload_aws.clear_caches()
    assert messages_of(r) == [services.NOT_SENT]
    assert not Invitation.objects.exists()
