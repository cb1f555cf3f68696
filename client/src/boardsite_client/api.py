"""The site's JSON API over ``requests``, with the retry policy every call shares.

Transient failures (connection errors, timeouts, 5xx) are retried with capped exponential back-off and full jitter
(each wait uniform in [0, min(cap, base * 2**attempt)]: clients that failed together do not come back together).
A 429 is waited out for exactly its ``Retry-After`` (plus a little jitter), without using up a retry, until one
request has waited longer than ``max_throttle_wait`` in all: then ``ThrottledOut`` (exit code 4).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from boardsite_client import __version__
from boardsite_client.errors import AuthError, ClientError, ThrottledOut, UsageError

TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# S3 answers these codes (in its XML error body) for conditions that pass: retry them like a 5xx.
S3_TRANSIENT_CODES = ("RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed")
TIMEOUT = (10, 120)  # (connect, read) seconds; an upload's read timeout covers S3 taking in a large file


class ApiError(ClientError):
    """An answer the caller has to deal with (4xx other than 401 and 429): its status and the site's sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ScopeError(AuthError):
    """A 403 naming a scope the token lacks."""


class TransientError(ClientError):
    """Still failing after every retry: the connection, a 5xx or S3 (the message says which)."""


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds to wait: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def error_message(response: requests.Response) -> str:
    """The site's ``{"error": ...}`` sentence, or a short description of a non-JSON answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    text = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


def s3_transient(response: requests.Response) -> bool:
    return response.status_code in TRANSIENT_STATUS or any(
        f"<Code>{c}</Code>" in response.text for c in S3_TRANSIENT_CODES
    )


@dataclass
class Retry:
    """The retry policy; ``sleep`` is how to wait (the CLI's wakes up on Ctrl-C), ``rng`` the jitter's source."""

    attempts: int = 6  # tries of one request on transient failures, the first included
    base: float = 0.5
    cap: float = 30.0
    max_throttle_wait: float = 600.0  # seconds of 429s one request may wait out before giving up
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Seconds before try number ``attempt + 1`` (``attempt`` counts from 0)."""
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))

    def throttle_wait(self, retry_after: float | None, attempt: int) -> float:
        """How long to wait after a 429: its ``Retry-After`` and up to 10 % more (so threads spread out), or the
        back-off when the answer named no time."""
        if retry_after is None:
            return max(1.0, self.backoff(attempt))
        return retry_after + self.rng.uniform(0, 0.1 * retry_after + 0.05)

    def call(
        self,
        send: Callable[[], requests.Response],
        *,
        transient: Callable[[requests.Response], bool] = lambda r: r.status_code in TRANSIENT_STATUS,
        what: str = "the request",
        renew: Callable[[requests.Response], bool] = lambda r: False,
    ) -> requests.Response:
        """``send()`` until it answers something that is neither transient nor a 429; returns that answer (also a
        429 that ``renew`` says is not a reason to wait: the caller asks for something new instead)."""
        failures = 0
        throttled = 0.0
        throttles = 0
        while True:
            try:
                response = send()
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 429 and not renew(response):
                    asked = retry_after_seconds(response.headers.get("Retry-After"))
                    wait = self.throttle_wait(asked, throttles)
                    throttles += 1
                    if throttled + wait > self.max_throttle_wait:
                        if throttled > 0:
                            said = f"kept answering 429 (too many requests) to {what} for {throttled:.0f} s"
                        else:  # nothing waited yet: the first wait alone is too long
                            said = (
                                f"answered 429 (too many requests) to {what} and asked to wait "
                                f"{asked if asked is not None else wait:.0f} s, more than --max-throttle-wait "
                                f"({self.max_throttle_wait:g} s) allows"
                            )
                        raise ThrottledOut(f"the site {said}: {error_message(response)}; try again later")
                    throttled += wait
                    self.sleep(wait)
                    continue
                if not transient(response):
                    return response
                problem = error_message(response)
            failures += 1
            if failures >= self.attempts:
                raise TransientError(f"{what} failed {failures} times, last: {problem}")
            self.sleep(self.backoff(failures - 1))


class Api:
    """One site, one token. A ``requests.Session`` per thread (sessions are not thread-safe; each keeps its
    connections alive)."""

    def __init__(self, url: str, token: str, retry: Retry | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retry = retry or Retry()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = f"boardsite-client/{__version__}"
        return session

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        """``method path`` with the token; returns an answer whose status is in ``ok``, else raises: AuthError
        for a 401 (and a 403 naming a scope), ApiError for another 4xx, TransientError / ThrottledOut when retries
        ran out."""
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **kwargs.pop("headers", {})}
        response = self.retry.call(
            lambda: self.session.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs),
            what=f"{method} {path}",
        )
        if response.status_code in ok:
            return response
        message = error_message(response)
        if response.status_code == 401:
            raise AuthError(f"the site refused the token: {message}")
        if response.status_code == 403 and "scope" in message.lower():
            raise ScopeError(f"the token may not do this: {message}")
        raise ApiError(response.status_code, message)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, body: object | None = None, *, ok: tuple[int, ...] = (200, 201)) -> Any:
        return self.request("POST", path, json=body, ok=ok).json()

    # The calls the commands make.

    def me(self) -> dict:
        return self.get("/api/me")

    def boards(self) -> list[dict]:
        return self.get("/api/boards")["boards"]

    def board(self, ref: str) -> dict:
        """A board by id or by its exact title (case-insensitive), from the boards the token's owner has."""
        try:
            boards = self.boards()
        except ApiError as exc:
            raise UsageError(f"cannot list your boards: {exc.message}") from exc
        if ref.isdigit():
            matches = [b for b in boards if str(b["id"]) == ref]
        else:
            matches = [b for b in boards if b["title"].casefold() == ref.strip().casefold()]
        if not matches:
            raise UsageError(f"no board {ref!r} among yours: `boardsite boards` lists them")
        if len(matches) > 1:
            ids = ", ".join(str(b["id"]) for b in matches)
            raise UsageError(f"{len(matches)} boards are called {ref!r} (ids {ids}): give the id instead")
        return matches[0]
