"""Helpers the tests share: driving the upload API as the browser does, waiting, the processes a test starts, reading
pages and statuses, and the deploy template as moto creates it. Data is made in factories.py; tests import these from
here (never from conftest or another test module)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from django.db import connection
from django.test import Client
from PIL import Image as PILImage

from boardsite.images import selectors
from boardsite.images.models import Image

ROOT = Path(__file__).resolve().parents[1]


def ticket(client: Client, board_id: int, data: bytes, *, content_type: str = "image/jpeg", name: str = "photo.jpg"):
    r = client.post(
        "/api/uploads",
        {"board": board_id, "filename": name, "content_type": content_type, "size": len(data)},
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    return r.json()


def post_to_s3(upload: dict, data: bytes, content_type: str = "image/jpeg") -> None:
    """The browser's part: multipart POST of the ticket's fields plus the file, straight to S3."""
    r = requests.post(upload["url"], data=upload["fields"], files={"file": ("f", data, content_type)}, timeout=30)
    assert r.status_code in (200, 201, 204), r.text


def upload(client: Client, board_id: int, data: bytes, **kw) -> dict:
    body = ticket(client, board_id, data, **kw)
    post_to_s3(body["upload"], data, kw.get("content_type", "image/jpeg"))
    r = client.post(body["image"]["complete_url"])
    assert r.status_code == 200, r.content
    return body


def avatar_ticket(client: Client, data: bytes, *, content_type: str = "image/jpeg", name: str = "me.jpg"):
    r = client.post(
        "/api/avatar",
        {"filename": name, "content_type": content_type, "size": len(data)},
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    return r.json()


def avatar_upload(client: Client, data: bytes, **kw) -> dict:
    """A profile picture as the profile page's script sends it: ticket, POST to S3, completion report."""
    body = avatar_ticket(client, data, **kw)
    post_to_s3(body["upload"], data, kw.get("content_type", "image/jpeg"))
    r = client.post(body["avatar"]["complete_url"])
    assert r.status_code == 200, r.content
    return body


class Now:
    """Runs what it is given at once, on the caller's thread: for the site's executors (``jobs.SHADOW_EXECUTOR``),
    which hand work over off the request."""

    def submit(self, fn, *args):
        fn(*args)


def wait_for(predicate: Callable[[], object], timeout: float = 30, interval: float = 0.1, tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            tick()
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


def status(client: Client, ids):
    """``GET /api/images?ids=…``: the status of a page's pending tiles, as the board page asks for it."""
    return client.get("/api/images", {"ids": ",".join(str(i) for i in ids)})


def walk(board, user, role, *, between=None) -> list[uuid.UUID]:
    """Every image of ``board``'s pages as ``user`` sees them, page by page; ``between(n)`` runs after page ``n``."""
    seen, cursor, pages = [], None, 0
    while True:
        page = selectors.board_tiles_page(board=board, user=user, role=role, after=cursor)
        seen += [i.pk for i in page.images]
        pages += 1
        if between:
            between(pages)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def settled(image_id: str) -> Image | None:
    image = Image.objects.get(pk=image_id)
    return image if image.status in ("ready", "failed") else None


def send_original(client: Client, board_id: int, data: bytes, s3, bucket: str) -> tuple[dict, dict]:
    """Ticket + POST to S3, without reporting it; returns the ticket and the S3 event S3 would send."""
    from offload.events import s3_object_created_event

    body = ticket(client, board_id, data)
    post_to_s3(body["upload"], data)
    key = body["upload"]["fields"]["key"]
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    return body, s3_object_created_event(bucket=bucket, key=key, size=len(data), etag=etag)


def run_in_thread(target: Callable[..., object], *args, **kwargs):
    """A daemon thread that closes its own database connections when done (Postgres refuses to drop a test
    database that a leftover session still uses)."""
    import threading

    from django.db import connections

    def body():
        try:
            target(*args, **kwargs)
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


# Byte signatures of metadata blocks: EXIF (JPEG APP1 and WebP), XMP (JPEG and the WebP chunk), IPTC (Photoshop APP13).
METADATA_MARKERS = (b"Exif\x00\x00", b"EXIF", b"http://ns.adobe.com/xap/1.0/", b"XMP ", b"Photoshop 3.0", b"<x:xmpmeta")


def assert_no_metadata(data: bytes) -> None:
    """No EXIF (so no GPS), XMP or IPTC in an encoded variant, by the decoder's view and by the bytes."""
    with PILImage.open(io.BytesIO(data)) as im:
        assert len(im.getexif()) == 0, f"{im.format} variant has EXIF"
        for key in ("exif", "xmp", "XML:com.adobe.xmp", "photoshop", "iptc", "comment"):
            assert key not in im.info, f"{im.format} variant carries {key}"
    for marker in METADATA_MARKERS:
        assert marker not in data, f"variant bytes contain {marker!r}"


def dominant_is(colour: str, rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return all(abs(a - e) <= tolerance for a, e in zip((r, g, b), rgb, strict=True))


def database_url() -> str:
    """The test database as a ``DATABASE_URL``, for the real worker processes a test starts."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    user = s.get("USER") or ""
    auth = f"{user}:{s.get('PASSWORD') or ''}@" if user else ""
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@contextlib.contextmanager
def celery_worker(tmp_path: Path, offload_modes: str) -> Iterator[Path]:
    """A real Celery worker (the one ``make run`` starts) on this test run's database, with ``OFFLOAD_MODES`` as
    given; yields its log, stops it after, and prints the log's end (pytest shows it when the test fails)."""
    from boardsite.celery import app as celery_app
    from boardsite.core.jobs import celery_worker_command

    env = {**os.environ, "DATABASE_URL": database_url(), "OFFLOAD_MODES": offload_modes}
    log = tmp_path / "worker.log"
    celery_app.control.purge()  # leftovers of an earlier run
    root = Path(__file__).resolve().parent.parent
    worker = subprocess.Popen(
        celery_worker_command(sys.executable), cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        wait_for(lambda: " ready." in log.read_text(), timeout=60)
        yield log
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        print(log.read_text()[-5000:])


def start_process(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``cmd`` run from the repository's root with ``env``, its output (and errors) written to ``log``."""
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen, log: Path) -> str:
    """Stop a process of ``start_process`` (killed if it does not end within 15 s); returns its log."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    return log.read_text()


def for_moto(tpl: dict) -> str:
    """The template as moto's CloudFormation can create it: it has no AWS::SES::EmailIdentity, so outputs of the
    identity's attributes (the DKIM records) cannot resolve there; cfn-lint checks them against AWS's resource spec."""
    outputs = tpl["Outputs"]
    kept = {k: v for k, v in outputs.items() if "MailIdentity" not in json.dumps(v)}
    return json.dumps({**tpl, "Outputs": kept})
