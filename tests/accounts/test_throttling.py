"""Log-in and sign-up throttling (issue 7, finding 8): per account and per address, growing, shared by processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import F
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils import timezone

from boardsite.accounts.models import LoginLockout
from boardsite.accounts.services import user_signup
from boardsite.accounts.throttle import DEVICE_COOKIE, remember_device
from tests.helpers import database_url

ROOT = Path(__file__).resolve().parents[2]
User = get_user_model()
PASSWORD = "the-right-password-42"
LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


def log_in(username: str, password: str, address: str = "203.0.113.7", **headers: str):
    c = Client(REMOTE_ADDR=address, **headers)
    return c, c.post("/login/", {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked_out(response, *, seconds: int) -> None:
    assert response.status_code == 429
    # Counted down from the lock-out's start: never above it, and only the test's own run time below it.
    assert seconds - 10 <= int(response["Retry-After"]) <= seconds, response["Retry-After"]
    page = response.content.decode()
    assert "Too many failed log-ins for this account or from your network. Try again in" in page
    assert '<form method="post"' in page  # the log-in page itself, not a bare error
    assert "Traceback" not in page


def time_passes(delta: timedelta) -> None:
    """Everything axes and the lock-out history stored happened ``delta`` earlier."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - delta)
    AccessAttemptExpiration.objects.update(expires_at=F("expires_at") - delta)
    LoginLockout.objects.update(locked_until=F("locked_until") - delta)


@pytest.fixture
def contrib1(db):
    return user_signup(username="contrib1", password=PASSWORD)


def with_device(cookie: str, address: str) -> Client:
    c = Client(REMOTE_ADDR=address)
    c.cookies[DEVICE_COOKIE] = cookie
    return c


def test_an_attacker_cannot_lock_the_owner_out_of_a_browser_they_logged_in_with(contrib1):
    """OWASP's device cookie: five wrong passwords an hour from anywhere must not keep the real person out for good."""
    home, r = log_in("contrib1", PASSWORD, address="192.0.2.10")
    assert logged_in(home)
    cookie = r.cookies[DEVICE_COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert int(cookie["max-age"]) == 365 * 24 * 3600

    attacker = "203.0.113.66"
    for _ in range(LIMIT):
        c, r = log_in("contrib1", "guess", address=attacker)
    assert_locked_out(r, seconds=60)
    # Without the cookie the owner is told to wait, as anyone would be.
    c, r = log_in("contrib1", PASSWORD, address="192.0.2.10")
    assert not logged_in(c)
    assert_locked_out(r, seconds=60)
    # With it, from home and from another network, in any spelling of the name.
    for address, name in [("192.0.2.10", "contrib1"), ("100.64.0.9", "CONTRIB1")]:
        c = with_device(cookie.value, address)
        r = c.post("/login/", {"username": name, "password": PASSWORD})
        assert r.status_code == 302
        assert logged_in(c)
    # The attacker's own address stays locked out without the cookie, for every account.
    for name in ["contrib1", "someone-else"]:
        _c, r = log_in(name, PASSWORD, address=attacker)
        assert_locked_out(r, seconds=60)
    # The cookie is for contrib1 only, and a forged or altered one is no cookie.
    user_signup(username="grace", password=PASSWORD)
    for _ in range(LIMIT):
        log_in("grace", "guess", address=f"198.51.100.{50 + _}")
    for value in [cookie.value, cookie.value[:-2] + "xx", "forged"]:
        c = with_device(value, "100.64.0.10")
        assert_locked_out(c.post("/login/", {"username": "grace", "password": PASSWORD}), seconds=60)
        if value != cookie.value:
            c = with_device(value, "100.64.0.11")
            assert_locked_out(c.post("/login/", {"username": "contrib1", "password": PASSWORD}), seconds=60)


def test_failures_with_a_device_cookie_lock_that_device_not_the_account(contrib1):
    _, r = log_in("contrib1", PASSWORD, address="192.0.2.10")
    stolen = r.cookies[DEVICE_COOKIE].value  # say, a shared computer
    for i in range(LIMIT):
        r = with_device(stolen, f"198.51.100.{i}").post("/login/", {"username": "contrib1", "password": "guess"})
    assert_locked_out(r, seconds=60)
    c = with_device(stolen, "198.51.100.40")
    assert_locked_out(c.post("/login/", {"username": "contrib1", "password": PASSWORD}), seconds=60)
    # The account itself was not locked: its owner logs in from anywhere else.
    c, r = log_in("contrib1", PASSWORD, address="100.64.0.1")
    assert logged_in(c)


def test_a_device_cookie_older_than_its_max_age_is_no_known_device(contrib1, settings, monkeypatch):
    """The signed value carries its age: a device cookie signed longer ago than ``LOGIN_DEVICE_COOKIE_AGE`` (kept past
    its Max-Age, or a copy) does not let a locked-out account in; one signed a little less long ago does."""
    real_time = time.time

    def cookie_signed(seconds_ago: int) -> str:
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda: real_time() - seconds_ago)
            response = remember_device(HttpResponse(), request=RequestFactory().get("/login/"), username="contrib1")
        return response.cookies[DEVICE_COOKIE].value

    old = cookie_signed(settings.LOGIN_DEVICE_COOKIE_AGE + 60)
    recent = cookie_signed(settings.LOGIN_DEVICE_COOKIE_AGE - 60)
    for _ in range(LIMIT):
        _c, r = log_in("contrib1", "guess", address="203.0.113.66")
    assert_locked_out(r, seconds=60)
    c = with_device(old, "192.0.2.10")
    assert_locked_out(c.post("/login/", {"username": "contrib1", "password": PASSWORD}), seconds=60)
    assert not logged_in(c)
    c = with_device(recent, "192.0.2.10")
    assert c.post("/login/", {"username": "contrib1", "password": PASSWORD}).status_code == 302
    assert logged_in(c)


def test_the_device_cookie_is_secure_in_production(contrib1, settings):
    settings.SESSION_COOKIE_SECURE = True
    _, r = log_in("contrib1", PASSWORD)
    assert r.cookies[DEVICE_COOKIE]["secure"]
    r = Client(REMOTE_ADDR="192.0.2.1").post(
        "/signup/",
        {"username": "newbie", "email": "newbie@example.com", "password": PASSWORD, "password_again": PASSWORD},
    )
    assert r.status_code == 302
    assert r.cookies[DEVICE_COOKIE]["secure"]


def test_the_log_in_error_does_not_say_usernames_are_case_sensitive(contrib1):
    _, r = log_in("contrib1", "wrong-password")
    page = r.content.decode()
    assert "That username and password do not match an account. Usernames are not case-sensitive" in page
    assert "both fields may be case-sensitive" not in page


def test_25_wrong_passwords_then_the_right_one_does_not_log_in(contrib1):
    for _ in range(25):
        c, r = log_in("contrib1", "wrong-password")
        assert not logged_in(c)
    c, r = log_in("contrib1", PASSWORD)
    assert not logged_in(c)
    assert_locked_out(r, seconds=60)


def test_the_account_is_locked_whatever_the_address_or_spelling(contrib1):
    spellings = ["contrib1", "Contrib1", "CONTRIB1", "ＣＯＮＴＲＩＢ１", "contrib1"]
    for i, name in enumerate(spellings[:LIMIT]):
        c, r = log_in(name, "wrong-password", address=f"198.51.100.{i + 1}")
    assert_locked_out(r, seconds=60)
    # A new address with the right password: still the same locked account.
    c, r = log_in("contrib1", PASSWORD, address="192.0.2.99")
    assert not logged_in(c)
    assert_locked_out(r, seconds=60)
    # Other accounts are not affected.
    user_signup(username="grace", password=PASSWORD)
    c, r = log_in("grace", PASSWORD, address="192.0.2.99")
    assert logged_in(c)


def test_one_address_trying_many_accounts_is_locked_whatever_x_forwarded_for_says(contrib1):
    for i in range(LIMIT):
        # X-Forwarded-For is the client's own word: rotating it changes nothing.
        c, r = log_in(f"someone{i}", "guess", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert_locked_out(r, seconds=60)
    c, r = log_in("contrib1", PASSWORD)
    assert not logged_in(c)
    assert_locked_out(r, seconds=60)
    # The account itself is not locked: its owner elsewhere gets in.
    c, r = log_in("contrib1", PASSWORD, address="192.0.2.50")
    assert logged_in(c)


def test_an_ipv6_client_is_one_address_per_64_block(contrib1):
    for i in range(LIMIT):
        c, r = log_in(f"someone{i}", "guess", address=f"2001:db8:1:2::{i + 1:x}")
    assert_locked_out(r, seconds=60)
    c, r = log_in("contrib1", PASSWORD, address="2001:db8:1:2:ffff::1")
    assert not logged_in(c)


def test_each_further_lock_out_lasts_longer_and_then_lets_the_owner_in(contrib1):
    for expected in (60, 120, 240, 480):
        for _ in range(LIMIT):
            c, r = log_in("contrib1", "wrong-password")
        assert_locked_out(r, seconds=expected)
        # Attempts during a lock-out do not lengthen it: the time given stays true.
        c, r = log_in("contrib1", PASSWORD)
        assert_locked_out(r, seconds=expected)
        time_passes(timedelta(seconds=expected - 5))
        c, r = log_in("contrib1", PASSWORD)
        assert not logged_in(c)
        assert_locked_out(r, seconds=5)
        time_passes(timedelta(seconds=6))
    c, r = log_in("contrib1", PASSWORD)
    assert r.status_code == 302
    assert logged_in(c)


def test_lock_outs_are_capped_and_forgotten_after_a_day(contrib1, settings):
    LoginLockout.objects.create(key="username:contrib1", strikes=30, locked_until=timezone.now() - timedelta(hours=1))
    for _ in range(LIMIT):
        _c, r = log_in("contrib1", "wrong-password")
    assert_locked_out(r, seconds=settings.LOGIN_LOCKOUT_MAX_SECONDS)
    time_passes(timedelta(days=2))
    for _ in range(LIMIT):
        _c, r = log_in("contrib1", "wrong-password")
    assert_locked_out(r, seconds=60)


def test_force_login_and_a_good_log_in_are_unaffected(contrib1):
    c = Client()
    c.force_login(contrib1)
    assert c.get("/profile/").status_code == 200
    for _ in range(LIMIT - 1):
        log_in("contrib1", "wrong-password")
    c, r = log_in("contrib1", PASSWORD)
    assert r.status_code == 302
    assert logged_in(c)


def _in_another_process(code: str) -> str:
    """Run ``code`` in a fresh Python process with Django set up on the test database; its stdout."""
    script = textwrap.dedent(
        """
        import django
        django.setup()
        from django.test.utils import setup_test_environment
        setup_test_environment()
        from django.test import Client
        """
    ) + textwrap.dedent(code)
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "boardsite.settings"}
    env.pop("CACHE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.django_db(transaction=True)
def test_failures_in_another_process_count_here():
    user_signup(username="contrib1", password=PASSWORD)
    printed = _in_another_process(
        """
        for _ in range(3):
            r = Client(REMOTE_ADDR="198.51.100.1").post("/login/", {"username": "CONTRIB1", "password": "nope"})
            print(r.status_code)
        """
    )
    assert printed.split() == ["200", "200", "200"]
    for _ in range(2):
        _c, r = log_in("contrib1", "wrong-password", address="198.51.100.2")
    assert_locked_out(r, seconds=60)


def _address_far_from_its_window_end(period: int = 3600) -> str:
    # django-ratelimit's windows end at a per-address moment; pick an address whose window does not end mid-test.
    for i in range(1, 250):
        address = f"203.0.113.{i}"
        ts = int(time.time())
        end = ts - ts % period + zlib.crc32(address.encode()) % period
        if (end if end >= ts else end + period) - ts > 600:
            return address
    raise AssertionError("no address found")


def _sign_up(address: str, username: str, **extra: str):
    form = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, "password_again": PASSWORD}
    return Client(REMOTE_ADDR=address).post("/signup/", form | extra)


@pytest.mark.django_db
def test_sign_ups_per_address_are_limited():
    address = _address_far_from_its_window_end()
    for i in range(10):
        assert _sign_up(address, f"person{i}").status_code == 302
    r = _sign_up(address, "person10", display_name="Person Ten")
    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 3600
    page = r.content.decode()
    # The window is fixed (it does not slide over "the last hour"): the page says only when it ends.
    assert "Too many sign-up attempts from your network. Try again in" in page
    assert "in the last hour" not in page
    assert re.search(r"\(after \d\d:\d\d UTC\)", page)
    assert '<form method="post"' in page
    # What was typed is kept, the passwords are not.
    assert 'value="person10"' in page
    assert 'value="Person Ten"' in page
    assert PASSWORD not in page
    assert not User.objects.filter(username="person10").exists()
    # Another address is not affected.
    assert _sign_up("192.0.2.77", "person10").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_sign_ups_in_another_process_count_here():
    address = _address_far_from_its_window_end()
    printed = _in_another_process(
        f"""
        for i in range(6):
            r = Client(REMOTE_ADDR="{address}").post(
                "/signup/", {{"username": f"remote{{i}}", "password": "x", "password_again": "y"}}
            )
            print(r.status_code)
        """
    )
    assert printed.split() == ["200"] * 6  # refused forms, but each an attempt
    for i in range(4):
        assert _sign_up(address, f"local{i}").status_code == 302
    r = _sign_up(address, "local4")
    assert r.status_code == 429
    assert r.has_header("Retry-After")


@pytest.mark.django_db(transaction=True)
def test_the_database_cache_increments_atomically_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    cache.set("counter", 0, 60)

    def bump(_: int) -> None:
        from django.db import connections

        try:
            for _ in range(20):
                cache.incr("counter")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bump, range(4)))
    assert cache.get("counter") == 80


@pytest.mark.parametrize(
    ("office", "colleague"), [("198.51.100.20", "198.51.100.20"), ("2001:db8:5:6::1", "2001:db8:5:6::99")]
)
def test_a_known_device_gets_in_behind_a_shared_address_that_others_locked(contrib1, office, colleague):
    """An office, a NAT or one IPv6 /64: five failures for made-up names lock the address, not the owner's browser."""
    _, r = log_in("contrib1", PASSWORD, address=office)
    cookie = r.cookies[DEVICE_COOKIE].value
    for i in range(LIMIT):
        _c, r = log_in(f"made-up-{i}", "guess", address=colleague)
    assert_locked_out(r, seconds=60)
    # No cookie: the address lock applies.
    c, r = log_in("contrib1", PASSWORD, address=office)
    assert not logged_in(c)
    assert_locked_out(r, seconds=60)
    # The account's own device cookie: in.
    c = with_device(cookie, office)
    assert c.post("/login/", {"username": "CONTRIB1", "password": PASSWORD}).status_code == 302
    assert logged_in(c)
    # A cookie for another account, or a forged one, counts for nothing.
    user_signup(username="grace", password=PASSWORD)
    for value in [cookie, cookie[:-2] + "xx", "forged"]:
        c = with_device(value, office)
        assert_locked_out(c.post("/login/", {"username": "grace", "password": PASSWORD}), seconds=60)
        assert not logged_in(c)


def test_a_known_device_behind_a_locked_address_locks_itself_growing_and_not_the_address(contrib1):
    office = "198.51.100.30"
    _, r = log_in("contrib1", PASSWORD, address=office)
    cookie = r.cookies[DEVICE_COOKIE].value
    user_signup(username="grace", password=PASSWORD)
    for i in range(LIMIT):
        log_in(f"made-up-{i}", "guess", address=office)
    for expected in (60, 120):
        for _ in range(LIMIT):
            r = with_device(cookie, office).post("/login/", {"username": "contrib1", "password": "guess"})
        assert_locked_out(r, seconds=expected)
        assert_locked_out(
            with_device(cookie, office).post("/login/", {"username": "contrib1", "password": PASSWORD}),
            seconds=expected,
        )
        time_passes(timedelta(seconds=expected + 1))
    # The device's failures were its own: after the address's lock ran out, the address is not locked again by them.
    c, r = log_in("grace", PASSWORD, address=office)
    assert logged_in(c)
    assert not LoginLockout.objects.filter(key__startswith="ip:", strikes__gt=1).exists()
