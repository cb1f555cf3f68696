"""Where the site invokes a Lambda function itself (a redelivered S3 event, a dead letter retried on Lambda): a throttle
is waited out as Lambda asks, moves to a fallback runtime when one is configured, and stops being tried for a while
when it keeps coming.

- A ``TooManyRequestsException`` (429) is retried after its ``retryAfterSeconds`` (or ``Retry-After``; else 0.1 s,
  doubling) plus up to 20 % jitter; botocore's own retries are off for these calls, so its back-off does not ignore
  the hint.
- With a fallback (``OFFLOAD_FALLBACKS``: ``job=runtime``), the work moves there as soon as waiting would pass
  ``FALLBACK_WITHIN_SECONDS`` (1 s) since the first try, exactly once per idempotency key (the cache's add).
- ``BREAKER_THROTTLES`` throttles in a row open a circuit breaker for ``BREAKER_SECONDS``: calls then go to the
  fallback at once (or fail with ``Throttled``) without calling Lambda.
- Every throttle, fallback and opening of the breaker is an ``InvokeEvent`` row: the control room counts them.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.cache import cache

from boardsite import aws

log = logging.getLogger(__name__)

FALLBACK_WITHIN_SECONDS = 1.0
BREAKER_THROTTLES = 5
BREAKER_SECONDS = 30.0
FIRST_WAIT = 0.1
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})  # ours honour retryAfterSeconds


class Throttled(Exception):
    """Lambda kept throttling and no fallback took the work."""


class Breaker:
    def __init__(self, threshold: int = BREAKER_THROTTLES, seconds: float = BREAKER_SECONDS) -> None:
        self.threshold, self.seconds = threshold, seconds
        self.failures, self.open_until = 0, 0.0
        self._lock = threading.Lock()

    def is_open(self, now: float) -> bool:
        with self._lock:
            return now < self.open_until

    def throttled(self, now: float) -> bool:
        """Count one; True when this one opened the breaker."""
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold and now >= self.open_until:
                self.open_until, self.failures = now + self.seconds, 0
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker(function: str) -> Breaker:
    with _breakers_lock:
        return _breakers.setdefault(function, Breaker())


def fallback_for(job: str) -> str | None:
    return settings.OFFLOAD_FALLBACKS.get(job)


def invoke_async(
    *,
    job: str,
    function: str,
    event: dict[str, Any],
    idempotency_key: str,
    fallback: Callable[[], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Invoke ``function`` asynchronously with ``event``; returns where the work went ("lambda", "fallback", or
    "fallback-done" when another caller already moved this key)."""
    client = aws.make_client("lambda", settings.AWS_REGION, settings.AWS_ENDPOINT_URL, config=NO_RETRIES)
    circuit = breaker(function)
    started = clock()
    wait = FIRST_WAIT
    while True:
        if circuit.is_open(clock()):
            return _fall_back(job, idempotency_key, fallback, "the circuit breaker is open")
        try:
            client.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TooManyRequestsException":
                raise
            _record(job, "throttle")
            if circuit.throttled(clock()):
                _record(job, "breaker_open")
                log.warning(
                    "%s: Lambda throttled %d times in a row; not calling it for %gs",
                    function,
                    BREAKER_THROTTLES,
                    BREAKER_SECONDS,
                )
            delay = (_retry_after(exc) or wait) * (
                1 + random.uniform(0, 0.2)
            )  # jitter: callers do not come back together
            wait = min(wait * 2, 5.0)
            if fallback is not None and clock() + delay - started > FALLBACK_WITHIN_SECONDS:
                return _fall_back(job, idempotency_key, fallback, "Lambda is throttling")
            sleep(delay)
            continue
        circuit.succeeded()
        return "lambda"


def _retry_after(exc: ClientError) -> float | None:
    raw = exc.response.get("retryAfterSeconds") or exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "retry-after"
    )
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None


def _fall_back(job: str, key: str, fallback: Callable[[], Any] | None, why: str) -> str:
    if fallback is None:
        raise Throttled(f"{job}: {why}, and no fallback is configured (OFFLOAD_FALLBACKS)")
    if not cache.add(f"offload-fallback:{job}:{key}", 1, timeout=24 * 3600):
        return "fallback-done"  # another caller moved this unit already: once
    fallback()
    _record(job, "fallback")
    log.warning("%s: %s; moved %s to %s", job, why, key, fallback_for(job))
    return "fallback"


def _record(job: str, kind: str) -> None:
    from boardsite.core.models import InvokeEvent  # loaded with the door, before the apps

    try:
        InvokeEvent.objects.create(job=job, kind=kind)
    except Exception:  # counting never stops the work
        log.warning("could not record a %s of %s", kind, job, exc_info=True)
