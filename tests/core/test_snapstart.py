"""Snapshot safety: the web app initialises with no network, and a restore hook brings the secrets in.

Under SnapStart Lambda runs the init (Zappa's ``INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT``: settings, apps, middleware)
once, snapshots the process and restores copies of it. Anything made during init is frozen into the snapshot, so the
init must open no database connection, create no boto3 client and read no secret; the secrets arrive through the
runtime's ``snapshot_restore_py.register_after_restore`` hook. Each test runs a fresh interpreter that records (and,
during the init, refuses) every socket connection, boto3 client and database connection.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from offload import aws

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssm-snapstart-" + "key-with-enough-variety-0123456789-" * 2
DB_PASSWORD = "pg-pass-from-ssm"

# A stand-in for snapshot_restore_py, which the Lambda Python runtime provides (this mocks the runtime's module):
# the same two registration functions, plus ``restore()`` to play Lambda's part after a restore.
RUNTIME_STUB = '''"""Test stand-in for the Lambda runtime's snapshot_restore_py (mocks the runtime's module)."""
_before, _after = [], []


def register_before_snapshot(func, *args, **kwargs):
    _before.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    _after.append((func, args, kwargs))
    return func


def restore():
    for func, args, kwargs in _after:
        func(*args, **kwargs)
'''

# Records network, boto3 clients and database connections; refuses all three until ``allow()``.
GUARD = """
import json, socket, sys
import botocore.session
from django.db.backends.base.base import BaseDatabaseWrapper

seen = {"sockets": [], "clients": [], "databases": []}
_allowed = [False]
_socket_connect, _create_client, _db_connect = (
    socket.socket.connect, botocore.session.Session.create_client, BaseDatabaseWrapper.connect
)

def _connect(self, address):
    seen["sockets"].append(str(address))
    if not _allowed[0]:
        raise ConnectionRefusedError("no network while the snapshot is taken")
    return _socket_connect(self, address)

def _client(self, *args, **kwargs):
    seen["clients"].append(args[0] if args else kwargs.get("service_name"))
    return _create_client(self, *args, **kwargs)

def _database(self):
    seen["databases"].append(self.alias)
    if not _allowed[0]:
        raise ConnectionRefusedError("no database while the snapshot is taken")
    return _db_connect(self)

socket.socket.connect = _connect
botocore.session.Session.create_client = _client
BaseDatabaseWrapper.connect = _database

def allow():
    _allowed[0] = True

def snapshot():
    return {k: list(v) for k, v in seen.items()}

# The init, as Zappa runs it: the WSGI application (settings, apps, middleware), then what events reach.
from boardsite.wsgi import application
from django.urls import get_resolver
get_resolver().url_patterns  # every view module
import boardsite.core.results, boardsite.images.results, boardsite.images.sweep, boardsite.images.cleanup
init = snapshot()
"""

RESTORE = """
import os
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from boardsite.secrets import SecretsUnavailable

client = Client(HTTP_HOST="photos.example.com")
try:
    client.get("/login/", secure=True)
    before = "served"
except SecretsUnavailable as exc:
    before = str(exc)

from boardsite.core import results
try:
    results.handler({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]})
    event_before = "applied"
except SecretsUnavailable as exc:
    event_before = str(exc)

allow()
import snapshot_restore_py
snapshot_restore_py.restore()  # Lambda restores the snapshot and runs the hooks before the first invocation

call_command("migrate", verbosity=0)  # what `zappa manage web migrate` does after a deploy
from django.contrib.auth import get_user_model
get_user_model().objects.create_user("snap", password="a-long-test-password")
login_page = client.get("/login/", secure=True)
logged_in = client.post(
    "/login/",
    {"username": "snap", "password": "a-long-test-password", "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    secure=True,
    HTTP_REFERER="https://photos.example.com/login/",
)
profile = client.get("/profile/", secure=True)
print(json.dumps({
    "init": init,
    "before": before,
    "event_before": event_before,
    "login_page": login_page.status_code,
    "logged_in": [logged_in.status_code, logged_in.headers.get("Location")],
    "profile": profile.status_code,
    "secret_key": settings.SECRET_KEY,
    "db_password": connection.connection.info.password,
    "after": snapshot(),
}))
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def run(code: str, env: dict[str, str], runtime: Path | None = None) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "AWS_LAMBDA"))}
    paths = [str(ROOT), *([str(runtime)] if runtime else [])]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env, "DJANGO_SETTINGS_MODULE": "boardsite.settings", "PYTHONPATH": os.pathsep.join(paths)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def production(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": ".execute-api.eu-west-1.amazonaws.com,photos.example.com",
        "AWS_REGION": "eu-west-1",
        "BOARDSITE_LOCAL_DIR": str(tmp_path),
        "DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles"),
        "OFFLOAD_MODES": "",
        **env,
    }


@pytest.mark.parametrize("snapstart", [True, False], ids=["snapstart-init", "on-demand-init"])
def test_init_opens_no_connection_and_creates_no_client(tmp_path, snapstart):
    """AWS and the database at closed ports: nothing at import tries them (settings, apps, URLconf, handlers)."""
    dead = f"http://127.0.0.1:{closed_port()}"
    env = production(
        tmp_path,
        AWS_ENDPOINT_URL=dead,
        DATABASE_URL=f"postgres://boardsite@127.0.0.1:{closed_port()}/boardsite",
    )
    if snapstart:
        env.update(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start", BOARDSITE_SSM_PREFIX="/boardsite/prod/")
    else:
        env.update(DJANGO_SECRET_KEY=KEY)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "snapshot_restore_py.py").write_text(RUNTIME_STUB)
    code = GUARD + "import snapshot_restore_py\nprint(json.dumps({**init, 'hooks': len(snapshot_restore_py._after)}))"
    seen = run(code, env, runtime)
    assert seen == {"sockets": [], "clients": [], "databases": [], "hooks": 1 if snapstart else 0}


@pytest.fixture
def database():
    if not postgres_answers():
        pytest.skip("no PostgreSQL answers on 127.0.0.1:5432")
    import psycopg

    name = f"boardsite_snap_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"  # no password: that comes from SSM
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def ssm_prefix(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    aws.clear_caches()
    path = f"/boardsite/snap-{uuid.uuid4().hex[:8]}/"
    ssm = aws.client("ssm")
    ssm.put_parameter(Name=path + "DJANGO_SECRET_KEY", Value=KEY, Type="SecureString")
    ssm.put_parameter(Name=path + "DATABASE_PASSWORD", Value=DB_PASSWORD, Type="SecureString")
    yield path
    ssm.delete_parameters(Names=[path + "DJANGO_SECRET_KEY", path + "DATABASE_PASSWORD"])
    aws.clear_caches()


def test_snapstart_init_without_secrets_then_the_restore_hook_loads_them(tmp_path, database, ssm_prefix, moto_endpoint):
    env = production(tmp_path, DJANGO_SECRET_KEY="collectstatic-only-" + "x" * 40)
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    env.pop("DJANGO_SECRET_KEY")
    env.update(
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        BOARDSITE_SSM_PREFIX=ssm_prefix,
        AWS_ENDPOINT_URL=moto_endpoint,
        DATABASE_URL=database,
    )
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "snapshot_restore_py.py").write_text(RUNTIME_STUB)

    seen = run(GUARD + RESTORE, env, runtime)

    assert seen["init"] == {"sockets": [], "clients": [], "databases": []}  # nothing frozen into the snapshot
    assert "were not loaded after the SnapStart restore" in seen["before"]  # a clear error, never a dev key
    assert "were not loaded after the SnapStart restore" in seen["event_before"]  # events too (no middleware)
    assert seen["login_page"] == 200
    assert seen["logged_in"] == [302, "/"]
    assert seen["profile"] == 200
    assert seen["secret_key"] == KEY
    assert seen["db_password"] == DB_PASSWORD
    assert seen["after"]["clients"][0] == "ssm"  # the first client is the hook's, after the restore (then the pages')
