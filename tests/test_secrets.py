"""Secrets come from SSM Parameter Store (moto's, over HTTP): every page, decrypted, only upper-case names."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from boardsite import secrets
from offload import aws

ROOT = Path(__file__).resolve().parent.parent
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
