"""Where notifications hears of events: receivers of the signals the producing apps define (images.signals,
boards.signals), connected in ``NotificationsConfig.ready()``. Those apps never import notifications.

The signals are sent inside the producer's transaction, on the transition only, so these receivers keep the old
direct calls' meaning: a rolled-back change notifies nobody, a duplicate result notifies nobody twice. Each looks
``events.<name>`` up when called (not at connect time), so a test may replace one.
"""

from __future__ import annotations

from typing import Any

from boardsite.boards import signals as board_signals
from boardsite.images import signals as image_signals
from boardsite.invitations import signals as invitation_signals
from boardsite.notifications import events


def on_photo_ready(sender: Any, *, image: Any, **kwargs: Any) -> None:
    events.photo_ready(image=image)


def on_upload_failed(sender: Any, *, image: Any, reason: str, **kwargs: Any) -> None:
    events.upload_failed(image=image, reason=reason)


def on_member_added(sender: Any, *, board: Any, member: Any, role: str, actor: Any, **kwargs: Any) -> None:
    events.member_added(board=board, member=member, role=role, actor=actor)


def on_ownership_offered(sender: Any, *, board: Any, member: Any, actor: Any, **kwargs: Any) -> None:
    events.ownership_offered(board=board, member=member, actor=actor)


def on_board_invited(sender: Any, *, board: Any, member: Any, role: str, actor: Any, **kwargs: Any) -> None:
    events.board_invited(board=board, member=member, role=role, actor=actor)


def connect() -> None:
    """Connect every receiver (once: a dispatch_uid each, so a second ``ready()`` adds nothing)."""
    image_signals.photo_ready.connect(on_photo_ready, dispatch_uid="notifications.photo_ready")
    image_signals.upload_failed.connect(on_upload_failed, dispatch_uid="notifications.upload_failed")
    board_signals.member_added.connect(on_member_added, dispatch_uid="notifications.member_added")
    invitation_signals.invited.connect(on_board_invited, dispatch_uid="notifications.board_invited")
    board_signals.ownership_offered.connect(on_ownership_offered, dispatch_uid="notifications.ownership_offered")
