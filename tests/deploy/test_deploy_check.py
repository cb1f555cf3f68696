"""The first deploy ends green, and `python -m deploy check web` catches a deploy that does not serve (issue 16 row 2).

Zappa's `touch` (a GET of `/` after deploy and update, failing on a 5xx) is off: on a first deploy the home page needs
the tables `migrate` creates after it. The site is played here by a real server process on an empty database, as a
first deploy leaves it: the check says what is missing until `migrate` has run, then passes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deploy import check
from deploy.config import DeployConfig
from deploy.generate import build_settings
from offload import aws

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_site(tmp_path):
    """The site on a database nobody migrated yet (a first deploy), and a way to migrate it."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "BOARDSITE_LOCAL_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/healthz", timeout=5)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()[-3000:]) from None
                time.sleep(0.2)

        def migrate() -> None:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )

        yield base, migrate
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_zappa_does_not_fail_a_first_deploy_on_the_home_page():
    settings = build_settings(DeployConfig())
    assert settings["web"]["touch"] is False  # Zappa's default is true
    assert "touch" not in settings["functions"]  # no API: Zappa never touches it


def test_before_migrate_the_check_says_so_and_after_it_passes(fresh_site, capsys):
    base, migrate = fresh_site
    # What Zappa's touch would have seen on a correct first deploy: a 5xx, "Status check ... failed".
    assert requests.get(base + "/", timeout=30).status_code == 500

    assert check.main(["web", "--url", base]) == 1
    err = capsys.readouterr().err
    assert "migration(s) to apply: run `zappa manage web migrate`" in err

    migrate()
    assert check.main(["web", "--url", base]) == 0
    out = capsys.readouterr().out
    assert f"GET {base}/healthz -> 200" in out
    assert f"GET {base}/ -> 200" in out
    assert "serves pages, migrations applied" in out


def test_what_each_failure_tells_the_operator():
    def answer(status: int, body: dict | str) -> check.Answer:
        return check.Answer("/healthz", status, (json.dumps(body) if isinstance(body, dict) else body).encode())

    ok = answer(200, {"status": "ok", "version": "7"})
    assert check.problems_of(ok, check.Answer("/", 200, b"<html>")) == []
    # API Gateway's own 500 (the function was never reached: its role's trust, issue 16 row 1).
    (trust,) = check.problems_of(answer(500, {"message": "Internal server error"}), None)
    assert "apigateway.amazonaws.com" in trust
    assert "lambda:InvokeFunction" in trust
    (database,) = check.problems_of(answer(503, {"status": "database unavailable"}), None)
    assert "DATABASE_PASSWORD" in database
    (page,) = check.problems_of(ok, check.Answer("/", 500, b""))
    assert "home page answered 500" in page


def test_a_site_that_does_not_answer_is_a_clear_failure(capsys):
    assert check.main(["web", "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "did not answer" in capsys.readouterr().err


def test_the_url_is_the_api_zappa_made(moto_endpoint, monkeypatch, tmp_path, capsys):
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # an inline job of another test may have left another
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_caches()
    settings = build_settings(DeployConfig(account="123456789012", region="us-east-1"))
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings))
    assert check.main(["web", "-s", str(path)]) == 1
    assert "no API Gateway for 'web'" in capsys.readouterr().err

    # Zappa names the REST API after the function (moto has no stack here: the lookup by name, as Zappa's own).
    api = aws.client("apigateway").create_rest_api(name="boardsite-web")["id"]
    aws.client("apigateway").create_rest_api(name="boardsite-staging-web")
    assert check.api_url(settings) == f"https://{api}.execute-api.us-east-1.amazonaws.com/web"
    aws.clear_caches()
