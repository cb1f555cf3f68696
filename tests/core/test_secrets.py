"""Secrets come from SSM Parameter Store (moto's, over HTTP): every page, decrypted, only upper-case names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from boardsite import secrets
from offload import aws

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssm-" + "s3cr3t-key-with-enough-variety-" * 2


@pytest.fixture
def prefix(moto_endpoint, monkeypatch):
    """A fresh prefix with the production secrets, a dozen more (two pages) and names that must be ignored."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # the stage environment's region
    aws.clear_caches()
    ssm = aws.client("ssm")
    path = f"/boardsite/test-{uuid.uuid4().hex[:8]}/"
    params = {"DJANGO_SECRET_KEY": KEY, "DATABASE_PASSWORD": "pg-pass-from-ssm"}
    params.update({f"EXTRA_{i:02d}": f"value-{i}" for i in range(12)})
    for name, value in params.items():
        ssm.put_parameter(Name=path + name, Value=value, Type="SecureString")
    ssm.put_parameter(Name=path + "lower_case", Value="ignored", Type="SecureString")
    ssm.put_parameter(Name=path + "nested/DJANGO_SECRET_KEY", Value="ignored", Type="SecureString")
    yield path, params
    names = [path + n for n in [*params, "lower_case", "nested/DJANGO_SECRET_KEY"]]
    for start in range(0, len(names), 10):  # the API's batch limit
        ssm.delete_parameters(Names=names[start : start + 10])
    aws.clear_caches()


def test_fetch_reads_every_page_decrypted_and_only_upper_case_names(prefix):
    path, params = prefix
    assert secrets.fetch(path) == params
    assert secrets.fetch(path.rstrip("/")) == params


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "AWS_LAMBDA"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def web_stage_environment(path: str, endpoint: str, local_dir: Path) -> dict[str, str]:
    """The web stage's Lambda environment: no secret in it, a password-less DATABASE_URL."""
    return {
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": ".execute-api.eu-west-1.amazonaws.com,photos.example.com",
        "BOARDSITE_SSM_PREFIX": path,
        "DATABASE_URL": "postgres://boardsite@127.0.0.1:5432/boardsite",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": endpoint,
        "BOARDSITE_LOCAL_DIR": str(local_dir),
    }


def test_the_web_stage_environment_passes_check_deploy_with_secrets_from_ssm(prefix, moto_endpoint, tmp_path):
    path, _ = prefix
    env = web_stage_environment(path, moto_endpoint, tmp_path)
    out = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert out.returncode == 0, out.stdout + out.stderr
    shown = manage(
        "shell",
        "-c",
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.SECRET_KEY, s.DATABASES['default']['PASSWORD'], s.DATABASES['default']['CONN_MAX_AGE'],"
        " s.DATABASES['default']['CONN_HEALTH_CHECKS'], s.MIDDLEWARE[0]]))",
        **env,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.strip().splitlines()[-1]) == [
        KEY,
        "pg-pass-from-ssm",
        300,
        True,
        "boardsite.secrets.SecretsMiddleware",
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ssm_stops_the_start_with_a_clear_error(tmp_path):
    env = web_stage_environment("/boardsite/prod/", f"http://127.0.0.1:{closed_port()}", tmp_path)
    out = manage("check", **env)
    assert out.returncode != 0
    assert "could not read the secrets under BOARDSITE_SSM_PREFIX='/boardsite/prod/'" in out.stderr


def test_a_prefix_without_a_secret_key_refuses_to_start(moto_endpoint, tmp_path):
    env = web_stage_environment(f"/boardsite/empty-{uuid.uuid4().hex[:8]}/", moto_endpoint, tmp_path)
    out = manage("check", **env)
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false" in out.stderr


# --- A hung SSM fails fast; secrets are read again while running (issue 16: restore hook time-outs, row 12) -------


@pytest.fixture
def hung_endpoint():
    """An endpoint that accepts connections and never answers (the kernel completes the handshake of a listening
    socket; nobody ever reads or writes)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_hung_ssm_fails_the_restore_in_seconds_with_a_clear_error(hung_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", hung_endpoint)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setitem(secrets._state, "prefix", "/boardsite/prod/")
    monkeypatch.setitem(secrets._state, "pending", True)
    aws.clear_caches()
    started = time.monotonic()  # wall time is the point here: a time-out, not work
    with pytest.raises(secrets.SecretsUnavailable) as failed:
        secrets.after_restore()
    elapsed = time.monotonic() - started
    aws.clear_caches()
    # Two attempts of a 2 s read, not botocore's 60 s reads retried (minutes): inside SnapStart's restore limit.
    assert elapsed < 8, elapsed
    assert "could not read the secrets under BOARDSITE_SSM_PREFIX='/boardsite/prod/'" in str(failed.value)
    assert "Read timeout" in str(failed.value)
    assert secrets._state["pending"]  # and the requests after it are refused, never served without the key


@pytest.fixture
def restored(prefix, monkeypatch, settings):
    """This process as a SnapStart restore leaves it: secrets from SSM under ``prefix``; a clock the test moves."""
    path, _ = prefix
    now = [1000.0]
    monkeypatch.setattr(secrets, "monotonic", lambda: now[0])
    monkeypatch.setitem(secrets._state, "prefix", path)
    monkeypatch.setitem(secrets._state, "pending", True)
    monkeypatch.setitem(secrets._state, "loaded_at", None)
    for name in ("BOARDSITE_CDN_KEY_ID", "BOARDSITE_CDN_PRIVATE_KEY", "DJANGO_SECRET_KEY", "DATABASE_PASSWORD"):
        monkeypatch.setenv(name, "before-the-restore")  # undone after the test, whatever the hook sets
    settings.BOARDSITE_CDN_URL = "https://media.photos.example.com"
    settings.SECRET_KEY = settings.SECRET_KEY  # the hook sets it: put back after the test
    return path, now


def put_key(path: str, key_id: str) -> None:
    from devstack.cdn import new_key_pair

    ssm = aws.client("ssm")
    ssm.put_parameter(Name=path + "BOARDSITE_CDN_KEY_ID", Value=key_id, Type="SecureString", Overwrite=True)
    ssm.put_parameter(
        Name=path + "BOARDSITE_CDN_PRIVATE_KEY", Value=new_key_pair()[1], Type="SecureString", Overwrite=True
    )


def signing_key_id() -> str:
    from boardsite.images import cdn

    return cdn.signer().signed_url("variants/1/x/t.webp").rsplit("Key-Pair-Id=", 1)[1]


def test_a_rotated_cdn_key_reaches_every_instance_without_a_new_version(restored):
    path, now = restored
    put_key(path, "K1ROTATEONE")
    secrets.after_restore()  # a restore: reads SSM, whichever version it restores
    assert signing_key_id() == "K1ROTATEONE"

    # The operator rotates (DEPLOY.md §13); no deploy, so no new version and no new restore. A warm instance:
    put_key(path, "K2ROTATETWO")
    secrets.require()  # read minutes ago: still the old key
    assert signing_key_id() == "K1ROTATEONE"
    now[0] += secrets.REFRESH_SECONDS
    secrets.require()  # the next request after BOARDSITE_SECRETS_REFRESH_SECONDS reads SSM again
    assert signing_key_id() == "K2ROTATETWO"
    # An instance restored later (the same version, the same snapshot) reads SSM in its hook: the new key at once.
    put_key(path, "K3ROTATETHREE")
    secrets.after_restore()
    assert signing_key_id() == "K3ROTATETHREE"


def test_a_refresh_that_cannot_reach_ssm_keeps_the_key_and_tries_again_a_minute_later(restored, monkeypatch):
    path, now = restored
    put_key(path, "K1KEPT")
    secrets.after_restore()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    aws.clear_caches()
    now[0] += secrets.REFRESH_SECONDS
    secrets.require()  # does not raise: the request is served with the key in use
    assert signing_key_id() == "K1KEPT"
    assert secrets._state["loaded_at"] == now[0] - secrets.REFRESH_SECONDS + secrets.REFRESH_RETRY_SECONDS
