"""Reading notifications for the site: the page's rows as sentences with their links, access applied here.

A notification outlives changes to what it names: the photo may be deleted (the link falls back to the board), the
person may have been removed from a private board (no link, and the board is not named: its title may have changed
since), a board that is deleted takes its notifications with it (``on_delete=CASCADE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page, Paginator
from django.urls import reverse

from boardsite.boards.models import Membership, Role
from boardsite.boards.selectors import can_view
from boardsite.core.errors import NotFound
from boardsite.images.models import Status
from boardsite.notifications.models import Kind, Notification

PER_PAGE = 20
UNSEEN_BOARD = "a board you are no longer a member of"


@dataclass(frozen=True)
class Row:
    id: int
    kind: str
    sentence: str
    url: str | None  # None: nothing left to show them (a board they may no longer see)
    unread: bool
    when: Any
    actor: Any = None  # who did it (drawn with their avatar; fetched with the page: accounts.avatars)


def _name(user: AbstractBaseUser | None) -> str:
    if user is None:
        return "Someone"  # the account was deleted
    profile = getattr(user, "profile", None)  # None when the account has no profile row
    return (profile.display_name if profile else "") or user.get_username()


def _sentence(n: Notification, board_title: str) -> str:
    data = n.data if isinstance(n.data, dict) else {}
    if n.kind == Kind.PHOTOS_ADDED:
        photos = "a photo" if n.count == 1 else f"{n.count} photos"
        return f"{_name(n.actor)} added {photos} to {board_title}"
    if n.kind == Kind.BOARD_ADDED:
        role = data.get("role")
        as_role = f" as {Role(role).label.lower()}" if role in Role.values else ""
        return f"{_name(n.actor)} added you to {board_title}{as_role}"
    if n.kind == Kind.UPLOAD_FAILED:
        filename = data.get("filename") or (n.image.filename if n.image else "")
        reason = data.get("reason") or "no reason was given"
        upload = f"Your upload {filename}" if filename else "Your upload"
        return f"{upload} failed: {reason}"
    if n.kind == Kind.OWNERSHIP_OFFERED:
        return f"{_name(n.actor)} offered you ownership of {board_title}"
    if n.kind == Kind.BOARD_INVITED:
        role = data.get("role")
        as_role = f" as {Role(role).label.lower()}" if role in Role.values else ""
        return f"{_name(n.actor)} invited you to {board_title}{as_role}"
    return Kind(n.kind).label if n.kind in Kind.values else "A notification"


def _target(n: Notification, role: str | None, sees_board: bool) -> str | None:
    if n.kind == Kind.BOARD_INVITED and role is None:
        return reverse("invitations-received")  # not a member yet: where they accept
    if n.board_id is None or not sees_board:
        return None
    image = n.image
    if image is not None and (n.kind != Kind.PHOTOS_ADDED or n.count == 1):
        # A failed photo is shown to its uploader and the board's owners only (images.selectors).
        if image.status != Status.FAILED or image.uploaded_by_id == n.user_id or role == Role.OWNER:
            return reverse("image-detail", args=[image.pk])
    return reverse("board-detail", args=[n.board_id])


def _rows(user: AbstractBaseUser, notifications: list[Notification]) -> list[Row]:
    board_ids = {n.board_id for n in notifications if n.board_id is not None}
    # One query for every board on the page: whether the person may still see each (and as what).
    roles = dict(
        Membership.objects.filter(user=user, board_id__in=board_ids).values_list("board_id", "role")
        if board_ids
        else []
    )
    rows = []
    for n in notifications:
        role = roles.get(n.board_id)
        sees_board = n.board is not None and can_view(n.board, role)
        # An invitation names its board (its mail did), member or not.
        invited = n.kind == Kind.BOARD_INVITED and n.board is not None
        title = n.board.title if sees_board or invited else UNSEEN_BOARD
        rows.append(
            Row(
                id=n.pk,
                kind=n.kind,
                sentence=_sentence(n, title),
                url=_target(n, role, sees_board),
                unread=n.read_at is None,
                when=n.updated_at,
                actor=n.actor,
            )
        )
    return rows


def notification_page(*, user: AbstractBaseUser, page: Any = 1) -> Page:
    """One page of ``user``'s notifications, newest first; ``page.object_list`` holds ``Row``s. A page number that is
    not one gives the first page, one past the end the last (Django's ``get_page``). A constant number of queries
    whatever the page holds: the count, the rows with their board, photo, actor and actor's profile, the roles."""
    notifications = (
        Notification.objects.filter(user=user)
        .select_related("board", "image", "actor", "actor__profile", "actor__avatar")
        .order_by("-updated_at", "-id")
    )
    result = Paginator(notifications, PER_PAGE).get_page(page)
    result.object_list = _rows(user, list(result.object_list))
    return result


def notification_target(*, user: AbstractBaseUser, notification_id: Any) -> str | None:
    """Where ``user``'s notification leads (None: nowhere they may go); NotFound if it is not theirs."""
    try:
        n = (
            Notification.objects.select_related("board", "image", "actor", "actor__profile", "actor__avatar")
            .filter(user=user)
            .get(pk=int(notification_id))
        )
    except (ValueError, TypeError, Notification.DoesNotExist):
        raise NotFound("No such notification.") from None
    return _rows(user, [n])[0].url
