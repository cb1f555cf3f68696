"""`make run`'s stack: `manage.py devstack` serves the site, processes an upload the serverless way, and Ctrl-C
stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import jpeg_bytes

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.worker
def test_devstack_serves_processes_and_stops(tmp_path):
    site_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "OFFLOAD_MODES", "DATABASE_URL")}
    env.update(BOARDSITE_LOCAL_DIR=str(tmp_path / "local"), CELERY_BROKER_URL="", PYTHONUNBUFFERED="1")
    log = tmp_path / "devstack.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "devstack", "--port", str(site_port), "--aws-port", str(aws_port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while "boardsite is running" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        output = log.read_text()
        assert "demo login: username 'demo'" in output
        assert "process_image=lambda" in output

        site = f"http://127.0.0.1:{site_port}"
        s = requests.Session()
        s.get(f"{site}/login/", timeout=10)
        r = s.post(
            f"{site}/login/",
            data={"username": "demo", "password": "demo-boardsite-2026", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
            timeout=10,
        )
        assert r.url == f"{site}/", "the demo login works"
        board_id = int(re.search(r'href="/boards/(\d+)/"', s.get(f"{site}/", timeout=10).text).group(1))

        data = jpeg_bytes()
        headers = {"X-CSRFToken": s.cookies["csrftoken"], "Referer": f"{site}/"}
        body = {"board": board_id, "filename": "p.jpg", "content_type": "image/jpeg", "size": len(data)}
        ticket = s.post(f"{site}/api/uploads", json=body, headers=headers, timeout=10).json()
        assert ticket["upload"]["url"].startswith(f"http://127.0.0.1:{aws_port}")
        up = requests.post(
            ticket["upload"]["url"],
            data=ticket["upload"]["fields"],
            files={"file": ("p.jpg", data, "image/jpeg")},
            timeout=10,
        )
        assert up.status_code == 204
        assert s.post(f"{site}{ticket['image']['complete_url']}", headers=headers, timeout=10).ok
        status = {}
        deadline = time.monotonic() + 60
        while status.get("status") not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.3)
            status = s.get(f"{site}{ticket['image']['status_url']}", timeout=10).json()
        assert status["status"] == "ready", (status, log.read_text()[-3000:])
        assert (status["width"], status["height"]) == (800, 1200)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("devstack did not stop on Ctrl-C")
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "[devstack] stopping" in log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert not answers(site_port), "the site is still running"
    assert not answers(aws_port), "moto's server is still running"
