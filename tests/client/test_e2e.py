"""The client end to end against the real local stack (`manage.py devstack`: moto, the site, the function and job
runners, each a process), the client itself a subprocess: a folder with a hostile file uploaded, interrupted with
SIGINT mid-upload and resumed, run again (skipping what is there), then downloaded."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image as PILImage

pytestmark = [pytest.mark.worker, pytest.mark.once]

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "client" / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo(seed: int) -> bytes:
    """A distinct photo-sized JPEG (noise compresses badly: each is a few hundred KB)."""
    rng = random.Random(seed)
    im = PILImage.frombytes("RGB", (480, 360), rng.randbytes(480 * 360 * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@contextlib.contextmanager
def running_stack(tmp: Path, **extra_env: str):
    """`make run`'s stack on its own ports and folder; a token for its demo user. Skipped while the site lacks the
    API for programs (its OpenAPI document answers 404)."""
    site_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "OFFLOAD_MODES", "DATABASE_URL")}
    for name in ("BOARDSITE_BUCKET", "BOARDSITE_UPLOADS_QUEUE", "BOARDSITE_RESULTS_QUEUE"):
        env.pop(name, None)
    env.update(
        BOARDSITE_LOCAL_DIR=str(tmp / "local"), CELERY_BROKER_URL="", PYTHONUNBUFFERED="1",
        BOARDSITE_PORT=str(site_port), MOTO_PORT=str(aws_port), **extra_env,
    )  # fmt: skip
    log = tmp / "devstack.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "devstack", "--port", str(site_port), "--aws-port", str(aws_port),
         "--functions-port", str(free_port())],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "boardsite is running" not in log.read_text():
            assert proc.poll() is None, f"devstack exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"devstack did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        url = f"http://127.0.0.1:{site_port}"
        if requests.get(f"{url}/api/openapi.json", timeout=10).status_code == 404:
            pytest.skip("the site has no API for programs yet (/api/openapi.json answers 404): merge main")
        made = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             "from django.contrib.auth import get_user_model; from boardsite.accounts.tokens import token_create; "
             "u = get_user_model().objects.get(username='demo'); "
             "print(token_create(user=u, name='e2e', scopes=['read', 'upload', 'manage'])[1])"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        token = made.stdout.strip().splitlines()[-1]
        yield {"url": url, "token": token, "tmp": tmp, "log": log}
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: devstack stops every child, moto last
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("client-e2e")) as running:
        yield running


@pytest.fixture(scope="module")
def function_stack(tmp_path_factory):
    """The same, with upload tickets from the upload-ticket function (issue_upload_ticket on lambda)."""
    with running_stack(
        tmp_path_factory.mktemp("client-e2e-lambda"), OFFLOAD_MODES="issue_upload_ticket=lambda"
    ) as running:
        yield running


def client_env(stack, state: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOARDSITE_")}
    env.update(
        PYTHONPATH=str(CLIENT_SRC), BOARDSITE_URL=stack["url"], BOARDSITE_TOKEN=stack["token"],
        XDG_CONFIG_HOME=str(stack["tmp"] / "config"), XDG_STATE_HOME=str(stack["tmp"] / state),
    )  # fmt: skip
    return env


def boardsite(stack, *args, state="state", timeout=600) -> tuple[int, dict, str]:
    done = subprocess.run(
        [sys.executable, "-m", "boardsite_client", *map(str, args), "--json"],
        env=client_env(stack, state), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def board_images(stack) -> list[dict]:
    headers = {"Authorization": f"Bearer {stack['token']}"}
    boards = requests.get(f"{stack['url']}/api/boards", headers=headers, timeout=10).json()["boards"]
    board = next(b for b in boards if b["title"] == "Demo board")
    images, after = [], None
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        page = requests.get(f"{stack['url']}{board['images_url']}", params=params, headers=headers, timeout=10).json()
        images += page["images"]
        after = page["next"]
        if not after:
            return images


def test_upload_interrupt_resume_rerun_and_download(stack, tmp_path):
    folder = tmp_path / "trip"
    (folder / "day 2").mkdir(parents=True)
    originals = {}
    for n in range(16):
        data = photo(n)
        path = folder / ("day 2" if n % 3 == 0 else "") / f"photo-{n:02}.jpg"
        path.write_bytes(data)
        originals[hashlib.sha256(data).hexdigest()] = path
    (folder / "evil.jpg").write_text("I am a text file wearing a .jpg name.\n" * 50)
    (folder / "notes.txt").write_text("not a photo")
    before = len(board_images(stack))

    # 1. Interrupted: SIGINT once two files are stored and reported (the JSON progress on stderr says so).
    proc = subprocess.Popen(
        [sys.executable, "-m", "boardsite_client", "upload", "Demo board", str(folder), "--json", "--parallel", "1"],
        env=client_env(stack, "state"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sent = 0
    for line in proc.stderr:
        event = json.loads(line)
        if event["event"] == "file" and event["outcome"] == "sent":
            sent += 1
            if sent == 2:
                proc.send_signal(signal.SIGINT)
                break
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "resume" in json.loads(out)["error"]
    manifest_path = next((stack["tmp"] / "state" / "boardsite").glob("upload-*.json"))
    interrupted = json.loads(manifest_path.read_text())["files"]
    # Stored and reported: the hostile file (sent first, it sorts first) may have been settled as failed already.
    stored = ("sent", "completed", "ready", "failed")
    kept = {e["path"]: e["image"] for e in interrupted.values() if e["state"] in stored and e.get("image")}
    assert len(kept) >= 2, interrupted
    assert len(kept) < 17, "the run was interrupted before the end"

    # 2. Resumed: the files the first run finished keep their images (not sent again); the hostile one fails.
    code, summary, err = boardsite(stack, "upload", "Demo board", folder, "--wait", "300")
    assert code == 1, (summary, err[-2000:])
    results = {Path(r["file"]).name: r for r in summary["results"]}
    assert results["evil.jpg"]["state"] == "failed"
    assert results["evil.jpg"]["error"], "the reason is reported"
    assert {r["state"] for n, r in results.items() if n != "evil.jpg"} == {"ready"}, summary
    assert len(results) == 17
    assert [Path(s["file"]).name for s in summary["skipped"]] == ["notes.txt"]
    for path, image in kept.items():
        assert next(r for r in summary["results"] if r["file"] == path)["image"] == image, "sent twice"
    on_board = board_images(stack)
    ready = [i for i in on_board if i["status"] == "ready" and i["sha256"] in originals]
    assert sorted(i["sha256"] for i in ready) == sorted(originals), "each photo once, none twice"

    # 3. The same command again: nothing is sent; the hostile file is reported failed again.
    code, again, _ = boardsite(stack, "upload", "Demo board", folder)
    assert code == 1
    assert again["counts"] == {"ready": 16, "failed": 1}
    assert len(board_images(stack)) == len(on_board)

    # 4. Another machine (no manifest): the board has these contents already.
    clean = tmp_path / "clean"
    shutil.copytree(folder, clean, ignore=shutil.ignore_patterns("evil.jpg"))
    code, fresh, _ = boardsite(stack, "upload", "Demo board", clean, state="other-state")
    assert code == 0, fresh
    assert fresh["counts"] == {"present": 16}
    assert len(board_images(stack)) == len(on_board)
    assert len(on_board) > before

    # 5. Download: the large variants, then again (all there), then the originals (the demo user owns the board).
    code, got, err = boardsite(stack, "download", "Demo board", tmp_path / "large")
    assert code == 0, (got, err[-2000:])
    assert got["counts"]["downloaded"] == sum(1 for i in on_board if i["status"] == "ready")
    for r in got["results"]:
        if r["state"] == "downloaded":
            assert (tmp_path / "large" / r["file"]).read_bytes()[:3] == b"\xff\xd8\xff"
    code, again, _ = boardsite(stack, "download", "Demo board", tmp_path / "large")
    assert code == 0
    assert again["counts"].get("downloaded", 0) == 0
    assert again["counts"]["present"] == got["counts"]["downloaded"]
    code, orig, _ = boardsite(stack, "download", "Demo board", tmp_path / "orig", "--originals")
    assert code == 0, orig
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "orig").iterdir() if p.suffix}
    assert set(originals) <= digests, "the originals come back byte for byte"


def small_photo(seed: int) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    PILImage.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_the_client_uploads_200_photos_through_the_ticket_function_when_the_site_routes_it_there(
    function_stack, tmp_path
):
    """A folder of 200 photos: grants from the site (each for at most the 20 open uploads a person may have), each
    ticket from the function, no completion report (S3 starts the processing), progress at least every 2 s, every
    photo followed until ready although the site learns of them from the function's events; a hostile file fails
    with its reason; a re-run sends nothing."""
    folder = tmp_path / "lambda"
    folder.mkdir()
    for n in range(200):
        (folder / f"p{n:03}.jpg").write_bytes(small_photo(1000 + n))
    (folder / "evil.jpg").write_text("plain text, not a photo\n" * 40)
    proc = subprocess.Popen(
        [sys.executable, "-m", "boardsite_client", "upload", "Demo board", str(folder), "--json", "--wait", "600"],
        env=client_env(function_stack, "state"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    arrivals, lines = [], []
    for line in proc.stderr:  # not a terminal: JSON lines, each timed as it arrives
        arrivals.append(time.monotonic())
        lines.append(line)
    out, _ = proc.communicate(timeout=60)
    code, summary, err = proc.returncode, json.loads(out.strip().splitlines()[-1]), "".join(lines)
    progress = [t for t, line in zip(arrivals, lines, strict=True) if '"event": "progress"' in line]
    assert len(progress) >= 2, err[-2000:]
    gaps = [b - a for a, b in itertools.pairwise(progress)]
    assert max(gaps) <= 2.5, f"a progress line at least every 2 s (longest gap {max(gaps):.1f} s)"
    assert code == 1, (summary, err[-2000:])
    results = {Path(r["file"]).name: r for r in summary["results"]}
    assert results["evil.jpg"]["state"] == "failed"
    assert results["evil.jpg"]["error"]
    failed = {n: r for n, r in results.items() if n != "evil.jpg" and r["state"] != "ready"}
    assert not failed, [(n, r.get("error")) for n, r in failed.items()]
    assert len(results) == 201
    site_log = function_stack["log"].read_text()
    assert "POST /api/upload-grants" in site_log
    assert "POST /api/uploads " not in site_log, "no ticket from the site"
    assert "/complete" not in site_log, "no completion report: S3 started each photo's processing"
    code, again, _ = boardsite(function_stack, "upload", "Demo board", folder)
    assert code == 1
    assert again["counts"] == {"ready": 200, "failed": 1}
