"""Personal access tokens: how programs (the terminal client, scripts) use the JSON API as a person.

A token looks like ``bst_`` + 30 random base-62 characters + a 6-character base-62 CRC-32 of those 30, as GitHub's
do: the prefix lets secret scanners find a leaked one, and the checksum catches a mistyped or truncated token before
any database lookup (``well_formed``). Only its SHA-256 is stored (the token has ~178 random bits: a salted slow hash
adds nothing); it is shown once, when made.

``Authorization: Bearer <token>`` is read on ``/api/`` paths only (``BearerTokenMiddleware``): account pages never
accept one. A token request is not checked for CSRF (no browser sends that header by itself); it acts as the token's
owner, so it never has more than the owner's role on each board (the services check the user as for a session), and
each API view names the scope it needs (``boardsite.core.views.api_view``). Revoking or expiring a token takes effect
on the next request: each one looks the token up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets
import string
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from boardsite.accounts.models import AccessToken
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.text import visible_text_error

PREFIX = "bst_"
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BODY = 30
_CHECK = 6
LENGTH = len(PREFIX) + _BODY + _CHECK
# What each scope lets a token do on the API (checked per view: ``api_view(..., scope=...)``).
SCOPES = {
    "read": "see your boards, their photos and download links",
    "upload": "upload photos to boards you may add to",
    "manage": "create boards and delete photos and boards you may delete",
}
DEFAULT_DAYS = 30
MAX_DAYS = 365
EXPIRY_CHOICES = (7, 30, 90, 365)
MAX_ACTIVE = 50  # per person: enough for every machine and script, few enough to review on the profile page
LAST_USED_EVERY = dt.timedelta(minutes=1)  # the last use is written at most this often (not one write per request)


# A person's access token was revoked. Keyword argument: user. Sent so that apps above (``images``: upload grants)
# end what it obtained, without accounts importing them.
token_revoked = Signal()


class TokenRefused(Exception):
    """A bearer token the API does not accept; the message says why, for the client."""


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def new_token() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))
    return PREFIX + body + _checksum(body)


def well_formed(token: str) -> bool:
    """Whether ``token`` has the shape and checksum of one of ours (no database needed)."""
    if len(token) != LENGTH or not token.startswith(PREFIX) or not all(c in _ALPHABET for c in token[len(PREFIX) :]):
        return False
    body, check = token[len(PREFIX) : -_CHECK], token[-_CHECK:]
    return secrets.compare_digest(_checksum(body), check)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(
    *, user: Any, name: str, scopes: Iterable[str], days: int = DEFAULT_DAYS, now: dt.datetime | None = None
) -> tuple[AccessToken, str]:
    """Make a token for ``user``; the row and the token itself (shown once: only its digest is kept)."""
    name = " ".join(str(name or "").split())
    chosen = sorted(set(scopes))
    if not name:
        raise Invalid("Give the token a name, such as the machine or script that will use it.")
    if len(name) > 80:
        raise Invalid("A token's name is at most 80 characters.")
    if problem := visible_text_error(name, field="token name"):
        raise Invalid(problem)
    if not chosen or any(s not in SCOPES for s in chosen):
        raise Invalid(f"Choose the token's scopes among: {', '.join(SCOPES)}.")
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise Invalid(f"A token expires after 1 to {MAX_DAYS} days.")
    now = now or timezone.now()
    token = new_token()
    with transaction.atomic():
        active = AccessToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True, expires_at__gt=now)
        if len(active) >= MAX_ACTIVE:
            raise Invalid(f"You have {MAX_ACTIVE} active tokens already: revoke one you no longer use first.")
        row = AccessToken.objects.create(
            user=user,
            name=name,
            digest=digest_of(token),
            shown=token[: len(PREFIX) + 8],
            scopes=chosen,
            expires_at=now + dt.timedelta(days=days),
        )
    return row, token


def tokens_of(user: Any) -> list[AccessToken]:
    return list(AccessToken.objects.filter(user=user).order_by("-created_at"))


def token_revoke(*, user: Any, token_id: int, now: dt.datetime | None = None) -> AccessToken:
    """Revoke one of ``user``'s own tokens (someone else's is not found: it does not exist for them)."""
    row = AccessToken.objects.filter(pk=token_id, user=user).first()
    if row is None:
        raise NotFound("No such token.")
    if row.revoked_at is None:
        row.revoked_at = now or timezone.now()
        row.save(update_fields=["revoked_at"])
        # What the token obtained ends with it: ``images`` ends the person's upload grants (any board).
        token_revoked.send(sender=AccessToken, user=user)
    return row


def authenticate(token: str, *, address: str | None, now: dt.datetime | None = None) -> AccessToken:
    """The live token ``token`` names (its user loaded), its use recorded; ``TokenRefused`` saying why not."""
    if not well_formed(token):
        raise TokenRefused("That is not a boardsite access token (check it was copied whole).")
    now = now or timezone.now()
    row = AccessToken.objects.select_related("user").filter(digest=digest_of(token)).first()
    if row is None:
        raise TokenRefused("Unknown access token.")
    if row.revoked_at is not None:
        raise TokenRefused("This access token was revoked.")
    if row.expires_at <= now:
        raise TokenRefused("This access token has expired: make a new one on your profile page.")
    if not row.user.is_active:
        raise TokenRefused("This account is disabled.")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY or row.last_used_address != address:
        AccessToken.objects.filter(pk=row.pk).update(last_used_at=now, last_used_address=address)
        row.last_used_at, row.last_used_address = now, address
    return row


class BearerTokenMiddleware:
    """``Authorization: Bearer <token>`` on ``/api/`` paths: the request acts as the token's owner (the session, if
    any, is ignored) and is not CSRF-checked. A token that is refused is a JSON 401 saying why."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header and request.path_info.startswith("/api/"):
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return _refused("Send the token as “Authorization: Bearer <token>”.")
            try:
                token = authenticate(value.strip(), address=_remote_address(request))
            except TokenRefused as exc:
                return _refused(str(exc))
            request.user = token.user
            request.access_token = token  # type: ignore[attr-defined]
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]  # no browser sends this header
        return self.get_response(request)


def _remote_address(request: HttpRequest) -> str | None:
    try:
        return str(ipaddress.ip_address((request.META.get("REMOTE_ADDR") or "").strip()))
    except ValueError:
        return None


def _refused(message: str) -> HttpResponse:
    response = JsonResponse({"error": message}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="boardsite", error="invalid_token"'
    return response


def expiry_choices() -> list[tuple[int, str]]:
    return [(days, f"{days} days" if days < MAX_DAYS else "a year") for days in EXPIRY_CHOICES]
