"""Writes about boards. Every service checks the caller's right to do it, whatever page called it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from boardsite.accounts.usernames import user_find
from boardsite.boards import signals
from boardsite.boards.models import Board, Membership, Order, OwnershipOffer, Role, Visibility
from boardsite.boards.selectors import board_role, ownership_offer_open, require_owner
from boardsite.core.errors import Invalid, NotFound, validated


@transaction.atomic
def board_create(
    *,
    user: AbstractBaseUser,
    title: str,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    order: str = Order.ADDED,
) -> Board:
    board = Board(
        title=title.strip(),
        description=description.strip(),
        visibility=visibility,
        order=order or Order.ADDED,
        created_by=user,
    )
    validated(board)
    board.save()
    Membership.objects.create(board=board, user=user, role=Role.OWNER)
    return board


@transaction.atomic
def board_update(
    *, board: Board, user: AbstractBaseUser, title: str, description: str, visibility: str, order: str = ""
) -> Board:
    require_owner(board_role(board=board, user=user))
    board.title, board.description, board.visibility = title.strip(), description.strip(), visibility
    board.order = order or board.order
    validated(board)
    board.save()
    return board


def board_delete(*, board: Board, user: AbstractBaseUser) -> None:
    require_owner(board_role(board=board, user=user))
    with transaction.atomic():
        # images schedules the board's stored objects for deletion (after the commit, retried by the sweep while
        # storage does not answer: never a half-deleted board), in this transaction, while its photos still exist.
        signals.board_deleting.send(sender=Board, board=board)
        board.delete()


@transaction.atomic
def board_member_add(*, board: Board, user: AbstractBaseUser, username: str, role: str) -> Membership:
    require_owner(board_role(board=board, user=user))
    if role not in Role.values:
        raise Invalid(f"Unknown role {role!r}.")
    # By canonical name (accounts.usernames): the key is unique, so this is exactly one person or nobody.
    member = user_find(name=username)
    if member is None:
        raise NotFound(f"No user called {_shown(username)}.")
    _lock(board)
    membership, created = Membership.objects.get_or_create(board=board, user=member, defaults={"role": role})
    if created:
        # A changed role is not "added to a board": only a new membership is news.
        signals.member_added.send(sender=Board, board=board, member=member, role=role, actor=user)
    elif membership.role != role:
        _ensure_another_owner(board, membership)
        lowered, was_owner = role == Role.VIEWER, membership.role == Role.OWNER
        membership.role = role
        membership.save(update_fields=["role"])
        if was_owner:
            signals.owner_stepped_down.send(sender=Board, board=board, member=member)
        if lowered:  # no longer may add photos here
            signals.member_removed.send(sender=Board, board=board, member=member)
    return membership


@transaction.atomic
def board_member_remove(*, board: Board, user: AbstractBaseUser, username: str) -> None:
    require_owner(board_role(board=board, user=user))
    member = user_find(name=username)
    _lock(board)
    membership = Membership.objects.filter(board=board, user=member).first() if member else None
    if membership is None:
        raise NotFound(f"{_shown(username)} is not a member of this board.")
    _ensure_another_owner(board, membership)
    _end_membership(membership)


@transaction.atomic
def board_leave(*, board: Board, user: AbstractBaseUser) -> None:
    """``user`` leaves ``board`` (any role); its only owner cannot: they hand it over or delete it first."""
    _lock(board)
    membership = Membership.objects.filter(board=board, user=user).first() if user.is_authenticated else None
    if membership is None:
        raise NotFound("You are not a member of this board.")
    _ensure_another_owner(
        board,
        membership,
        "You are this board's only owner: hand it over to another member, or delete the board, before you leave.",
    )
    _end_membership(membership)


@transaction.atomic
def ownership_offer(*, board: Board, user: AbstractBaseUser, username: str) -> OwnershipOffer:
    """An owner offers ``board`` to the member called ``username``, who must accept it; a new offer replaces the
    board's open one. The member hears of it (``signals.ownership_offered``)."""
    require_owner(board_role(board=board, user=user))
    member = user_find(name=username)
    role = board_role(board=board, user=member) if member is not None else None
    if member is None or role is None:
        raise NotFound(f"{_shown(username)} is not a member of this board: add them first.")
    if member.pk == user.pk:
        raise Invalid("You already own this board.")
    if role == Role.OWNER:
        raise Invalid(f"{member.get_username()} already owns this board.")
    offer, _ = OwnershipOffer.objects.update_or_create(
        board=board, defaults={"offered_by": user, "offered_to": member, "created_at": timezone.now()}
    )
    signals.ownership_offered.send(sender=Board, board=board, member=member, actor=user)
    return offer


@transaction.atomic
def ownership_accept(*, board: Board, user: AbstractBaseUser) -> None:
    """The offer's recipient takes the board over: they become an owner, then its maker a contributor (in this
    order, under the board's lock, so the board always has an owner)."""
    _lock(board)
    offer = ownership_offer_open(board=board)
    if offer is None or offer.offered_to_id != user.pk:
        raise NotFound("There is no offer of this board for you (it may have been withdrawn or have expired).")
    Membership.objects.filter(board=board, user_id=offer.offered_to_id).update(role=Role.OWNER)
    Membership.objects.filter(board=board, user_id=offer.offered_by_id).update(role=Role.CONTRIBUTOR)
    offer.delete()
    signals.owner_stepped_down.send(sender=Board, board=board, member=offer.offered_by)


@transaction.atomic
def ownership_decline(*, board: Board, user: AbstractBaseUser) -> None:
    """The offer's recipient declines it: nothing changes."""
    offer = OwnershipOffer.objects.filter(board=board).first()
    if offer is None or offer.offered_to_id != user.pk:
        raise NotFound("There is no offer of this board for you.")
    offer.delete()


@transaction.atomic
def ownership_withdraw(*, board: Board, user: AbstractBaseUser) -> None:
    """An owner withdraws the board's offer: nothing changes."""
    require_owner(board_role(board=board, user=user))
    if not OwnershipOffer.objects.filter(board=board).delete()[0]:
        raise NotFound("There is no open offer of this board.")


def _lock(board: Board) -> None:
    # Owner counts are checked under the board's row lock: two owners leaving at once cannot both see the other stay.
    Board.objects.select_for_update().filter(pk=board.pk).first()


def _end_membership(membership: Membership) -> None:
    board, member = membership.board, membership.user
    OwnershipOffer.objects.filter(board=board).filter(Q(offered_by=member) | Q(offered_to=member)).delete()
    membership.delete()
    if membership.role == Role.OWNER:
        signals.owner_stepped_down.send(sender=Board, board=board, member=member)
    signals.member_removed.send(sender=Board, board=board, member=member)


def _shown(name: str) -> str:
    """A name as typed, for a message: quoted, and cut short (nobody's name is longer than 150 characters)."""
    name = name.strip()
    return repr(name if len(name) <= 150 else name[:150] + "…")


def _ensure_another_owner(
    board: Board, membership: Membership, message: str = "A board needs at least one owner."
) -> None:
    if (
        membership.role == Role.OWNER
        and not board.memberships.filter(role=Role.OWNER).exclude(pk=membership.pk).exists()
    ):
        raise Invalid(message)
