"""Each pytest run on its own: loaded with ``-p tests.isolation`` (``addopts`` in pyproject.toml).

A ``-p`` plugin is imported before pytest-django reads the settings (a root conftest.py would be too late: pytest-django
imports them in its ``pytest_load_initial_conftests`` hook, before any conftest is loaded). So the environment set
here decides where the run keeps its state:

- ``BOARDSITE_LOCAL_DIR``: a fresh temporary folder for the SQLite test database, kombu's filesystem broker folders
  and the beat schedule, removed at the end;
- ``BOARDSITE_TEST_RUN``: a per-run id; ``boardsite/settings.py`` names the PostgreSQL test database after it and
  prefixes every Redis broker key with it, so two runs' workers never take each other's tasks.

Subprocesses the tests start (Celery worker, local runner, devstack) inherit the environment, so they see the same
folders. Everything changed here is put back when pytest ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

RUN_ID = uuid.uuid4().hex[:12]
LOCAL_DIR = tempfile.mkdtemp(prefix=f"boardsite-test-{RUN_ID}-")

_ENVIRONMENT = {
    "BOARDSITE_LOCAL_DIR": LOCAL_DIR,
    "BOARDSITE_TEST_RUN": RUN_ID,
    # Local AWS only: never let a test reach for real credentials or a real endpoint.
    "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
    "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    "AWS_PROFILE": None,
}
_SAVED = {name: os.environ.get(name) for name in _ENVIRONMENT}


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


_apply(_ENVIRONMENT)


def pytest_report_header(config: pytest.Config) -> str:
    return f"boardsite test run {RUN_ID}: local dir {LOCAL_DIR}"


def forget_redis_keys(broker_url: str, prefix: str) -> int:
    """Delete the run's leftover broker keys (kombu's bindings stay after the worker stops); best effort."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return 0
    try:
        import redis

        client = redis.Redis.from_url(broker_url, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        return client.delete(*keys) if keys else 0
    except Exception:  # an unreachable Redis must not turn a green run red
        return 0


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    forget_redis_keys(os.environ.get("CELERY_BROKER_URL", ""), f"boardsite-test-{RUN_ID}:")  # as settings.py names it
    _apply(_SAVED)
    shutil.rmtree(LOCAL_DIR, ignore_errors=True)
