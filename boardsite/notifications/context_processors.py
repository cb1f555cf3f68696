"""The header's unread count, on every page rendered with a request."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from boardsite.notifications import services


def notifications(request: HttpRequest) -> dict[str, Callable[[], int]]:
    """``notifications_unread``: the signed-in person's unread count, counted when a template first asks for it (one
    query on the partial index ``notification_unread``, however often the template uses it), never for anonymous
    visitors or for a response that does not show the header."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Templates call a callable they are given: cached, so two uses on one page still make one query.
    return {"notifications_unread": functools.cache(lambda: services.unread_count(user))}
