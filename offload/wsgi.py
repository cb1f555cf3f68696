"""A tiny WSGI callable for the events-only Zappa stage: Zappa wants an ``app_function``; this one has no routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"boardsite offload functions have no HTTP interface\n"]
