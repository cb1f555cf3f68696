"""Optional CloudFront delivery of photo variants (``BOARDSITE_CDN_URL``; DEPLOY.md, "Serving photos through
CloudFront"). Without it, variants are presigned S3 GETs (``selectors.presigned_get``).

With it, a variant's URL is plain, ``<cdn>/variants/<board>/<image>/<file>``: the same for everyone and forever, so
CloudFront's edge caches and the browser's cache both keep it. The distribution only serves signed requests (its
trusted key group), and access comes from one of two CloudFront signatures made with botocore's ``CloudFrontSigner``:

- a response that shows a board's photos (its pages, its tiles, an image, the status API) carries **signed cookies**
  for that board: a custom policy on ``<cdn>/variants/<board>/*`` with ``Path=/variants/<board>/``, so they reach the
  CDN for that board's files only. A view grants them (``grant``) after the access check; anyone who may view a
  public board gets them. One board per response: every page and poll shows one board, and a response holds one
  cookie per name (Django's ``response.cookies``);
- any other variant URL (a home page's covers of many boards, a URL made outside a request) is a **signed URL**
  (canned policy on that one object).

Both expire at the start of the current window (``IMAGE_URL_WINDOW_SECONDS``) plus ``IMAGE_URL_SECONDS``, like the
presigned S3 URLs: the same signature for a whole window, so it is made once per window and process (an RSA
signature is ~1 ms) and a signed URL repeats, cacheable, for the window.

Deleting a photo or a board deletes its objects (``cleanup``) and then, with ``BOARDSITE_CDN_DISTRIBUTION_ID``,
invalidates their variants' paths on the distribution (``invalidate``), so the edges stop serving them at once;
without it, they drop them within the distribution's maximum TTL (a day: deploy/template.py).

The key pair comes from the environment when first needed (``BOARDSITE_CDN_KEY_ID``, the CloudFront public key's id,
and ``BOARDSITE_CDN_PRIVATE_KEY``, its PEM private key: SecureStrings under ``BOARDSITE_SSM_PREFIX``, which may be
loaded only after a SnapStart restore), and again whenever they change.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from offload.config import VARIANTS_PREFIX

log = logging.getLogger(__name__)

COOKIE_NAMES = ("CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id")
COOKIE_BOARDS_MAX = 1  # boards whose cookies one response sets: Django's response.cookies keeps one per name
SIGNATURES_CACHED = 4096


class CdnNotConfigured(RuntimeError):
    """CloudFront delivery is on but its key pair is missing or unreadable."""


def enabled() -> bool:
    return bool(settings.BOARDSITE_CDN_URL)


def board_of(key: str) -> int | None:
    """The board a variant key belongs to (``variants/<board>/<image>/<file>``), None for any other key."""
    if not key.startswith(VARIANTS_PREFIX):
        return None
    board = key[len(VARIANTS_PREFIX) :].split("/", 1)[0]
    return int(board) if board.isascii() and board.isdigit() else None


def _rsa_signer(pem: str) -> Callable[[bytes], bytes]:
    from cryptography.hazmat.primitives import hashes, serialization  # only in CloudFront mode (deploy's cdn extra)
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CdnNotConfigured("BOARDSITE_CDN_PRIVATE_KEY is not an RSA private key (CloudFront key pairs are RSA)")

    def sign(message: bytes) -> bytes:
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # CloudFront verifies SHA-1 signatures

    return sign


class CdnSigner:
    """CloudFront signed cookies per board and signed URLs per object, for one distribution and key pair."""

    def __init__(
        self,
        base_url: str,
        key_id: str,
        private_key_pem: str,
        *,
        lifetime: int,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from botocore.signers import CloudFrontSigner

        if not 0 < 2 * window <= lifetime:
            raise ValueError(f"need 0 < 2 × window ({window}) <= lifetime ({lifetime})")
        self.base_url = base_url.rstrip("/")
        self.lifetime, self.window, self._clock = lifetime, window, clock
        self._signer = CloudFrontSigner(key_id, _rsa_signer(private_key_pem))
        self._lock = threading.Lock()
        self._made: OrderedDict[tuple[Any, ...], Any] = OrderedDict()  # signatures of recent windows, LRU

    def _remember(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``'s value for ``key`` (it includes the expiry), made once while it is among the latest used."""
        with self._lock:
            if key in self._made:
                self._made.move_to_end(key)
                return self._made[key]
        value = make()  # outside the lock: an RSA signature
        with self._lock:
            self._made[key] = value
            while len(self._made) > SIGNATURES_CACHED:
                self._made.popitem(last=False)
        return value

    def expires_at(self, now: float | None = None) -> int:
        """When what is signed now expires: the window's start plus the lifetime (epoch seconds)."""
        now = self._clock() if now is None else now
        return int(now // self.window * self.window) + self.lifetime

    def object_url(self, key: str) -> str:
        return f"{self.base_url}/{quote(key, safe='/~')}"

    def signed_url(self, key: str) -> str:
        """The object's URL with a canned-policy signature: the same for the whole window."""
        expires = self.expires_at()
        return self._remember(
            ("url", key, expires),
            lambda: self._signer.generate_presigned_url(
                self.object_url(key), date_less_than=dt.datetime.fromtimestamp(expires, dt.UTC)
            ),
        )

    def board_resource(self, board_id: int) -> str:
        return f"{self.base_url}/{VARIANTS_PREFIX}{board_id}/*"

    def board_cookies(self, board_id: int) -> tuple[dict[str, str], int]:
        """The three CloudFront cookies granting ``board_id``'s variants, and when they expire (epoch seconds).

        The values are exactly what botocore puts in a custom-policy signed URL's query (Policy, Signature,
        Key-Pair-Id), which CloudFront reads from the cookies of the same names.
        """
        expires = self.expires_at()

        def make() -> dict[str, str]:
            policy = self._signer.build_policy(
                self.board_resource(board_id), dt.datetime.fromtimestamp(expires, dt.UTC)
            )
            query = dict(parse_qsl(urlsplit(self._signer.generate_presigned_url("x", policy=policy)).query))
            return {name: query[name.removeprefix("CloudFront-")] for name in COOKIE_NAMES}

        return self._remember(("cookies", board_id, expires), make), expires


@functools.lru_cache(maxsize=2)
def _signer(base_url: str, key_id: str, pem: str, lifetime: int, window: int) -> CdnSigner:
    return CdnSigner(base_url, key_id, pem, lifetime=lifetime, window=window)


def signer() -> CdnSigner:
    """The signer for the configured distribution and the key pair now in the environment."""
    key_id = os.environ.get("BOARDSITE_CDN_KEY_ID", "").strip()
    pem = os.environ.get("BOARDSITE_CDN_PRIVATE_KEY", "").strip()
    if "\\n" in pem and "\n" not in pem:  # pasted on one line
        pem = pem.replace("\\n", "\n")
    if not key_id or not pem:
        raise CdnNotConfigured(
            "BOARDSITE_CDN_URL is set but BOARDSITE_CDN_KEY_ID or BOARDSITE_CDN_PRIVATE_KEY is not "
            "(SecureStrings under BOARDSITE_SSM_PREFIX; DEPLOY.md, 'Serving photos through CloudFront')"
        )
    lifetime = settings.IMAGE_URL_SECONDS
    window = max(1, min(settings.IMAGE_URL_WINDOW_SECONDS, lifetime // 2))
    try:
        return _signer(settings.BOARDSITE_CDN_URL, key_id, pem, lifetime, window)
    except (ValueError, TypeError) as exc:  # cryptography's words for a PEM it cannot read
        raise CdnNotConfigured(f"BOARDSITE_CDN_PRIVATE_KEY could not be read: {exc}") from None


def distribution_id() -> str:
    """The distribution whose cache a delete invalidates (read where used: it may come from SSM after a restore)."""
    return os.environ.get("BOARDSITE_CDN_DISTRIBUTION_ID", "").strip()


def invalidate(prefixes: list[str], *, quick: bool = False) -> str | None:
    """Ask the distribution to drop everything cached under these variant prefixes; the invalidation's id, or None
    when there is nothing to do (no CDN, no distribution id, no variant prefix)."""
    paths = sorted({f"/{quote(p, safe='/~')}*" for p in prefixes if p.startswith(VARIANTS_PREFIX)})
    if not (enabled() and distribution_id() and paths):
        return None
    from boardsite import aws  # boto3 only when there is something to invalidate

    answer = aws.client("cloudfront", quick=quick).create_invalidation(
        DistributionId=distribution_id(),
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": f"boardsite-{uuid.uuid4()}",
        },
    )
    return answer["Invalidation"]["Id"]


# --- Which boards this response grants cookies for ----------------------------------------------------------------

_granted: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("cdn_granted", default=None)


def grant(board_id: int) -> None:
    """This response may show ``board_id``'s photos (the caller checked access): give it the board's cookies, so its
    variant URLs are plain. Ignored outside a request, without a CDN, and for a second board (its URLs are signed)."""
    granted = _granted.get()
    if granted is not None and (board_id in granted or len(granted) < COOKIE_BOARDS_MAX):
        granted.add(board_id)


def variant_url(key: str) -> str:
    """A variant's CloudFront URL: plain when this response carries its board's cookies, signed otherwise."""
    cdn = signer()
    granted = _granted.get()
    if granted is not None and board_of(key) in granted:
        return cdn.object_url(key)
    return cdn.signed_url(key)


def _set_cookies(response: HttpResponseBase, cdn: CdnSigner, board_id: int) -> None:
    cookies, expires = cdn.board_cookies(board_id)
    max_age = max(0, expires - int(time.time()))
    for name, value in cookies.items():
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=f"/{VARIANTS_PREFIX}{board_id}/",
            domain=settings.BOARDSITE_CDN_COOKIE_DOMAIN or None,
            secure=cdn.base_url.startswith("https://"),
            httponly=True,
            samesite="Lax",
        )


class CdnCookieMiddleware:
    """Collects the boards a response grants (``grant``) and sets their CloudFront cookies on it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if not enabled():
            return self.get_response(request)
        granted: set[int] = set()
        token = _granted.set(granted)
        try:
            response = self.get_response(request)
        finally:
            _granted.reset(token)
        if granted:  # granted after the access check: a form's 400 shows the photos too
            try:
                cdn = signer()
            except CdnNotConfigured:  # the page's URLs came from S3 then (selectors.variant_url logs why)
                return response
            for board_id in sorted(granted):
                _set_cookies(response, cdn, board_id)
            # Cookies are per person: no shared cache may hand them to another.
            response.headers.setdefault("Cache-Control", "private")
        return response
