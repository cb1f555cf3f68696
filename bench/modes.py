"""How processing an upload (the job S3 starts for originals/) behaves in each mode: the same photos through
inline, Celery and Lambda (local runner).

    .venv/bin/python bench/modes.py [--photos 8] [--megapixels 12]

One run, one machine: moto's server as AWS, a temporary SQLite database, a real Celery worker and the local function
runner as separate processes. For each mode it prints the median time from "upload reported" to "row ready", the
function's own median duration, and ratios against inline; then what that duration would cost on Lambda.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LAMBDA_GB_SECOND = 0.0000166667  # USD, x86, us-east-1


def photo(megapixels: float, seed: int) -> bytes:
    from PIL import Image, ImageDraw

    w = int((megapixels * 1_000_000 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    im = Image.new("RGB", (w, h), (seed * 37 % 255, 120, 200))
    draw = ImageDraw.Draw(im)
    for i in range(0, w, 64):  # some detail for the encoder
        draw.line([(i, 0), (w - i, h)], fill=(i % 255, seed * 11 % 255, 90), width=5)
    exif = im.getexif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=12)
    args = parser.parse_args()

    local = Path(tempfile.mkdtemp(prefix="boardsite-bench-"))
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        BOARDSITE_LOCAL_DIR=str(local),
        DJANGO_SETTINGS_MODULE="boardsite.settings",
        LOG_LEVEL="WARNING",
        DJANGO_ALLOWED_HOSTS="testserver",  # the in-process test client
    )
    os.environ.pop("DATABASE_URL", None)
    import logging

    logging.disable(logging.WARNING)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from boardsite.accounts.services import user_signup
    from boardsite.boards.services import board_create
    from boardsite.core.jobs import celery_worker_command
    from boardsite.images.models import Image
    from devstack import provision, runner
    from offload import registry
    from offload.config import ORIGINALS_PREFIX

    processor = registry.s3_job_for(ORIGINALS_PREFIX).name  # the job an upload starts
    applier = registry.results_job().name
    call_command("migrate", verbosity=0)
    provision.provision(origins=["http://127.0.0.1"])
    user = user_signup(username="bench", password="a-long-bench-password")
    board = board_create(user=user, title="bench")
    client = Client()
    client.force_login(user)
    photos = [photo(args.megapixels, i) for i in range(args.photos)]
    print(
        f"{args.photos} photos of {args.megapixels:g} MP ({statistics.mean(map(len, photos)) / 1e6:.1f} MB avg), "
        f"orientation 6, GPS; variants {os.environ.get('BOARDSITE_VARIANTS', 'thumb=320,medium=960,large=1920')}"
    )

    import requests

    def one(data: bytes, tick: Callable[[], object] | None = None) -> float:
        body = client.post(
            "/api/uploads",
            {"board": board.pk, "filename": "p.jpg", "content_type": "image/jpeg", "size": len(data)},
            content_type="application/json",
        ).json()
        requests.post(
            body["upload"]["url"],
            data=body["upload"]["fields"],
            files={"file": ("p.jpg", data, "image/jpeg")},
            timeout=60,
        ).raise_for_status()
        started = time.perf_counter()
        client.post(body["image"]["complete_url"])
        while True:
            image = Image.objects.get(pk=body["image"]["id"])
            if image.status in ("ready", "failed"):
                break
            if tick:
                tick()
            time.sleep(0.01)
        assert image.status == "ready", image.error
        return time.perf_counter() - started

    results: dict[str, list[float]] = {}

    settings.OFFLOAD_MODES = {processor: "inline", applier: "inline"}
    one(photos[0])  # warm up imports and clients
    results["inline"] = [one(p) for p in photos]

    env = {**os.environ, "OFFLOAD_MODES": f"{processor}=celery,{applier}=inline"}
    settings.OFFLOAD_MODES = {processor: "celery", applier: "inline"}
    worker = subprocess.Popen(
        celery_worker_command(sys.executable), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        one(photos[0])
        results["celery"] = [one(p) for p in photos]
    finally:
        worker.terminate()
        worker.wait(15)

    settings.OFFLOAD_MODES = {processor: "lambda", applier: "lambda"}
    fn = subprocess.Popen(
        [sys.executable, "-m", "devstack.runner", processor],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    apply_job = registry.get(applier)
    try:

        def tick() -> None:
            runner.poll_once(apply_job, wait_seconds=0)

        one(photos[0], tick)
        results["lambda (local)"] = [one(p, tick) for p in photos]
    finally:
        fn.terminate()
        fn.wait(15)

    from offload import imaging
    from offload.config import load

    cfg = load()
    durations = []
    for data in photos:
        t = time.perf_counter()
        imaging.make_variants(data, imaging.Options.from_config(cfg))
        durations.append(time.perf_counter() - t)
    work = statistics.median(durations)

    base = statistics.median(results["inline"])
    print(f"\n{'mode':<16}{'report → ready, median':>24}{'ratio vs inline':>18}")
    for mode, times in results.items():
        med = statistics.median(times)
        print(f"{mode:<16}{med * 1000:>21.0f} ms{med / base:>17.2f}x")
    memory_gb = registry.get(processor).memory / 1024
    per_million = work * memory_gb * LAMBDA_GB_SECOND * 1_000_000
    print(
        f"\nPillow work alone (decode, 3 variants, encode), median: {work * 1000:.0f} ms "
        f"({work / base:.2f}x of the inline round trip)"
    )
    print(
        f"Lambda compute at {memory_gb * 1024:.0f} MB for that work: ≈ ${per_million:.2f} per million photos "
        f"(plus requests and S3)"
    )
    moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
