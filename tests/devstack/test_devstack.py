"""`make run`'s stack: `manage.py devstack` serves the site, processes an upload the serverless way, restarts a
crashed child while the local AWS keeps its data, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import dj_database_url
import pytest
import requests

from boardsite.core.db import database_problem
from devstack import runner
from tests.factories import jpeg_bytes
from tests.helpers import wait_for

# Its subject does not touch the site's database or broker (.ci/run: first pass only).
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (an exited child nobody reaped yet is gone for our purpose)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


STARTED = re.compile(r"\[devstack\] starting (.+?) \(pid (\d+)\)")


def wait_for_output(log: Path, proc: subprocess.Popen, predicate, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while not predicate(text := log.read_text()):
        assert proc.poll() is None, f"devstack exited while waiting for {what}:\n{text[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{text[-3000:]}"
        time.sleep(0.2)
    return text


def upload_until_settled(s: requests.Session, site: str, board_id: int, aws_port: int, data: bytes) -> dict:
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
    status: dict = {}
    deadline = time.monotonic() + 60
    while status.get("status") not in ("ready", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        status = s.get(f"{site}{ticket['image']['status_url']}", timeout=10).json()
    return status


def queues_drained(aws_port: int) -> bool:
    """No message waiting or in flight on any queue of the local AWS (dead-letter queues aside: nobody reads them)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{aws_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    for url in sqs.list_queues().get("QueueUrls", []):
        if url.endswith("-dlq"):
            continue
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if any(int(attributes[name]) for name in names):
            return False
    return True


def bucket_keys(aws_port: int, image_id: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{aws_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="boardsite-media")
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if image_id in o["Key"])


@pytest.mark.worker
def test_devstack_serves_processes_heals_and_stops(tmp_path):
    site_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "OFFLOAD_MODES", "DATABASE_URL")}
    env.update(BOARDSITE_LOCAL_DIR=str(tmp_path / "local"), CELERY_BROKER_URL="", PYTHONUNBUFFERED="1")
    for name in ("BOARDSITE_BUCKET", "BOARDSITE_UPLOADS_QUEUE", "BOARDSITE_RESULTS_QUEUE"):
        env.pop(name, None)
    log = tmp_path / "devstack.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "devstack",
            "--port",
            str(site_port),
            "--aws-port",
            str(aws_port),
            "--functions-port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        # As `make run &` from a script starts it: a non-interactive shell's background job inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        output = wait_for_output(log, proc, lambda t: "boardsite is running" in t, 90, "the site")
        assert "demo login: username 'demo'" in output
        assert "process_image=lambda" in output
        pids = {name: int(pid) for name, pid in STARTED.findall(output)}
        assert set(pids) == {"moto", "function URL", "functions", "web jobs", "celery", "site"}, output[-3000:]

        site = f"http://127.0.0.1:{site_port}"
        s = requests.Session()
        s.get(f"{site}/login/", timeout=10)
        r = s.post(
            f"{site}/login/",
            data={"username": "demo", "password": "demo-boardsite-2026", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
            timeout=10,
        )
        assert r.url == f"{site}/", "the demo login works"
        # The local mail page: the demo user is staff in the local stack (DEBUG).
        assert s.get(f"{site}/dev/mail/", timeout=10).status_code == 200
        assert requests.get(f"{site}/dev/mail/", timeout=10).status_code == 404
        board_id = int(re.search(r'href="/boards/(\d+)/"', s.get(f"{site}/", timeout=10).text).group(1))

        first = upload_until_settled(s, site, board_id, aws_port, jpeg_bytes())
        assert first["status"] == "ready", (first, log.read_text()[-3000:])
        assert (first["width"], first["height"]) == (800, 1200)
        first_keys = bucket_keys(aws_port, first["id"])
        assert any(k.startswith("originals/") for k in first_keys), first_keys
        assert any(k.startswith("variants/") for k in first_keys), first_keys

        # A crashed function runner is restarted; the local AWS (and what it holds) stays.
        os.kill(pids["functions"], signal.SIGKILL)
        output = wait_for_output(
            log, proc, lambda t: len(re.findall(r"starting functions \(pid", t)) == 2, 30, "the runner's restart"
        )
        assert re.search(r"\[devstack\] functions exited with code -9; restarting in \d+ s", output), output[-3000:]
        restarted = [int(pid) for name, pid in STARTED.findall(output) if name == "functions"][-1]
        assert restarted != pids["functions"]
        assert alive(restarted)
        assert len(re.findall(r"starting moto", output)) == 1, "moto was restarted"
        assert alive(pids["moto"]), "moto is gone"
        assert bucket_keys(aws_port, first["id"]) == first_keys, "the local AWS lost the first photo"

        # The killed runner's open long polls at moto would take the next message into the void until its visibility
        # timeout (real SQS does the same). Each lasts at most LONG_POLL_SECONDS (runner.run refuses longer), and the
        # restart came no sooner than that after the kill: the second upload can go now.
        delay = float(re.search(r"functions exited with code -9; restarting in ([\d.]+) s", output).group(1))
        assert delay >= runner.LONG_POLL_SECONDS, "a restarted runner could start beside its predecessor's open poll"
        second = upload_until_settled(s, site, board_id, aws_port, jpeg_bytes(size=(600, 400), orientation=1))
        assert second["status"] == "ready", (second, log.read_text()[-3000:])
        assert (second["width"], second["height"]) == (600, 400)
        assert s.get(f"{site}/", timeout=10).status_code == 200, "the site keeps serving"
        assert "exited with code" not in log.read_text().replace("functions exited with code -9", ""), "others died"

        # If the local AWS itself dies, it comes back on the same port, provisioned, with the objects of the copy
        # devstack keeps on disk (taken every few seconds: wait until it has the photos).
        index = tmp_path / "local" / "s3" / "index.json"
        deadline = time.monotonic() + 30
        while not (index.exists() and all(k in index.read_text() for k in first_keys)):
            assert time.monotonic() < deadline, "the local S3 was not copied to disk"
            time.sleep(0.5)
        os.kill(pids["moto"], signal.SIGKILL)
        output = wait_for_output(log, proc, lambda t: "the local AWS is back" in t, 30, "moto's restart")
        assert "the local AWS (moto) exited with code -9: what it held in memory is gone" in output
        assert len(re.findall(r"starting moto", output)) == 2
        assert bucket_keys(aws_port, first["id"]) == first_keys, "the photo's objects were not restored"
        wait_for_output(log, proc, lambda t: "answers again; polling resumed" in t, 30, "the runners to resume")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("devstack did not stop on Ctrl-C")
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "[devstack] stopping" in output
    assert "Traceback" not in output, output[-3000:]
    left = {f"{name} ({pid})" for name, pid in STARTED.findall(output) if alive(int(pid))}
    assert not left, f"still running after Ctrl-C: {left}"
    assert not answers(site_port), "the site is still running"
    assert not answers(aws_port), "moto's server is still running"


def test_a_missing_postgresql_database_gets_one_sentence(django_db_blocker):
    if not answers(5432):
        pytest.skip("no PostgreSQL answers on 127.0.0.1:5432")
    name = f"boardsite_missing_{uuid.uuid4().hex[:12]}"
    database = dj_database_url.parse(f"postgres://postgres@127.0.0.1:5432/{name}")
    with django_db_blocker.unblock():  # one connection attempt, to a database that does not exist
        sentence = database_problem(database)
    assert sentence is not None
    assert f'the PostgreSQL database "{name}" on 127.0.0.1:5432, which does not exist' in sentence
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in sentence
    assert "\n" not in sentence


def test_sqlite_has_no_database_problem():
    assert database_problem({"ENGINE": "django.db.backends.sqlite3", "NAME": "/nonexistent/dir/db.sqlite3"}) is None


@pytest.mark.parametrize("command", [["devstack", "--port", "1", "--aws-port", "2"], ["runjobs"]])
def test_devstack_and_runjobs_say_what_is_wrong_with_the_database(command, tmp_path):
    # No PostgreSQL needed: a server that does not answer goes through the same check and gets its own sentence.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/boardsite", BOARDSITE_LOCAL_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"DATABASE_URL names a PostgreSQL server on 127.0.0.1:{port} that does not answer" in output
    assert "Traceback" not in output
    assert "starting" not in output, "devstack started something before checking the database"


def launch(tmp_path: Path, local: Path, name: str, **extra_env: str) -> tuple[subprocess.Popen, Path, int, int]:
    site_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "OFFLOAD_MODES", "DATABASE_URL")}
    env.update(BOARDSITE_LOCAL_DIR=str(local), CELERY_BROKER_URL="", PYTHONUNBUFFERED="1", **extra_env)
    for setting in ("BOARDSITE_BUCKET", "BOARDSITE_UPLOADS_QUEUE", "BOARDSITE_RESULTS_QUEUE"):
        env.pop(setting, None)
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "devstack",
            "--port",
            str(site_port),
            "--aws-port",
            str(aws_port),
            "--functions-port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return proc, log, site_port, aws_port


def stop(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("devstack did not stop on Ctrl-C")
    return log.read_text()


def demo_session(site: str) -> requests.Session:
    s = requests.Session()
    s.get(f"{site}/login/", timeout=10)
    s.post(
        f"{site}/login/",
        data={"username": "demo", "password": "demo-boardsite-2026", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
        timeout=10,
    )
    return s


@pytest.mark.worker
def test_a_restart_of_the_stack_keeps_the_photos_and_processes_nothing_again(tmp_path):
    import sqlite3

    local = tmp_path / "local"
    proc, log, site_port, aws_port = launch(tmp_path, local, "first")
    try:
        wait_for_output(log, proc, lambda t: "boardsite is running" in t, 90, "the site")
        site = f"http://127.0.0.1:{site_port}"
        s = demo_session(site)
        board_id = int(re.search(r'href="/boards/(\d+)/"', s.get(f"{site}/", timeout=10).text).group(1))
        photo = upload_until_settled(s, site, board_id, aws_port, jpeg_bytes())
        assert photo["status"] == "ready", (photo, log.read_text()[-3000:])
        keys = bucket_keys(aws_port, photo["id"])
    finally:
        output = stop(proc, log)
    assert "saved the local S3" in output, output[-3000:]

    proc, log, site_port, aws_port = launch(tmp_path, local, "second")
    try:
        output = wait_for_output(log, proc, lambda t: "boardsite is running" in t, 90, "the site again")
        assert re.search(r"restored \d+ objects of the local S3", output), output[-3000:]
        assert bucket_keys(aws_port, photo["id"]) == keys
        site = f"http://127.0.0.1:{site_port}"
        s = demo_session(site)
        board = s.get(f"{site}/boards/{board_id}/", timeout=10).text
        assert photo["id"] in board
        again = s.get(f"{site}/api/images/{photo['id']}", timeout=10).json()
        thumb = again["variants"]["thumb"]["url"]
        assert thumb.startswith(f"http://127.0.0.1:{aws_port}/")  # today's moto, with yesterday's bytes
        got = requests.get(thumb, timeout=10)
        assert got.status_code == 200
        assert got.content[:3] == b"\xff\xd8\xff"
        # A restored original must not start processing again (its events were wired after): once every queue of
        # the local AWS is drained, any event the restore had sent has been handled.
        wait_for(lambda: queues_drained(aws_port), timeout=60, interval=0.5)
        with sqlite3.connect(local / "db.sqlite3") as db:
            attempts = db.execute("SELECT attempts FROM images_image WHERE id = ?", [photo["id"].replace("-", "")])
            assert attempts.fetchone() == (1,)
    finally:
        output = stop(proc, log)
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.worker
def test_the_stack_serves_photos_through_the_local_cloudfront_stand_in(tmp_path):
    """BOARDSITE_CDN=local: the board page links plain URLs on the stand-in, whose cookies (set by the page) open
    them; without the cookies the stand-in refuses, as CloudFront would."""
    cdn_port = free_port()
    proc, log, site_port, aws_port = launch(
        tmp_path, tmp_path / "local", "cdn", BOARDSITE_CDN="local", BOARDSITE_CDN_PORT=str(cdn_port)
    )
    try:
        output = wait_for_output(log, proc, lambda t: "boardsite is running" in t, 90, "the site")
        assert f"local CloudFront stand-in on http://127.0.0.1:{cdn_port}" in output
        site = f"http://127.0.0.1:{site_port}"
        s = demo_session(site)
        board_id = int(re.search(r'href="/boards/(\d+)/"', s.get(f"{site}/", timeout=10).text).group(1))
        photo = upload_until_settled(s, site, board_id, aws_port, jpeg_bytes())
        assert photo["status"] == "ready", (photo, log.read_text()[-3000:])
        page = s.get(f"{site}/boards/{board_id}/", timeout=10)
        thumb = f"http://127.0.0.1:{cdn_port}/variants/{board_id}/{photo['id']}/thumb.jpg"
        assert thumb in page.text
        assert {c.name for c in s.cookies if c.path == f"/variants/{board_id}/"} == {
            "CloudFront-Policy",
            "CloudFront-Signature",
            "CloudFront-Key-Pair-Id",
        }
        got = s.get(thumb, timeout=10)  # the session sends the page's cookies to the stand-in's port
        assert got.status_code == 200
        assert got.content[:3] == b"\xff\xd8\xff"
        assert requests.get(thumb, timeout=10).status_code == 403
        assert (tmp_path / "local" / "cdn" / "private.pem").stat().st_mode & 0o077 == 0
    finally:
        stop(proc, log)


@pytest.mark.worker
def test_make_run_serves_uploads_through_the_ticket_function_in_lambda_mode(tmp_path):
    """`make run` with ``issue_upload_ticket=lambda``: the site signs a grant, the function (devstack's function URL,
    its own process) answers the ticket with CORS for the site, S3 starts the processing, and the site learns of the
    photo from the function's event alone; a hostile file ends failed with its reason."""
    local = tmp_path / "local"
    proc, log, site_port, _ = launch(tmp_path, local, "tickets", OFFLOAD_MODES="issue_upload_ticket=lambda")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "OFFLOAD_MODES", "DATABASE_URL")}
    env.update(BOARDSITE_LOCAL_DIR=str(local))
    try:
        wait_for_output(log, proc, lambda t: "boardsite is running" in t, 120, "the site")
        site = f"http://127.0.0.1:{site_port}"
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             "from django.contrib.auth import get_user_model; from boardsite.accounts.tokens import token_create; "
             "from boardsite.boards.models import Board; u = get_user_model().objects.get(username='demo'); "
             "print(Board.objects.filter(memberships__user=u).first().pk, "
             "token_create(user=u, name='t', scopes=['read', 'upload'])[1])"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        board, token = made.stdout.split()[-2:]
        auth = {"Authorization": f"Bearer {token}"}
        photos = {"good.jpg": jpeg_bytes(), "hostile.jpg": b"%PDF-1.4 not a photo at all" * 40}
        grant = requests.post(
            f"{site}/api/upload-grants",
            json={"board": int(board), "files": 2, "bytes": sum(map(len, photos.values()))},
            headers=auth,
            timeout=10,
        )
        assert grant.status_code == 201, grant.text
        grant = grant.json()
        assert grant["runtime"] == "lambda"
        # The page's browser asks first whether it may (CORS): the function URL allows the site's own origin only.
        allowed = requests.options(grant["ticket_url"], headers={"Origin": site}, timeout=10)
        assert allowed.headers.get("Access-Control-Allow-Origin") == site
        other = requests.options(grant["ticket_url"], headers={"Origin": "https://evil.example"}, timeout=10)
        assert "Access-Control-Allow-Origin" not in other.headers
        ids = {}
        for name, data in photos.items():
            body = {"grant": grant["grant"], "board": int(board), "filename": name, "content_type": "image/jpeg"}
            answer = requests.post(grant["ticket_url"], json={**body, "size": len(data)}, timeout=10)
            assert answer.status_code == 201, answer.text
            ticket = answer.json()
            assert ticket["image"]["complete_url"] is None  # placed for Lambda: S3 starts it, nothing to report
            upload = ticket["upload"]
            stored = requests.post(upload["url"], data=upload["fields"], files={"file": (name, data)}, timeout=30)
            assert stored.status_code in (200, 201, 204), stored.text
            ids[name] = ticket["image"]["id"]

        def settled() -> dict | None:
            r = requests.get(f"{site}/api/images", params={"ids": ",".join(ids.values())}, headers=auth, timeout=10)
            images = {i["id"]: i for i in r.json()["images"]} if r.ok else {}
            done = all(images.get(i, {}).get("status") in ("ready", "failed") for i in ids.values())
            return images if done else None

        images = wait_for(settled, timeout=90, interval=0.5)
        assert images[ids["good.jpg"]]["status"] == "ready"
        assert images[ids["hostile.jpg"]]["status"] == "failed"
        assert images[ids["hostile.jpg"]]["error"]
        runs = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             "from boardsite.core.models import JobRun; "
             "print(JobRun.objects.filter(job='issue_upload_ticket', runtime='lambda').count())"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert int(runs.stdout.split()[-1]) >= 2, "each ticket the function issued is a measured Lambda run"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
