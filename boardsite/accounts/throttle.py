"""Log-in and sign-up throttling (README, "Accounts and sign-in protection").

Log-in: django-axes with its database handler counts failed log-ins per account (by canonical name, so ``Contrib1``
and ``CONTRIB1`` are one account) and per client address, separately (``AXES_LOCKOUT_PARAMETERS``), in the database
every web process and Lambda instance shares. ``LOGIN_FAILURE_LIMIT`` failures lock that account or address out.

Growing lock-outs: axes' cool-off can be a callable, but it is one duration per request and axes forgets the failures
once it has passed, so it cannot know by itself how often a key was locked out before. The smallest hook around it:
``LoginLockout`` remembers each key's lock-outs (``record_lockout``, on axes' ``user_locked_out`` signal); ``cool_off``
(``AXES_COOLOFF_TIME``) answers ``LOGIN_LOCKOUT_SECONDS`` doubled for each earlier lock-out of this request's account or
address, capped at ``LOGIN_LOCKOUT_MAX_SECONDS``, and forgotten after a day without one. Failures during a lock-out are
not counted (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False``), so "try again at 10:42" stays true. Each
failure's expiry (``AXES_USE_ATTEMPT_EXPIRATION``) keeps it until its own lock-out ends, whatever cool-off another
request's clean-up uses.

Known devices (OWASP's "device cookie"): without them anyone could keep a chosen person out for good by sending five
wrong passwords for that name every hour. A successful log-in gives the browser a signed, HttpOnly, SameSite=Lax cookie
(``DEVICE_COOKIE``, ``LOGIN_DEVICE_COOKIE_AGE``; Secure in production) naming the account and a random device id. A
log-in for that account from that browser is counted under ``<account>#device:<id>`` (``axes_username``) instead of the
account, and only under it (``lockout_parameters``): neither the account's lock-out nor its address's applies to it
(others behind the same office, NAT or IPv6 /64 may have locked that address), its own failures lock only that device
(growing as any key) and do not count against the address (``ThrottleHandler``). Without such a cookie, or with one for
another account or forged, the account and the address are locked as always. ``#`` is in no username, so no account
key can be a device key.

Sign-up: django-ratelimit counts sign-up attempts per client address in the shared cache (``CACHES``).

The client address is ``REMOTE_ADDR`` (on Lambda, Zappa sets it from API Gateway's source IP); ``X-Forwarded-For`` is
whatever the client wrote, so it is never trusted. IPv6 addresses count per /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import math
import secrets
from datetime import datetime, timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_parameters, get_client_username
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_ratelimit import ALL as ALL_METHODS
from django_ratelimit.core import get_usage

from boardsite.accounts.forms import LoginForm
from boardsite.accounts.models import LoginLockout
from boardsite.accounts.usernames import canonical_username

FORGET_AFTER = timedelta(days=1)  # a key not locked out for this long starts again at the shortest lock-out
DEVICE_COOKIE = "boardsite_device"
_DEVICE_SALT = "boardsite.accounts.throttle.device"
_DEVICE_MARK = "#device:"


def client_address(request: HttpRequest | None) -> str | None:
    """``AXES_CLIENT_IP_CALLABLE``: ``REMOTE_ADDR``; an IPv6 address as its /64 network."""
    raw = (request.META.get("REMOTE_ADDR") or "") if request is not None else ""
    try:
        ip = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def _account(raw: object) -> str:
    # AccessAttempt.username holds 255 characters, with room for a device id.
    return canonical_username(str(raw or "").strip())[:200]


def _known_device(request: HttpRequest | None, account: str) -> str | None:
    """The id of this browser if its device cookie is valid and for ``account``, else None."""
    raw = request.COOKIES.get(DEVICE_COOKIE) if request is not None else None
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=_DEVICE_SALT, max_age=settings.LOGIN_DEVICE_COOKIE_AGE)
    except signing.BadSignature:  # also an expired one
        return None
    if not isinstance(data, dict) or data.get("account") != account or not isinstance(data.get("device"), str):
        return None
    return data["device"]


def axes_username(request: HttpRequest | None, credentials: dict[str, Any] | None = None) -> str:
    """``AXES_USERNAME_CALLABLE``: the account a log-in is for, by canonical name; from a known device of that account,
    the device (so that its failures, and the account's lock-out, are its own)."""
    raw = (credentials or {}).get("username")
    if raw is None and request is not None:
        raw = request.POST.get("username")
    account = _account(raw)
    device = _known_device(request, account)
    return f"{account}{_DEVICE_MARK}{device}" if device else account


def _is_device_key(username: str) -> bool:
    return _DEVICE_MARK in username


def lockout_parameters(request: object, credentials: dict[str, Any] | None = None) -> list[str]:
    """``AXES_LOCKOUT_PARAMETERS``: a log-in from a known device of its account is counted and locked by the device
    key alone; any other by account and by address, each on its own."""
    if isinstance(request, HttpRequest) and _is_device_key(axes_username(request, credentials)):
        return ["username"]
    return ["ip_address", "username"]


def _by_address(queryset: QuerySet) -> QuerySet:
    """An address's failures: a known device's are its own, not its address's."""
    return queryset.exclude(username__contains=_DEVICE_MARK)


class ThrottleHandler(AxesDatabaseHandler):
    """``AXES_HANDLER``: axes' database handler, except that an address's failures leave out known devices' ones."""

    def filter_user_attempts(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> list[QuerySet]:
        filters = get_client_parameters(
            get_client_username(request, credentials),
            request.axes_ip_address,
            request.axes_user_agent,
            request,
            credentials,
        )
        return [
            AccessAttempt.objects.filter(**f) if "username" in f else _by_address(AccessAttempt.objects.filter(**f))
            for f in filters
        ]


def remember_device(response: HttpResponse, *, request: HttpRequest, username: str) -> HttpResponse:
    """After a successful log-in (or sign-up) as ``username``: this browser is a known device of that account."""
    account = _account(username)
    device = _known_device(request, account) or secrets.token_urlsafe(12)
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps({"account": account, "device": device}, salt=_DEVICE_SALT),
        max_age=settings.LOGIN_DEVICE_COOKIE_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


def _duration(strikes: int) -> timedelta:
    base, cap = settings.LOGIN_LOCKOUT_SECONDS, settings.LOGIN_LOCKOUT_MAX_SECONDS
    return timedelta(seconds=min(base * 2 ** (min(max(strikes, 1), 40) - 1), cap))


def _strikes(row: LoginLockout | None, now: datetime) -> int:
    if row is None or row.locked_until < now - FORGET_AFTER:
        return 0
    return row.strikes


def _keys(request: HttpRequest, username: str | None = None, address: str | None = None) -> dict[str, str | None]:
    """``{"username": …, "ip_address": …}`` (axes' lock-out parameters) of a log-in request; a known device's only
    ``{"username": <device key>}``."""
    username = axes_username(request) if username is None else username
    if _is_device_key(username):
        return {"username": username}
    return {
        "username": username,
        "ip_address": address or getattr(request, "axes_ip_address", None) or client_address(request),
    }


def _row_key(field: str, value: str) -> str:
    return f"{'username' if field == 'username' else 'ip'}:{value}"[:300]


def cool_off(request: HttpRequest | None) -> timedelta:
    """``AXES_COOLOFF_TIME``: how long this request's account and address remember failures and stay locked out."""
    if request is None:
        return _duration(1)
    now = timezone.now()
    keys = [_row_key(f, v) for f, v in _keys(request).items() if v is not None]
    rows = LoginLockout.objects.filter(key__in=keys)
    return max((_duration(_strikes(row, now)) for row in rows), default=_duration(1))


def record_lockout(sender: object, request: HttpRequest, username: str, ip_address: str | None, **kwargs: Any) -> None:
    """On axes' ``user_locked_out``: count a new lock-out of each key (account, address) that reached the limit."""
    now = timezone.now()
    window = cool_off(request)  # the one axes counted the failures in, before this lock-out lengthens it
    for field, value in _keys(request, username=username, address=ip_address).items():
        if value is None:
            continue
        key = _row_key(field, value)
        with transaction.atomic():
            row = LoginLockout.objects.select_for_update().filter(key=key).first()
            if row is not None and row.locked_until > now:
                continue  # axes signals every refused attempt; this lock-out is already counted
            attempts = AccessAttempt.objects.filter(**{field: value})
            attempts = attempts if field == "username" else _by_address(attempts)
            failures = attempts.filter(attempt_time__gte=now - window).aggregate(n=Sum("failures_since_start"))["n"]
            if (failures or 0) < settings.AXES_FAILURE_LIMIT:
                continue  # the other key is the one locked out
            strikes = _strikes(row, now) + 1
            until = now + _duration(strikes)
            LoginLockout.objects.update_or_create(key=key, defaults={"strikes": strikes, "locked_until": until})
            # Axes set these failures to expire after the shorter cool-off; they are what keeps this lock-out.
            AccessAttemptExpiration.objects.filter(access_attempt__in=attempts, expires_at__lt=until).update(
                expires_at=until
            )
    LoginLockout.objects.filter(locked_until__lt=now - FORGET_AFTER).delete()  # forgotten anyway


def in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes" if minutes < 90 else f"{math.ceil(minutes / 60)} hours"


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the log-in page, 429, ``Retry-After`` and a sentence saying when to try again."""
    now = timezone.now()
    keys = [_row_key(f, v) for f, v in _keys(request).items() if v is not None]
    until = LoginLockout.objects.filter(key__in=keys, locked_until__gt=now).aggregate(t=Max("locked_until"))["t"]
    until = until or now + cool_off(request)
    seconds = max(1, math.ceil((until - now).total_seconds()))
    message = (
        "Too many failed log-ins for this account or from your network. "
        f"Try again in {in_words(seconds)} (after {until:%H:%M} UTC)."
    )
    form = LoginForm(request, initial={"username": request.POST.get("username", "")})
    next_url = request.POST.get("next") or request.GET.get("next", "")
    context = {"form": form, "next": next_url, "throttled": message}
    return retry_after(render(request, "registration/login.html", context, status=429), seconds)


def rate_wait(request: HttpRequest, *, group: str, key: str, rate: str) -> int | None:
    """Count one request under ``group``/``key`` in the shared cache: the seconds to wait when it is over ``rate``,
    else None. The count comes first (one atomic increment), so requests sent at once cannot pass together."""
    usage = get_usage(request, group=group, key=lambda g, r: key, rate=rate, method=ALL_METHODS, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    # time_left is -1 when the cache did not answer (django-ratelimit then refuses: fail closed).
    return usage["time_left"] if usage["time_left"] > 0 else 60


def signup_wait(request: HttpRequest) -> int | None:
    """Count a sign-up attempt of this address: the seconds it must wait when over ``SIGNUP_RATE``, else None."""
    if request.method != "POST":
        return None
    return rate_wait(
        request, group="accounts.signup", key=client_address(request) or "unknown", rate=settings.SIGNUP_RATE
    )


def signup_throttled_message(seconds: int) -> str:
    # django-ratelimit counts in fixed windows, not the last hour: say only when the next one starts.
    until = timezone.now() + timedelta(seconds=seconds)
    return f"Too many sign-up attempts from your network. Try again in {in_words(seconds)} (after {until:%H:%M} UTC)."


def retry_after(response: HttpResponse, seconds: int) -> HttpResponse:
    response["Retry-After"] = str(seconds)
    return response


def _reset_rate() -> str:
    return getattr(settings, "PASSWORD_RESET_RATE", "") or settings.SIGNUP_RATE


def mail_request_wait(request: HttpRequest, *, group: str, targets: list[str]) -> int | None:
    """Count a request that sends mail (a password reset, an address confirmation): per client address, and per
    target (the address mailed, the account asking) *from that client address*, each at ``PASSWORD_RESET_RATE``
    (default ``SIGNUP_RATE``). Per target and requester, not per target alone: otherwise a stranger who asks for
    someone's reset ten times an hour keeps its owner from getting one. One network cannot fill a mailbox; many
    networks each get the rate. The seconds to wait when over any, else None. The answer does not depend on whether
    an account exists (no enumeration)."""
    client = client_address(request) or "unknown"
    if wait := rate_wait(request, group=f"{group}.address", key=client, rate=_reset_rate()):
        return wait  # over already: no new counter per target (made-up addresses would only fill the cache)
    keys = [f"{t.strip().lower()}|{client}" for t in targets]
    waits = [rate_wait(request, group=f"{group}.target", key=key, rate=_reset_rate()) for key in keys]
    return max((w for w in waits if w), default=None)


def reauth_wait(request: HttpRequest) -> int | None:
    """Count one attempt at the current password on the forms that ask for it (address and password changes), per
    session, *before* it is checked: past ``REAUTH_RATE`` the seconds to wait, else None. So at most that many
    passwords are ever checked in a window, however many requests arrive at once (a count after a wrong answer let
    every request in flight through), and a session someone else holds cannot guess through these forms faster; its
    attempts do not lock the owner's own sessions out (log-in is throttled per account by axes)."""
    key = f"session:{request.session.session_key or request.user.pk}"
    return rate_wait(request, group="accounts.reauth", key=key, rate=settings.REAUTH_RATE)


def reauth_throttled_message(seconds: int) -> str:
    until = timezone.now() + timedelta(seconds=seconds)
    return f"Too many wrong passwords. Try again in {in_words(seconds)} (after {until:%H:%M} UTC)."


def mail_throttled_message(seconds: int) -> str:
    until = timezone.now() + timedelta(seconds=seconds)
    return f"Too many requests to send mail. Try again in {in_words(seconds)} (after {until:%H:%M} UTC)."


def unlock_account(user: Any) -> None:
    """After a password reset by email (proof of the mailbox): forget the account's failed log-ins and end its
    lock-out, so the new password works at once. Its strikes stay (a next lock-out is as long as it would have been);
    an address's failures for other accounts and known devices' own failures are untouched."""
    account = _account(user.get_username())
    with transaction.atomic():
        AccessAttempt.objects.filter(username=account).delete()
        LoginLockout.objects.filter(key=_row_key("username", account), locked_until__gt=timezone.now()).update(
            locked_until=timezone.now()
        )
