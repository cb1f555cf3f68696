"""The events that make notifications, called by the services that change what they describe (through the signals
of the apps that produce them: ``receivers.py``), inside the same transaction (a rolled-back change notifies nobody)
and only on the transition itself (a duplicate result, a second sweep or a retried request finds the row already
moved on and calls nothing).

- a photo became ready -> ``photos_added`` for every member of its board but the uploader (batched per burst);
- an upload failed -> ``upload_failed`` for its uploader, with the file name and the reason;
- someone was added to a board -> ``board_added`` for them, with the role and who added them;
- an owner offered a board to a member -> ``ownership_offered`` for them;
- an owner invited the confirmed address of an account -> ``board_invited`` for it (in the site only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from boardsite.notifications import services
from boardsite.notifications.models import Kind, Notification

BOARD_ADDED_QUIET = dt.timedelta(days=1)


def photo_ready(*, image: Any) -> int:
    """``image`` just became ready: every active member of its board (owners included) hears of it, except the
    uploader. Returns how many notifications were touched."""
    recipients = get_user_model().objects.filter(memberships__board_id=image.board_id, is_active=True)
    return services.notify_photos_added(
        board=image.board, actor=image.uploaded_by, recipients=list(recipients), image=image
    )


def upload_failed(*, image: Any, reason: str) -> Notification | None:
    """``image`` just ended ``failed``: its uploader hears why (once: callers call this on the transition only).

    Not called when the uploader abandons an upload in the browser (``image_upload_abandon``): they saw it fail
    there, so it is no news to them. None when the uploader's account is gone.
    """
    if image.uploaded_by_id is None:
        return None
    return services.notify(
        user=image.uploaded_by,
        kind=Kind.UPLOAD_FAILED,
        board=image.board,
        image=image,
        data={"filename": image.filename, "reason": reason},
    )


def member_added(*, board: Any, member: AbstractBaseUser, role: str, actor: AbstractBaseUser) -> Notification | None:
    """``member`` was just added to ``board`` by ``actor``; nobody is told they added themselves (a new board's
    owner, say)."""
    if member.pk == actor.pk:
        return None
    now = timezone.now()
    # Removed and added again (and again): one notification, and one mail, a day, or an owner could mail anyone
    # by username as often as they like (found by the outside review).
    recent = (
        Notification.objects.select_for_update()
        .filter(user=member, board=board, kind=Kind.BOARD_ADDED, created_at__gte=now - BOARD_ADDED_QUIET)
        .first()
    )
    if recent is not None:
        recent.actor, recent.data, recent.updated_at, recent.read_at = actor, {"role": str(role)}, now, None
        recent.save(update_fields=["actor", "data", "updated_at", "read_at"])
        return recent
    return services.notify(user=member, kind=Kind.BOARD_ADDED, board=board, actor=actor, data={"role": str(role)})


def ownership_offered(*, board: Any, member: AbstractBaseUser, actor: AbstractBaseUser) -> Notification:
    """``actor`` offered ``board`` to ``member``: they hear of it (the board's page has Accept and Decline)."""
    return services.notify(user=member, kind=Kind.OWNERSHIP_OFFERED, board=board, actor=actor)


def board_invited(*, board: Any, member: AbstractBaseUser, role: str, actor: AbstractBaseUser) -> Notification:
    """``actor`` invited ``member``'s confirmed address to ``board``: listed in the site (the mail was the
    invitation's); following it leads to the invitations to accept."""
    return services.notify(user=member, kind=Kind.BOARD_INVITED, board=board, actor=actor, data={"role": str(role)})
