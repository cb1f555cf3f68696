"""Secrets from SSM Parameter Store, never from the zip: SecureStrings under ``BOARDSITE_SSM_PREFIX``.

Every parameter directly under the prefix whose last path part is an upper-case name (``[A-Z][A-Z0-9_]*``) becomes
the environment variable of that name, e.g. with ``BOARDSITE_SSM_PREFIX=/boardsite/prod/``:

    /boardsite/prod/DJANGO_SECRET_KEY   -> SECRET_KEY
    /boardsite/prod/DATABASE_PASSWORD   -> the password for DATABASE_URL (which carries none)
    /boardsite/prod/CACHE_URL, ...      -> any other setting read from the environment

Values from SSM replace those in the environment. Other names (lower case, nested paths) are ignored.

When: without SnapStart, while the settings load (``settings_load``), so settings read them like any variable.
Under SnapStart the settings load while Lambda takes the snapshot (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``):
nothing secret, no credentials and no connection may be frozen into it, so the settings load without secrets and a
restore hook (``snapshot_restore_py``, provided by the Lambda runtime) fetches them after each restore and sets
``SECRET_KEY``, ``SECRET_KEY_FALLBACKS`` and the database password, closes database connections and drops cached boto3
clients. Other names fetched then reach only code that reads the environment when it runs (``offload.config``), not
settings computed at snapshot time: keep non-secret configuration in the function's environment. Until secrets are
loaded, ``require()`` (called by ``SecretsMiddleware`` and the web-side job handlers) refuses to work.

Read again while running: ``require()`` fetches the secrets again once they are older than
``BOARDSITE_SECRETS_REFRESH_SECONDS`` (300 by default), so a rotated key (``DJANGO_SECRET_KEY``, the CDN's signing key)
reaches every instance within that time, warm or restored, whether or not a deploy published a new version (an
identical zip publishes none). A failed refresh keeps the values in use and is tried again a minute later.

SSM is asked with short time-outs and two attempts (``ssm_config``): an endpoint that accepts and never answers fails
the restore in about five seconds with a clear error, inside SnapStart's restore time limit, instead of hanging it.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_state: dict[str, Any] = {"pending": False, "prefix": "", "loaded_at": None}
REFRESH_SECONDS = 300  # default of BOARDSITE_SECRETS_REFRESH_SECONDS
REFRESH_RETRY_SECONDS = 60  # after a failed refresh
monotonic: Callable[[], float] = time.monotonic  # tests move the clock


class SecretsUnavailable(RuntimeError):
    """Secrets were asked for but are not loaded: never run on an empty or development key."""


def snapshot_init() -> bool:
    """Whether this process is initialising for a SnapStart snapshot (Lambda sets the variable for the init)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


@functools.cache
def ssm_config() -> Any:
    """SSM answers GetParametersByPath in tens of milliseconds: a second to connect, two to answer, two attempts. A
    hung endpoint fails in about six seconds, where the clients' usual time-outs (30 s reads, four attempts) took 150
    s, past SnapStart's restore limit. One object (a client cache key); botocore only when there is SSM to ask."""
    from botocore.config import Config

    return Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 2, "mode": "standard"})


def fetch(prefix: str, client: Any = None) -> dict[str, str]:
    """The decrypted SecureStrings directly under ``prefix``, by their upper-case names (every page)."""
    if client is None:
        from offload import aws  # boto3 only when there is something to fetch

        client = aws.make_client("ssm", _region(), os.environ.get("AWS_ENDPOINT_URL") or None, config=ssm_config())
    path = prefix if prefix.endswith("/") else prefix + "/"
    values: dict[str, str] = {}
    for page in client.get_paginator("get_parameters_by_path").paginate(
        Path=path.rstrip("/") or "/", Recursive=False, WithDecryption=True
    ):
        for parameter in page.get("Parameters", []):
            name = parameter["Name"].rsplit("/", 1)[-1]
            if NAME.fullmatch(name):
                values[name] = parameter["Value"]
    return values


def settings_load(prefix: str) -> bool:
    """Called by the settings: load the secrets into the environment now, or register the restore hook.

    Returns True when the secrets are deferred to after a SnapStart restore (the settings then start without them).
    """
    _state.update(prefix=prefix, pending=False, loaded_at=None)
    if not prefix:
        return False
    if snapshot_init():
        _state["pending"] = True
        _register_after_restore(after_restore)
        return True
    try:
        os.environ.update(fetch(prefix))
    except Exception as exc:
        raise SecretsUnavailable(f"could not read the secrets under BOARDSITE_SSM_PREFIX={prefix!r}: {exc}") from exc
    _state["loaded_at"] = monotonic()
    return False


def after_restore() -> None:
    """SnapStart restore hook: fetch the secrets and put them where the already loaded settings use them."""
    from django.conf import settings
    from django.db import connections

    from offload import aws

    aws.clear_caches()  # clients made before the snapshot hold its credentials and connections
    random.seed()  # every instance restored from one snapshot would otherwise draw the same "random" numbers
    prefix = _state["prefix"]
    try:
        values = fetch(prefix)
    except Exception as exc:
        log.exception("SnapStart restore: could not read the secrets under %s", prefix)
        raise SecretsUnavailable(f"could not read the secrets under BOARDSITE_SSM_PREFIX={prefix!r}: {exc}") from exc
    _apply(values)
    connections.close_all()  # none should be open; a connection from before the snapshot is never reused
    if not settings.SECRET_KEY:
        raise SecretsUnavailable(f"no DJANGO_SECRET_KEY under BOARDSITE_SSM_PREFIX={prefix!r}")
    _state.update(pending=False, loaded_at=monotonic())
    log.info("SnapStart restore: %d secret(s) loaded from %s", len(values), prefix)


def _apply(values: dict[str, str]) -> None:
    """Put fetched secrets where the loaded settings and the code that reads the environment find them."""
    from django.conf import settings
    from django.db import connections

    current = os.environ.get("DATABASE_PASSWORD")  # the one applied before, from SSM too
    os.environ.update(values)
    if values.get("DJANGO_SECRET_KEY"):
        settings.SECRET_KEY = values["DJANGO_SECRET_KEY"]
    if "DJANGO_SECRET_KEY_FALLBACKS" in values:
        settings.SECRET_KEY_FALLBACKS = [k.strip() for k in values["DJANGO_SECRET_KEY_FALLBACKS"].split(",") if k]
    if values.get("DATABASE_PASSWORD"):
        for alias in settings.DATABASES:
            database = settings.DATABASES[alias]
            if database.get("ENGINE", "").endswith("postgresql") and database.get("PASSWORD") in (None, "", current):
                # The password came from SSM (DATABASE_URL carries none): follow it. New connections use it.
                database["PASSWORD"] = values["DATABASE_PASSWORD"]
                connections[alias].settings_dict["PASSWORD"] = values["DATABASE_PASSWORD"]


def require() -> None:
    """Raise unless the secrets are loaded (they are, except between a snapshot and a restore hook that ran); read
    them again when they are older than ``BOARDSITE_SECRETS_REFRESH_SECONDS``."""
    if _state["pending"]:
        raise SecretsUnavailable(
            f"the secrets under BOARDSITE_SSM_PREFIX={_state['prefix']!r} were not loaded after the SnapStart "
            "restore (the restore hook did not run or failed: see its log); refusing to run without DJANGO_SECRET_KEY"
        )
    loaded_at = _state["loaded_at"]
    if loaded_at is not None and monotonic() - loaded_at >= _refresh_seconds():
        refresh()


def refresh() -> bool:
    """Fetch the secrets again and apply them (a rotated key); on failure keep those in use and try again a minute
    later. Whether new values were read."""
    prefix = _state["prefix"]
    try:
        values = fetch(prefix)
    except Exception:
        log.warning("could not read the secrets under %s again; keeping those loaded", prefix, exc_info=True)
        _state["loaded_at"] = monotonic() - _refresh_seconds() + REFRESH_RETRY_SECONDS
        return False
    _apply(values)
    _state["loaded_at"] = monotonic()
    return True


def _refresh_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("BOARDSITE_SECRETS_REFRESH_SECONDS") or REFRESH_SECONDS))
    except ValueError:
        return float(REFRESH_SECONDS)


class SecretsMiddleware:
    """First in the chain: no request is served before the secrets are there (a clear error, not a dev key)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        require()
        return self.get_response(request)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _register_after_restore(hook: Callable[[], None]) -> None:
    try:
        from snapshot_restore_py import register_after_restore  # the Lambda Python runtime's module
    except ImportError:
        log.error("SnapStart init without the runtime's snapshot_restore_py: secrets cannot be loaded after restore")
        return
    register_after_restore(hook)
