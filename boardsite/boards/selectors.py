"""Reads about boards, and the access rules: every view and service asks these, never a template."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import CharField, OuterRef, Q, QuerySet, Subquery, Value
from django.utils import timezone

from boardsite.boards.models import Board, Membership, OwnershipOffer, Role, Visibility
from boardsite.core.errors import Forbidden, NotFound

User = AbstractBaseUser | AnonymousUser


def board_role(*, board: Board, user: User) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(board=board, user=user).values_list("role", flat=True).first()


def can_view(board: Board, role: str | None) -> bool:
    """The one rule for seeing a board and its photos: a member, or anyone when it is public."""
    return role is not None or board.visibility == Visibility.PUBLIC


def role_subquery(*, user: User, board_id: str = "board_id") -> Subquery | Value:
    """The caller's role on the board whose id is the field ``board_id`` of the rows being read (NULL: none), for
    ``can_view_q``. Anonymous callers have none."""
    if not user.is_authenticated:
        return Value(None, output_field=CharField())
    return Subquery(Membership.objects.filter(board_id=OuterRef(board_id), user=user).values("role")[:1])


def can_view_q(*, role: str, board: str = "board") -> Q:
    """``can_view`` as a query condition, so rows one may not see are never read (their cost would tell they exist):
    ``role`` names an annotation made with ``role_subquery``, ``board`` the path to the board."""
    return Q(**{f"{role}__isnull": False}) | Q(**{f"{board}__visibility": Visibility.PUBLIC})


def board_get_visible(*, board_id: int | str, user: User) -> tuple[Board, str | None]:
    """The board and the caller's role; private boards answer NotFound to non-members (no existence leak)."""
    if isinstance(board_id, bool) or not (
        isinstance(board_id, int) or (isinstance(board_id, str) and board_id.isascii() and board_id.isdigit())
    ):
        raise NotFound("No such board.")
    try:
        board = Board.objects.get(pk=int(board_id))
    except Board.DoesNotExist:
        raise NotFound("No such board.") from None
    role = board_role(board=board, user=user)
    if not can_view(board, role):
        raise NotFound("No such board.")
    return board, role


def can_upload(role: str | None) -> bool:
    return role in (Role.OWNER, Role.CONTRIBUTOR)


def require_upload(role: str | None) -> None:
    if not can_upload(role):
        raise Forbidden("Only the board's contributors and owners can add photos.")


def require_owner(role: str | None) -> None:
    if role != Role.OWNER:
        raise Forbidden("Only the board's owners can do that.")


def board_list_owned(*, user: User) -> QuerySet[Board]:
    if not user.is_authenticated:
        return Board.objects.none()
    return Board.objects.filter(memberships__user=user, memberships__role=Role.OWNER)


def board_list_shared_with(*, user: User) -> QuerySet[Board]:
    if not user.is_authenticated:
        return Board.objects.none()
    return Board.objects.filter(memberships__user=user, memberships__role__in=[Role.CONTRIBUTOR, Role.VIEWER])


def board_list_public() -> QuerySet[Board]:
    return Board.objects.filter(visibility=Visibility.PUBLIC)


def board_members(*, board: Board) -> QuerySet[Membership]:
    return board.memberships.select_related("user").order_by("role", "user__username")


def ownership_offer_open(*, board: Board) -> OwnershipOffer | None:
    """The board's offer if it still stands (its maker an owner, its recipient a member, not expired), else None."""
    offer = OwnershipOffer.objects.filter(board=board).select_related("offered_by", "offered_to").first()
    if offer is None or offer.created_at < timezone.now() - dt.timedelta(days=OwnershipOffer.OFFER_DAYS):
        return None
    roles = dict(
        Membership.objects.filter(board=board, user_id__in=[offer.offered_by_id, offer.offered_to_id]).values_list(
            "user_id", "role"
        )
    )
    if roles.get(offer.offered_by_id) != Role.OWNER or roles.get(offer.offered_to_id) in (None, Role.OWNER):
        return None
    return offer


# Boards listed per section of the home page (images.board_pages); the rest are one "See all" away (a page of
# their own).
HOME_LIST_MAX = 12
