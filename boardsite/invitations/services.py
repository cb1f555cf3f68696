"""Invitations to a board by email address: make, revoke, check, accept, and sign up through one.

No account enumeration: whatever the address (an account has confirmed it, nobody has, it is suppressed, its
account is already a member), inviting it takes the same path, records the same pending invitation, mails one link
(but to a suppressed address) and answers the owner the same. So an address that has an account is *not* added at
once: the members list would tell the owner. Its owner gets the same link and accepts while logged in; the
membership is then made and announced with ``boards.signals.member_added`` (the notification and mail of an owner
adding a member by name), on that transition only.

The link carries a random token; only its SHA-256 is stored. It works once, until ``INVITATION_MAX_AGE``, while the
invitation is pending and its inviter is still an owner of the board. Accepting into an account that is logged in
needs a POST from the page the link opens (a confirmation, and mail scanners that fetch links accept nothing).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from boardsite.accounts import emails
from boardsite.accounts.services import user_signup
from boardsite.boards import signals as board_signals
from boardsite.boards.models import Board, Membership, Role
from boardsite.boards.selectors import board_role, require_owner
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.links import site_link
from boardsite.invitations import signals
from boardsite.invitations.models import Invitation, Status

log = logging.getLogger(__name__)

TOKEN_MAX_LENGTH = 100  # ours are 43 characters; anything longer is refused unhashed

TAMPERED = (
    "This invitation link is not valid: it is incomplete or was altered (or its board was deleted). Open the link "
    "from the mail again."
)
USED = "This invitation was accepted already: each invitation link works once."
REVOKED = "This invitation was withdrawn (or replaced by a newer one). Ask the board's owner to invite you again."
EXPIRED = "This invitation has expired. Ask the board's owner to invite you again."
BUSY = "This address was being invited to this board at the same moment. Look at the pending invitations."
NOT_SENT = "We could not send the invitation just now. Please try again in a few minutes."
TAKEN = (
    "This address already belongs to an account, so no new account was made. Log in to that account and open "
    "the link again to accept."
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _max_age() -> timedelta:
    return timedelta(seconds=settings.INVITATION_MAX_AGE)


def _clean_role(role: str) -> str:
    if role not in Role.values:
        raise Invalid("Choose a role: owner, contributor or viewer.")
    return role


def _clean_address(address: str) -> str:
    if not isinstance(address, str) or len(address) > 320:
        raise Invalid("Enter a valid email address.")
    try:
        return emails.clean_address(address)
    except ValidationError as exc:
        raise Invalid(" ".join(exc.messages)) from None


@dataclass(frozen=True)
class Sent:
    invitation: Invitation
    link: str  # returned for the caller's tests and logs of its own; never shown to the owner


@transaction.atomic
def invitation_create(*, board: Board, user: AbstractBaseUser, address: str, role: str) -> Sent:
    """Invite ``address`` to ``board`` as ``role`` (owners only) and mail it the link (unless suppressed). A pending
    invitation of the same address to this board is replaced (its link stops working). Invalid for a malformed
    address or role, or when the mail could not be handed on (nothing is then recorded)."""
    require_owner(board_role(board=board, user=user))
    role = _clean_role(role)
    address = _clean_address(address)
    key = emails.email_key(address)
    now = timezone.now()
    Invitation.objects.filter(board=board, email_key=key, status=Status.PENDING).update(
        status=Status.REVOKED, closed_at=now
    )
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                board=board,
                email=address,
                email_key=key,
                role=role,
                invited_by=user,
                token_digest=_digest(token),
                expires_at=now + _max_age(),
            )
    except IntegrityError:  # another owner invited the same address to this board at this very moment
        raise Invalid(BUSY) from None
    link = site_link(reverse("invitation-open", args=[token]))
    # The same work for every address (the lookup, the rendering, the hand-over): only the mailbox sees which
    # sentence it got. A suppressed address is skipped, as every sender does, and the owner is told the same.
    accounts = emails.users_with_confirmed_email(address)
    has_account = bool(accounts)
    for account in accounts:
        if not Membership.objects.filter(board=board, user=account).exists():
            # Seen only by the account itself (in its notifications): the owner learns nothing.
            signals.invited.send(sender=Invitation, board=board, member=account, role=role, actor=user)
    context = {
        "board": board,
        "inviter": user,
        "role": invitation.get_role_display().lower(),
        "link": link,
        "has_account": has_account,
        "days": max(1, settings.INVITATION_MAX_AGE // 86400),
    }
    body = render_to_string("invitations/invitation_mail.txt", context)
    if emails.suppression_of(address):
        log.info("not mailing invitation %s: the address is suppressed", invitation.pk)
        return Sent(invitation, link)
    subject = f"{user.get_username()} invited you to the board {board.title} on boardsite"
    try:
        send_mail(subject, body, None, [address])
    except Exception:
        log.exception("could not hand invitation %s to the mail job", invitation.pk)
        raise Invalid(NOT_SENT) from None
    return Sent(invitation, link)


@transaction.atomic
def invitation_revoke(*, board: Board, user: AbstractBaseUser, invitation_id: int) -> Invitation:
    """Withdraw a pending invitation (owners only): its link stops working. NotFound if it is not pending here."""
    require_owner(board_role(board=board, user=user))
    invitation = (
        Invitation.objects.select_for_update().filter(board=board, pk=invitation_id, status=Status.PENDING).first()
    )
    if invitation is None:
        raise NotFound("No such pending invitation.")
    invitation.status, invitation.closed_at = Status.REVOKED, timezone.now()
    invitation.save(update_fields=["status", "closed_at"])
    return invitation


def owner_stepped_down_receiver(*, board: Board, member: AbstractBaseUser, **_: object) -> int:
    """``member`` is no longer an owner of ``board``: the invitations they made there are withdrawn (recorded, so a
    link refused once stays refused even if they become an owner again). Returns how many."""
    return Invitation.objects.filter(board=board, invited_by=member, status=Status.PENDING).update(
        status=Status.REVOKED, closed_at=timezone.now()
    )


def invitation_list_pending(*, board: Board, user: AbstractBaseUser) -> QuerySet[Invitation]:
    """The board's invitations still waiting (owners only: they show addresses). One entry per address, alike
    whatever the address is."""
    require_owner(board_role(board=board, user=user))
    return (
        Invitation.objects.filter(board=board, status=Status.PENDING, expires_at__gt=timezone.now())
        # As ``_check_usable``: the list shows only what its links would accept.
        .filter(invited_by__memberships__board=board, invited_by__memberships__role=Role.OWNER)
        .select_related("invited_by")
        .order_by("-created_at")
    )


def _find(token: str, *, lock: bool = False) -> Invitation:
    """The invitation a link names if it can still be accepted; Invalid with the reason otherwise."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
        raise Invalid(TAMPERED)
    rows = Invitation.objects.select_related("board", "invited_by")
    invitation = (rows.select_for_update(of=("self",)) if lock else rows).filter(token_digest=_digest(token)).first()
    if invitation is None:
        raise Invalid(TAMPERED)
    _check_usable(invitation)
    return invitation


def _check_usable(invitation: Invitation) -> None:
    """Invalid with the reason unless ``invitation`` can be accepted now."""
    if invitation.status == Status.ACCEPTED:
        raise Invalid(USED)
    if invitation.status == Status.REVOKED:
        raise Invalid(REVOKED)
    if invitation.expires_at <= timezone.now():
        raise Invalid(EXPIRED)
    inviter = invitation.invited_by
    # An owner removed (or gone) since: what they started ends with their right to start it.
    if inviter is None or board_role(board=invitation.board, user=inviter) != Role.OWNER:
        raise Invalid(REVOKED)


def invitation_check(*, token: str) -> Invitation:
    """What a link would accept, without accepting it; Invalid as accepting would refuse it."""
    return _find(token)


@dataclass(frozen=True)
class Accepted:
    invitation: Invitation
    membership: Membership
    joined: bool  # False: already a member (the role they had is kept)


def _accept(invitation: Invitation, user: AbstractBaseUser) -> Accepted:
    membership, joined = Membership.objects.get_or_create(
        board=invitation.board, user=user, defaults={"role": invitation.role}
    )
    invitation.status, invitation.accepted_by, invitation.closed_at = Status.ACCEPTED, user, timezone.now()
    invitation.save(update_fields=["status", "accepted_by", "closed_at"])
    if joined:
        # As an owner adding a member by name: notifications tells the new member (in the site, and by mail).
        board_signals.member_added.send(
            sender=Board, board=invitation.board, member=user, role=invitation.role, actor=invitation.invited_by
        )
    return Accepted(invitation, membership, joined)


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Accepted:
    """Accept the link's invitation into ``user``'s account (logged in, after confirming on the page). An existing
    membership keeps its role (an invitation never lowers an owner). Invalid when the link cannot be used."""
    if not user.is_authenticated:
        raise Invalid("Log in or sign up to accept this invitation.")
    return _accept(_find(token, lock=True), user)


@transaction.atomic
def invitation_signup(*, token: str, username: str, password: str, display_name: str = "") -> Accepted:
    """A new account through the link: its address is the invited one, confirmed (the link was mailed there), and
    it joins the board with the invited role. One transaction: a refusal leaves no account behind. Invalid (or
    ValidationError by field, from sign-up) otherwise; Invalid(TAKEN) when an account has confirmed the address."""
    invitation = _find(token, lock=True)
    user = user_signup(username=username, password=password, display_name=display_name)
    try:
        emails.email_set_confirmed(user=user, address=invitation.email)
    except Invalid as exc:
        raise Invalid(TAKEN if exc.message == emails.TAKEN else exc.message) from None
    return _accept(invitation, user)


# Listed for the addressee in the site; the rate per address bounds how many there can be (this caps it anyway).
RECEIVED_MAX = 50


def _received(user: AbstractBaseUser) -> QuerySet[Invitation]:
    """Pending invitations of the user's *confirmed* address (an address merely typed proves nothing)."""
    address = emails.confirmed_email(user) if user.is_authenticated else None
    if not address:
        return Invitation.objects.none()
    return Invitation.objects.filter(
        email_key=emails.email_key(address), status=Status.PENDING, expires_at__gt=timezone.now()
    ).select_related("board", "invited_by")


def invitation_list_received(*, user: AbstractBaseUser) -> list[Invitation]:
    """The invitations a logged-in person can accept in the site without the mailed link: those of their confirmed
    address, as the link would accept them. Only they see these; the owner's view of an invitation does not change."""
    usable = []
    for invitation in _received(user).order_by("-created_at")[:RECEIVED_MAX]:
        try:
            _check_usable(invitation)
        except Invalid:
            continue
        usable.append(invitation)
    return usable


@transaction.atomic
def invitation_accept_received(*, invitation_id: int, user: AbstractBaseUser) -> Accepted:
    """Accept an invitation of the user's confirmed address (``invitation_list_received``): the confirmed address
    is the proof the link would give. NotFound for any other invitation; Invalid when it can no longer be used."""
    invitation = _received(user).select_for_update(of=("self",)).filter(pk=invitation_id).first()
    if invitation is None:
        raise NotFound("No such invitation for your address.")
    _check_usable(invitation)
    return _accept(invitation, user)
