"""Writes about boards. Every service checks the caller's right to do it, whatever page called it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from boardsite.accounts.usernames import user_find
from boardsite.boards import signals
from boardsite.boards.models import Board, Membership, Order, Role, Visibility
from boardsite.boards.selectors import board_role, require_owner
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
        raise NotFound(f"No user called {username.strip()!r}.")
    membership, created = Membership.objects.get_or_create(board=board, user=member, defaults={"role": role})
    if created:
        # A changed role is not "added to a board": only a new membership is news.
        signals.member_added.send(sender=Board, board=board, member=member, role=role, actor=user)
    elif membership.role != role:
        _ensure_another_owner(board, membership)
        lowered = role == Role.VIEWER
        membership.role = role
        membership.save(update_fields=["role"])
        if lowered:  # no longer may add photos here
            signals.member_removed.send(sender=Board, board=board, member=member)
    return membership


@transaction.atomic
def board_member_remove(*, board: Board, user: AbstractBaseUser, username: str) -> None:
    require_owner(board_role(board=board, user=user))
    member = user_find(name=username)
    membership = Membership.objects.filter(board=board, user=member).first() if member else None
    if membership is None:
        raise NotFound(f"{username.strip()!r} is not a member of this board.")
    _ensure_another_owner(board, membership)
    membership.delete()
    signals.member_removed.send(sender=Board, board=board, member=member)


def _ensure_another_owner(board: Board, membership: Membership) -> None:
    if (
        membership.role == Role.OWNER
        and not board.memberships.filter(role=Role.OWNER).exclude(pk=membership.pk).exists()
    ):
        raise Invalid("A board needs at least one owner.")
