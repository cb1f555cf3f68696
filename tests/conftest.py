"""Shared fixtures: a real local AWS (moto's server over HTTP), users and boards, the JPEG maker.

Fixtures only: what they make comes from tests/factories.py, which tests import directly (never this module)."""

from __future__ import annotations

import os

# The run's own temporary local dir, test database name, broker key prefix and fake AWS credentials are set by the
# tests.isolation plugin (loaded with -p, before the settings are read).
import pytest
import requests
from django.conf import settings
from moto.server import ThreadedMotoServer

from boardsite import aws as web_aws
from boardsite.boards.models import Role
from devstack import provision
from offload import aws as offload_aws
from tests.factories import jpeg_bytes, make_board, make_user


@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Put back afterwards: later tests (and the subprocesses they start) must not see a server that is gone.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        patch.setattr(settings, "AWS_ENDPOINT_URL", endpoint)
        yield endpoint
    server.stop()
    offload_aws.clear_caches()


@pytest.fixture
def local_aws(moto_endpoint, settings, monkeypatch):
    """A freshly reset and provisioned local AWS for each test."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    offload_aws.clear_caches()
    settings.AWS_ENDPOINT_URL = moto_endpoint
    for name, value in web_aws.offload_environment().items():
        monkeypatch.setenv(name, value)  # undone after the test
    provision.provision(origins=["http://127.0.0.1", "http://localhost"])
    return moto_endpoint


@pytest.fixture
def s3(local_aws):
    return offload_aws.client("s3")


@pytest.fixture
def sqs(local_aws):
    return offload_aws.client("sqs")


@pytest.fixture
def people(db):
    """owner, contributor, viewer, stranger."""
    return {name: make_user(name) for name in ("owner", "contributor", "viewer", "stranger")}


@pytest.fixture
def board(people):
    """A private board with one member of each role."""
    return make_board(
        people["owner"],
        title="Holiday",
        visibility="private",
        members={people["contributor"]: Role.CONTRIBUTOR, people["viewer"]: Role.VIEWER},
    )


@pytest.fixture
def jpeg():
    return jpeg_bytes


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves os.environ as it found it. An inline job hands the function the site's environment
    (``boardsite.core.jobs.run_job`` updates os.environ, as Lambda would have it set): without this, a test that points
    the site at a dead endpoint leaves every later test that reads AWS_ENDPOINT_URL from the environment there, and
    whether the suite passes depends on the order of its files."""
    saved = dict(os.environ)
    yield
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _routes_read_afresh():
    """Each process reads the job routes at most every couple of seconds (boardsite/core/routing.py): a test's routes,
    rolled back with its transaction, must not route the next test's work."""
    from boardsite.core import routing

    routing.forget()
    yield
    routing.forget()


@pytest.fixture(autouse=True, scope="session")
def _quiet_moto_access_log():
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 is slow by design; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The reset page's padding (against timing) would only slow the suite down;
    # tests/accounts/test_account_edges.py checks it.
    settings.PASSWORD_RESET_MIN_SECONDS = 0
