"""Presigned S3 GET URLs at microseconds each, and the same URL for the same object for a while.

botocore's ``generate_presigned_url`` builds a request, runs its event hooks and endpoint rules and signs, for every
URL: ~0.6 ms each, most of a board page's cost. This signs the way botocore does (SigV4 query authentication,
``UNSIGNED-PAYLOAD``, host as the only signed header) with the same credentials, and gives byte-identical URLs for
the same inputs (tests/images/test_signing.py compares them), at a small fraction of the cost:

- The URL's fixed parts (scheme, host, path prefix, credential scope) are taken once from one URL botocore presigns
  for this client and bucket, so the addressing style and endpoint are botocore's own, whatever they are.
- The SigV4 signing key (four HMACs) is derived once per day and credentials.
- The signing time is rounded down to a window (``window`` seconds): every URL for an object within one window is
  the same, so the browser's cache (the variants' one-year immutable ``Cache-Control``) works across renders.
  The URL stays valid until ``window start + lifetime``: never longer than ``lifetime`` after it was signed, and at
  least ``lifetime - window`` after it was handed out. Never past the credentials' expiry either.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's limit on X-Amz-Expires
_PROBE_KEY = "probe"


def _quote(value: str, safe: str = "-_.~") -> str:
    return quote(value, safe=safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class UrlSigner:
    """Presigned GET URLs for objects of one bucket, signed with an S3 client's credentials."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        *,
        lifetime: int,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < 2 * window <= lifetime <= MAX_EXPIRES:
            # A URL handed out at the end of its window must still have half its lifetime left.
            raise ValueError(f"need 0 < 2 × window ({window}) <= lifetime ({lifetime}) <= {MAX_EXPIRES}")
        self._s3, self._bucket = s3, bucket
        self.lifetime, self.window, self._clock = lifetime, window, clock
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], bytes] = {}
        self._window_cache: tuple[tuple[Any, ...], tuple[str, str, str, bytes]] | None = None
        probe = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}))
        if not probe.path.endswith("/" + _PROBE_KEY):
            raise ValueError(f"unexpected presigned URL shape: {probe.geturl()}")
        self._origin = f"{probe.scheme}://{probe.netloc}"
        self._host = probe.netloc
        self._path_prefix = probe.path[: -len(_PROBE_KEY)]
        scope = dict(parse_qsl(probe.query))["X-Amz-Credential"].split("/")
        self._region, self._service = scope[2], scope[3]

    def _credentials(self) -> tuple[Any, float | None]:
        credentials = self._s3._request_signer._credentials  # what generate_presigned_url itself signs with
        expiry = getattr(credentials, "_expiry_time", None)  # refreshable (assumed-role) credentials only
        frozen = credentials.get_frozen_credentials()  # refreshes them when close to expiry
        return frozen, expiry.timestamp() if expiry is not None else None

    def _signing_key(self, secret: str, day: str) -> bytes:
        with self._lock:
            key = self._keys.get((secret, day))
            if key is None:
                key = _hmac(("AWS4" + secret).encode(), day)
                for part in (self._region, self._service, "aws4_request"):
                    key = _hmac(key, part)
                self._keys = {(secret, day): key}  # only the current day's key is kept
            return key

    def timing(self, now: float | None = None, credentials_expiry: float | None = None) -> tuple[int, int]:
        """(signing time, X-Amz-Expires) for a URL handed out at ``now``."""
        now = self._clock() if now is None else now
        start = int(now // self.window * self.window)
        expires = self.lifetime
        if credentials_expiry is not None and start + expires > credentials_expiry:
            # A URL cannot outlive the credentials that signed it: end it with them (still at least until now).
            expires = max(int(credentials_expiry) - start, int(now) - start + 1)
        return start, expires

    def _window(self) -> tuple[str, str, str, bytes]:
        """What every URL of the current window shares: (canonical query, URL query, string-to-sign prefix, key)."""
        credentials, expiry = self._credentials()
        start, expires = self.timing(credentials_expiry=expiry)
        cache_key = (start, expires, credentials.access_key, credentials.secret_key, credentials.token)
        cached = self._window_cache
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        stamp = datetime.fromtimestamp(start, UTC)
        amz_date, day = stamp.strftime("%Y%m%dT%H%M%SZ"), stamp.strftime("%Y%m%d")
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        params = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "host",
        }
        if credentials.token is not None:
            params["X-Amz-Security-Token"] = credentials.token
        canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(params.items()))
        # botocore's order in the URL: the parameters as inserted (not sorted); the signature goes last.
        query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params.items())
        shared = (
            canonical_query,
            query,
            f"{ALGORITHM}\n{amz_date}\n{scope}\n",
            self._signing_key(credentials.secret_key, day),
        )
        self._window_cache = (cache_key, shared)
        return shared

    def url(self, key: str) -> str:
        """The presigned GET URL of ``key`` for the current window."""
        canonical_query, query, to_sign_prefix, signing_key = self._window()
        path = self._path_prefix + _quote(key, safe="/~")
        canonical_request = f"GET\n{path}\n{canonical_query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = to_sign_prefix + hashlib.sha256(canonical_request.encode()).hexdigest()
        signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self._origin}{path}?{query}&X-Amz-Signature={signature}"
