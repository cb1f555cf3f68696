"""Production settings pass Django's deployment checks; a missing secret is a clear start-up error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
