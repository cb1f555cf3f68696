"""Production settings pass Django's deployment checks; a missing secret is a clear start-up error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy(tmp_path):
    out = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="k" * 20 + "-production-secret-with-enough-variety-0123456789",
        DJANGO_ALLOWED_HOSTS="boards.example.com",
        BOARDSITE_LOCAL_DIR=str(tmp_path),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    out = manage("check", DJANGO_DEBUG="false", BOARDSITE_LOCAL_DIR=str(tmp_path))
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in out.stderr


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-with-enough-variety-0123456789",
    "DJANGO_ALLOWED_HOSTS": ".execute-api.eu-west-1.amazonaws.com,photos.example.com",
    "AWS_REGION": "eu-west-1",
}

STATIC_PROBE = """
import json, re, time, django
django.setup()
from django.test import Client
c = Client(HTTP_HOST="photos.example.com")
page = c.get("/login/", secure=True)
assert page.status_code == 200, page.status_code
urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.content.decode())
answers = {}
for url in urls:
    plain = c.get(url, secure=True)
    zipped = c.get(url, secure=True, HTTP_ACCEPT_ENCODING="gzip, br")
    answers[url] = {
        "status": plain.status_code,
        "body": b"".join(plain.streaming_content).decode(),
        "cache": plain.headers.get("Cache-Control"),
        "encoding": zipped.headers.get("Content-Encoding"),
    }
unhashed = c.get("/static/boardsite/site.css", secure=True)
print(json.dumps({"urls": urls, "answers": answers, "unhashed_cache": unhashed.headers.get("Cache-Control")}))
"""


def test_production_serves_hashed_static_files_with_whitenoise(tmp_path):
    static_root = tmp_path / "staticfiles"
    env = {**PRODUCTION, "BOARDSITE_LOCAL_DIR": str(tmp_path), "DJANGO_STATIC_ROOT": str(static_root)}
    collected = manage("collectstatic", "--noinput", **env)
    assert collected.returncode == 0, collected.stderr
    assert list(static_root.glob("boardsite/site.*.css.gz"))  # hashed and precompressed at package time
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    out = subprocess.run(
        [sys.executable, "-c", STATIC_PROBE],
        cwd=ROOT,
        env={**base, **env, "DJANGO_SETTINGS_MODULE": "boardsite.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert {re.sub(r"\.[0-9a-f]{12}\.", ".", u) for u in probe["urls"]} == {
        "/static/boardsite/site.css",
        "/static/boardsite/site.js",
    }
    for url, answer in probe["answers"].items():
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", url), url  # the page links the content-hashed names
        assert answer["status"] == 200
        source = ROOT / "boardsite/static" / re.sub(r"\.[0-9a-f]{12}\.", ".", url).removeprefix("/static/")
        assert answer["body"] == source.read_text()
        assert answer["cache"] == "max-age=315360000, public, immutable"
        assert answer["encoding"] == "gzip"
    assert "immutable" not in (probe["unhashed_cache"] or "")  # an unhashed name may change: short caching


def test_allowed_hosts_and_trusted_origins_for_api_gateway_and_a_custom_domain():
    from boardsite.settings import trusted_origins, whitenoise_prefix

    hosts = [".execute-api.eu-west-1.amazonaws.com", "photos.example.com", ".boards.example.org", "localhost"]
    assert trusted_origins(hosts) == ["https://photos.example.com", "https://*.boards.example.org"]
    assert whitenoise_prefix("/static/", "web") == "/static/"
    assert whitenoise_prefix("/web/static/", "web") == "/static/"  # the bare execute-api host's stage prefix
    assert whitenoise_prefix("https://cdn.example.com/static/", "web") == "/static/"
