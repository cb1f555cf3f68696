"""Links that leave the site in mail: always on the site's public address (``SITE_URL``), never on the request's.

A request's ``Host`` is the client's to write: within ``ALLOWED_HOSTS`` it can still pick an alias or a port, and a
link built from it would send a reset or confirmation token wherever that points.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import get_script_prefix


def site_link(path: str) -> str:
    """``SITE_URL`` + ``path`` (a ``reverse()`` result). The request's script prefix (API Gateway's ``/web`` stage
    path) is dropped from ``path``: ``SITE_URL`` says where the site lives, and a scheduled job reverses without one."""
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix) :]
    return settings.SITE_URL.rstrip("/") + path
