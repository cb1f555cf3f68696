"""Real-browser fixtures: Debian's chromium driven by Playwright (its own browser download does not work here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = [os.environ.get("CHROMIUM_PATH", ""), "/usr/lib/chromium/chromium", "/usr/bin/chromium"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INSTALL_HINT = "no chromium here: `apt-get install chromium` (Debian) to run the browser tests"


@pytest.fixture(scope="session", autouse=True)
def _allow_sync_orm_beside_playwright():
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def browser_required() -> bool:
    """CI (``.ci/run``) sets BOARDSITE_REQUIRE_BROWSER=1: there a missing browser fails the run instead of skipping."""
    return os.environ.get("BOARDSITE_REQUIRE_BROWSER", "").strip().lower() in ("1", "true", "yes", "on")


def chromium_path() -> str | None:
    return next((p for p in CHROMIUM_CANDIDATES if p and os.access(p, os.X_OK)), None)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path = chromium_path()
    if path is None:
        if browser_required():
            pytest.fail(f"BOARDSITE_REQUIRE_BROWSER is set but there is {INSTALL_HINT}", pytrace=False)
        pytest.skip(INSTALL_HINT)
    return {
        **browser_type_launch_args,
        "executable_path": path,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            # No lookups leave this machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        ],
    }


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
