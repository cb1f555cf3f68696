"""Upload grants: what the site signs so that the upload-ticket function, which cannot read the database, may issue
tickets for one person on one board.

A grant names the person, the board, their role there, how many tickets and bytes it still allows, how the board's
processing is routed, when it was made and when it expires. It is ``<payload>.<signature>``: the payload is
base64url JSON, the signature base64url HMAC-SHA256 under ``UPLOAD_GRANT_KEY``, a key that only ever signs grants
(never Django's ``SECRET_KEY``): whoever holds it can grant uploads, nothing more. The site signs
(``boardsite/images/grants.py``), the function verifies (``offload/functions/upload_ticket.py``). Never imports
Django.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

VERSION = 1
UPLOADER_ROLES = ("owner", "contributor")


class GrantRefused(Exception):
    """A grant the function does not accept: ``status`` and a sentence for the client, as the site's own errors."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Grant:
    id: str
    user: int
    board: int
    role: str
    tickets: int  # how many tickets it may issue in all
    bytes: int  # the sum of their sizes, at most
    max_file: int  # one file's size, at most
    issued_at: float
    expires_at: float
    # process_image's route when the grant was made (baseline, canary, share in buckets, forced units): the function
    # places each upload as the site's door would (``registry.S3Trigger.pin``).
    route: dict[str, Any] = field(default_factory=dict)
    # Set only on the one-ticket grants the site signs for a shadow run (boardsite/images/grants.py shadow_ticket):
    # the pair it belongs to. Signed, so no client can make the function report a shadow result of its own.
    shadow: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **asdict(self)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, payload: str) -> bytes:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest()


def sign(grant: Grant, key: str) -> str:
    if not key:
        raise ValueError("no UPLOAD_GRANT_KEY: upload grants cannot be signed")
    payload = _b64(json.dumps(grant.as_dict(), separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_b64(_mac(key, payload))}"


def verify(token: Any, key: str, *, now: float | None = None, uploader: bool = True) -> Grant:
    """The grant ``token`` carries, once its signature, version, shape, expiry (and with ``uploader``, that its role
    may add photos) are checked; ``GrantRefused``."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 4096:
        raise GrantRefused(403, "This upload grant is not valid: ask the site for a new one.")
    payload, signature = token.split(".")
    try:
        expected_ok = hmac.compare_digest(_mac(key, payload), _unb64(signature))
    except (binascii.Error, ValueError):
        expected_ok = False
    if not key or not expected_ok:
        raise GrantRefused(403, "This upload grant is not valid: ask the site for a new one.")
    try:
        data = json.loads(_unb64(payload))
        if data.pop("v") != VERSION:
            raise ValueError("version")
        grant = Grant(**data)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise GrantRefused(403, "This upload grant is not valid: ask the site for a new one.") from None
    if (now if now is not None else time.time()) >= grant.expires_at:
        raise GrantRefused(403, "This upload grant has expired: ask the site for a new one.")
    if uploader:
        require_uploader(grant)
    return grant


def require_uploader(grant: Grant) -> None:
    if grant.role not in UPLOADER_ROLES:
        raise GrantRefused(403, "Only the board's contributors and owners can add photos.")
