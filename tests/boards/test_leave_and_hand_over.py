"""Leaving a board and handing it over, through the real views: a member leaves (its photos stay), the only owner
cannot; an owner offers the board to a member, who accepts (then owns it, and the old owner contributes) or declines;
offers that no longer stand (withdrawn, expired, their maker or recipient gone) change nothing. A board never ends up
without an owner."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from boardsite.boards import services
from boardsite.boards.models import Membership, OwnershipOffer, Role
from boardsite.core.errors import Invalid, NotFound
from boardsite.notifications.mailer import notification_mail
from boardsite.notifications.models import Kind, Notification
from tests.factories import make_board, make_image, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return {name: make_user(name) for name in ("owner", "contributor", "viewer", "stranger", "coowner")}


@pytest.fixture
def board(people):
    return make_board(people["owner"], members={people["contributor"]: "contributor", people["viewer"]: "viewer"})


def client_of(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def roles(board) -> dict[str, str]:
    return dict(Membership.objects.filter(board=board).values_list("user__username", "role"))


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- leaving --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["contributor", "viewer"])
def test_a_member_leaves_after_a_confirmation_and_their_photos_stay(board, people, who):
    photo = make_image(board, people[who], status="ready") if who == "contributor" else None
    c = client_of(people[who])
    page = c.get(f"/boards/{board.pk}/leave/")
    assert page.status_code == 200
    assert b"Leave board" in page.content
    assert who in roles(board)  # the GET asked, it did not leave
    r = c.post(f"/boards/{board.pk}/leave/", follow=True)
    assert f"You left “{board.title}”." in messages_of(r)
    assert who not in roles(board)
    assert c.get(f"/boards/{board.pk}/").status_code == 404  # a private board: no longer theirs to see
    if photo is not None:
        photo.refresh_from_db()  # still there, still theirs
        assert photo.uploaded_by_id == people[who].pk


def test_the_only_owner_cannot_leave_and_is_told_what_to_do(board, people):
    r = client_of(people["owner"]).post(f"/boards/{board.pk}/leave/", follow=True)
    assert messages_of(r) == [
        "You are this board's only owner: hand it over to another member, or delete the board, before you leave."
    ]
    assert roles(board)["owner"] == Role.OWNER


def test_one_of_two_owners_may_leave(board, people):
    Membership.objects.create(board=board, user=people["coowner"], role=Role.OWNER)
    services.board_leave(board=board, user=people["owner"])
    assert "owner" not in roles(board)
    assert roles(board)["coowner"] == Role.OWNER
    with pytest.raises(Invalid):
        services.board_leave(board=board, user=people["coowner"])


def test_strangers_cannot_leave_what_they_are_not_on(board, people):
    assert client_of(people["stranger"]).get(f"/boards/{board.pk}/leave/").status_code == 404
    assert client_of(people["stranger"]).post(f"/boards/{board.pk}/leave/").status_code == 404
    assert Client().post(f"/boards/{board.pk}/leave/").status_code == 302  # to the login page
    with pytest.raises(NotFound):
        services.board_leave(board=board, user=people["stranger"])
    assert len(roles(board)) == 3


@pytest.mark.django_db(transaction=True)
def test_two_owners_leaving_at_once_leave_one_owner(people):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL's row locks")
    board = make_board(people["owner"], members={people["coowner"]: "owner"})
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def leave(user) -> None:
        try:
            barrier.wait()
            services.board_leave(board=board, user=user)
            outcomes.append("left")
        except Invalid:
            outcomes.append("refused")
        finally:
            connection.close()  # this thread's own: the test database can then be dropped

    threads = [threading.Thread(target=leave, args=(people[n],)) for n in ("owner", "coowner")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["left", "refused"]
    assert list(roles(board).values()) == [Role.OWNER]


# --- handing over ---------------------------------------------------------------------------------------------------


def offer(board, people, to: str = "contributor"):
    return client_of(people["owner"]).post(f"/boards/{board.pk}/ownership/offer/", {"username": to}, follow=True)


def answer(board, user, what: str):
    return client_of(user).post(f"/boards/{board.pk}/ownership/answer/", {"answer": what}, follow=True)


@pytest.mark.parametrize("to", ["contributor", "viewer"])
def test_an_offer_accepted_makes_the_member_owner_and_the_old_owner_a_contributor(board, people, to):
    r = offer(board, people, to)
    assert messages_of(r) == [
        f"Offered the board to {to}. When they accept, they become its owner and you a contributor."
    ]
    assert b"has not answered yet" in r.content
    assert roles(board) == {"owner": "owner", "contributor": "contributor", "viewer": "viewer"}  # nothing yet
    # The member hears of it, in the site and by mail (rendered here; the mailer's own tests send).
    note = Notification.objects.get(user=people[to], kind=Kind.OWNERSHIP_OFFERED)
    assert note.board == board
    assert note.actor == people["owner"]
    listed = client_of(people[to]).get("/notifications/")
    assert b"owner offered you ownership of Holiday" in listed.content
    mail = notification_mail(note, f"{to}@example.com")
    assert mail.subject == "owner offered you ownership of Holiday"
    assert f"/boards/{board.pk}/" in mail.body
    page = client_of(people[to]).get(f"/boards/{board.pk}/")
    assert b"Accept and become owner" in page.content
    r = answer(board, people[to], "accept")
    assert messages_of(r) == ["You now own “Holiday”."]
    assert roles(board)[to] == Role.OWNER
    assert roles(board)["owner"] == Role.CONTRIBUTOR
    assert not OwnershipOffer.objects.exists()
    # The new owner owns: the old one can no longer edit the board.
    assert client_of(people[to]).get(f"/boards/{board.pk}/edit/").status_code == 200
    assert client_of(people["owner"]).get(f"/boards/{board.pk}/edit/").status_code == 403


def test_declined_or_withdrawn_offers_change_nothing(board, people):
    offer(board, people)
    r = answer(board, people["contributor"], "decline")
    assert messages_of(r) == ["Declined the offer."]
    assert not OwnershipOffer.objects.exists()
    offer(board, people)
    r = answer(board, people["owner"], "withdraw")
    assert messages_of(r) == ["Withdrew the offer."]
    assert not OwnershipOffer.objects.exists()
    r = answer(board, people["contributor"], "accept")
    assert messages_of(r) == ["There is no offer of this board for you (it may have been withdrawn or have expired)."]
    assert roles(board) == {"owner": "owner", "contributor": "contributor", "viewer": "viewer"}


@pytest.mark.parametrize("who", ["viewer", "owner", "stranger"])
def test_only_the_recipient_accepts(board, people, who):
    offer(board, people)
    r = answer(board, people[who], "accept")
    if who == "stranger":
        assert r.status_code == 404  # a private board
    else:
        assert messages_of(r) == [
            "There is no offer of this board for you (it may have been withdrawn or have expired)."
        ]
    assert roles(board) == {"owner": "owner", "contributor": "contributor", "viewer": "viewer"}
    assert OwnershipOffer.objects.exists()
    # Nor may another member decline or withdraw it: only the recipient declines, only owners withdraw.
    if who == "viewer":
        assert answer(board, people["viewer"], "withdraw").status_code == 403
        assert messages_of(answer(board, people["viewer"], "decline")) == ["There is no offer of this board for you."]
    if who == "owner":  # the owner's answer is a withdrawal, said as one
        assert messages_of(answer(board, people["owner"], "decline")) == ["There is no offer of this board for you."]
    assert OwnershipOffer.objects.exists()


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("stranger", "'stranger' is not a member of this board: add them first."),
        ("nobody-at-all", "'nobody-at-all' is not a member of this board: add them first."),
        ("owner", "You already own this board."),
        pytest.param("x" * 5000, "'" + "x" * 150 + "…' is not a member of this board: add them first.", id="long"),
        ("coowner", "coowner already owns this board."),
    ],
)
def test_offers_only_to_members_who_do_not_own_it(board, people, to, message):
    Membership.objects.create(board=board, user=people["coowner"], role=Role.OWNER)
    assert messages_of(offer(board, people, to)) == [message]
    assert not OwnershipOffer.objects.exists()
    assert not Notification.objects.filter(kind=Kind.OWNERSHIP_OFFERED).exists()


@pytest.mark.parametrize("who", ["contributor", "viewer"])
def test_non_owners_cannot_offer(board, people, who):
    r = client_of(people[who]).post(f"/boards/{board.pk}/ownership/offer/", {"username": "viewer"})
    assert r.status_code == 403
    assert not OwnershipOffer.objects.exists()


def test_edits_are_posts(board, people):
    offer(board, people)
    c = client_of(people["contributor"])
    assert c.get(f"/boards/{board.pk}/ownership/answer/?answer=accept").status_code == 405
    assert client_of(people["owner"]).get(f"/boards/{board.pk}/ownership/offer/?username=viewer").status_code == 405
    assert roles(board)["contributor"] == Role.CONTRIBUTOR


def test_a_new_offer_replaces_the_open_one(board, people):
    offer(board, people, "contributor")
    offer(board, people, "viewer")
    assert OwnershipOffer.objects.get().offered_to == people["viewer"]
    assert messages_of(answer(board, people["contributor"], "accept"))[0].startswith("There is no offer")
    answer(board, people["viewer"], "accept")
    assert roles(board)["viewer"] == Role.OWNER


def test_an_expired_offer_no_longer_stands(board, people):
    offer(board, people)
    OwnershipOffer.objects.update(created_at=timezone.now() - dt.timedelta(days=OwnershipOffer.OFFER_DAYS, seconds=1))
    assert b"Accept and become owner" not in client_of(people["contributor"]).get(f"/boards/{board.pk}/").content
    assert messages_of(answer(board, people["contributor"], "accept"))[0].startswith("There is no offer")
    assert roles(board)["owner"] == Role.OWNER


@pytest.mark.parametrize("change", ["maker lowered", "maker left", "recipient removed", "recipient left"])
def test_an_offer_falls_when_its_maker_or_recipient_changes(board, people, change):
    Membership.objects.create(board=board, user=people["coowner"], role=Role.OWNER)
    offer(board, people)
    if change == "maker lowered":
        services.board_member_add(board=board, user=people["coowner"], username="owner", role="contributor")
    elif change == "maker left":
        services.board_leave(board=board, user=people["owner"])
    elif change == "recipient removed":
        services.board_member_remove(board=board, user=people["coowner"], username="contributor")
    else:
        services.board_leave(board=board, user=people["contributor"])
    with pytest.raises(NotFound):
        services.ownership_accept(board=board, user=people["contributor"])
    assert roles(board)["coowner"] == Role.OWNER
    assert roles(board).get("contributor") != Role.OWNER
