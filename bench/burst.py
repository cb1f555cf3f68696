"""A burst of uploads through the documented API against the local stack, processed the Lambda way: the local
function runner at concurrency 1, then 4, in one run; and a single upload on an idle stack.

    .venv/bin/python bench/burst.py [--uploads 200] [--megapixels 2] [--idle 10] [--check]

What runs, each its own process as on ``make run``: moto's server (``--aws-port``, else ``MOTO_PORT``, else a free
port), Django's server for the site (``--port``, else ``BOARDSITE_PORT``, else free), the function runner
(``python -m devstack.runner --concurrency N``) and the web-side runner (``manage.py runjobs``, at its default
concurrency in every phase: only the function's concurrency changes), both with their default jobs. A temporary
SQLite database and folder under ``BOARDSITE_LOCAL_DIR`` (or the system's temporary folder). Every upload is the
browser's three steps (``POST /api/uploads``, the presigned POST to S3, ``POST .../complete``), ``--clients``
at a time; ``process_image`` and ``apply_results`` in lambda mode, so S3's event starts the processing.

upload → ready: from the answer of S3 to the presigned POST (the bytes are stored; S3 sends its event) to the
moment the results job marks the row ready (``Image.processed_at``): no page polls in between.

Per phase it prints the throughput (uploads / time from the first stored upload to the last ready row), p50 and p95
of upload → ready, each process's CPU time per photo and how many cores the rest of the machine kept busy meanwhile
(it is shared: what others take, concurrency 4 cannot use), and checks that nothing was lost or doubled: every row
ready; the function runner handled exactly one message per upload and the web runner one result per upload (their
own counts, printed as they stop), no message left in the two jobs' queues or dead-letter queues, each image with
one row per variant and format and exactly those objects (and its result manifest) in S3. For the idle uploads it
also prints the job's own part (its result's ``duration_ms``) and the rest, the runners' share.

Goals (``--check`` exits 1 when one is missed): concurrency 4 gives at least 1.5x the throughput of concurrency 1;
a single upload on an idle stack is ready in at most 0.35 s (median of ``--idle``, spaced by random pauses so they
meet the pollers at any point of their long polls).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_RATIO = 1.5  # throughput at concurrency 4 / at concurrency 1
GOAL_IDLE_SECONDS = 0.35  # a single upload on an idle stack, upload -> ready, median
PASSWORD = "a-long-bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


@dataclass
class Process:
    """A child process with its log; ``stop`` returns its CPU time (user + system, from the kernel's rusage)."""

    name: str
    proc: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> float:
        self.proc.send_signal(signal.SIGTERM)
        killer = threading.Timer(30, lambda: self.proc.kill())  # a runner stops within a long poll; never hang here
        killer.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            killer.cancel()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime


def spawn(name: str, cmd: list[str], env: dict[str, str], folder: Path) -> Process:
    log = folder / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Process(name, proc, log)


@dataclass
class Phase:
    concurrency: int
    landed: dict[str, float] = field(default_factory=dict)  # image id -> when S3 answered the POST (epoch s)
    ready: dict[str, float] = field(default_factory=dict)  # image id -> processed_at (epoch s)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process over the phase
    others: float = 0.0  # cores the rest of the machine kept busy, on average over the phase (it is shared)

    def latencies(self) -> list[float]:
        return [self.ready[i] - self.landed[i] for i in self.landed]

    def span(self) -> float:
        return max(self.ready.values()) - min(self.landed.values())

    def throughput(self) -> float:
        return len(self.landed) / self.span()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a running process has used so far (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent busy so far (Linux: /proc/stat; the machine is shared)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


HANDLED = re.compile(r"(\w+) (\d+) handled, (\d+) failed")


def handled(process: Process, job: str) -> tuple[int, int]:
    """(handled, failed) of ``job``, from the line a runner logs as it stops."""
    counts = {name: (int(done), int(failed)) for name, done, failed in HANDLED.findall(process.text())}
    if job not in counts:
        raise SystemExit(f"{process.name} did not say what it handled:\n{process.text()[-3000:]}")
    return counts[job]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=200, help="uploads in each burst")
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=20, help="uploads sent at a time")
    parser.add_argument("--idle", type=int, default=10, help="single uploads on the idle stack")
    parser.add_argument("--concurrency", type=int, nargs=2, default=(1, 4), metavar=("BASE", "HIGH"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("BOARDSITE_PORT") or 0) or free_port())
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("MOTO_PORT") or 0) or free_port())
    parser.add_argument("--check", action="store_true", help="exit 1 unless the goals are met")
    args = parser.parse_args()

    base = Path(os.environ.get("BOARDSITE_LOCAL_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix="bench-burst-", dir=base))
    endpoint = f"http://127.0.0.1:{args.aws_port}"
    site = f"http://127.0.0.1:{args.port}"
    os.environ.pop("DATABASE_URL", None)  # a fresh SQLite database in ``local``
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        BOARDSITE_LOCAL_DIR=str(local),
        DJANGO_SETTINGS_MODULE="boardsite.settings",
        OFFLOAD_MODES="",  # every job in its default mode: lambda
        UPLOAD_MAX_OUTSTANDING=str(args.uploads + args.idle + 10),  # one person sends the whole burst
        LOG_LEVEL="INFO",  # the runners' counts as they stop
        PYTHONUNBUFFERED="1",
    )
    env = dict(os.environ)
    children: list[Process] = []
    try:
        moto = spawn(
            "moto",
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(args.aws_port)],
            env,
            local,
        )
        children.append(moto)
        wait_until(lambda: answers(f"{endpoint}/moto-api/"), 30, "moto's server")
        return bench(args, local, env, site, children)
    finally:
        for child in reversed(children):
            if child.proc.poll() is None:
                child.proc.terminate()
                child.proc.wait(15)


def bench(args: argparse.Namespace, local: Path, env: dict[str, str], site: str, children: list[Process]) -> int:
    import django

    django.setup()
    import requests
    from django.core.management import call_command

    from bench.photos import photo
    from boardsite.accounts.services import user_signup
    from boardsite.boards.services import board_create
    from boardsite.images.models import Image, Status, Variant
    from deploy.resources import queue_specs
    from devstack import provision
    from offload import aws, config, registry
    from offload.config import ORIGINALS_PREFIX
    from offload.results import MANIFEST, variants_prefix

    processor = registry.s3_job_for(ORIGINALS_PREFIX).name  # the job an upload starts
    applier = registry.results_job().name
    call_command("migrate", verbosity=0)
    provision.provision(origins=[site])
    # S3's test event for the notification just configured: not an upload, and the counts below are per upload.
    aws.client("sqs").purge_queue(QueueUrl=aws.queue_url(registry.get(processor).queue.resolved()))
    user = user_signup(username="bench", password=PASSWORD)
    board = board_create(user=user, title="burst")
    server = spawn(
        "site", [sys.executable, "manage.py", "runserver", "--noreload", site.removeprefix("http://")], env, local
    )
    children.append(server)
    wait_until(lambda: answers(f"{site}/login/"), 60, "the site")

    login = requests.Session()
    login.get(f"{site}/login/", timeout=10)
    login.post(
        f"{site}/login/",
        data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": login.cookies["csrftoken"]},
        timeout=10,
    ).raise_for_status()
    cookies = login.cookies.get_dict()
    assert "sessionid" in cookies, "could not log in"
    sessions = threading.local()

    photos = [photo(args.megapixels, seed) for seed in range(8)]
    cfg = config.load()
    print(
        f"{args.uploads} uploads per burst, {args.clients} at a time, of {args.megapixels:g} MP photo-like JPEGs "
        f"({statistics.mean(map(len, photos)) / 1e6:.2f} MB avg, orientation 6, GPS); variants "
        f"{','.join(f'{v.name} {v.size}' for v in cfg.variants)} x {','.join(cfg.image_formats)}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start"
    )

    def upload(n: int) -> tuple[str, float]:
        """The browser's three steps; (image id, when S3 answered the POST of the bytes)."""
        if not hasattr(sessions, "http"):
            sessions.http = requests.Session()
            sessions.http.cookies.update(cookies)
        http, data = sessions.http, photos[n % len(photos)]
        headers = {"X-CSRFToken": cookies["csrftoken"]}
        ticket = http.post(
            f"{site}/api/uploads",
            json={"board": board.pk, "filename": f"p{n}.jpg", "content_type": "image/jpeg", "size": len(data)},
            headers=headers,
            timeout=60,
        )
        assert ticket.status_code == 201, ticket.text
        body = ticket.json()
        stored = requests.post(
            body["upload"]["url"],
            data=body["upload"]["fields"],
            files={"file": (f"p{n}.jpg", data, "image/jpeg")},
            timeout=60,
        )
        landed = time.time()
        assert stored.status_code in (200, 201, 204), stored.text
        done = http.post(f"{site}{body['image']['complete_url']}", headers=headers, timeout=60)
        assert done.status_code == 200, done.text
        return body["image"]["id"], landed

    def wait_ready(ids: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            settled = Image.objects.filter(pk__in=ids, status__in=(Status.READY, Status.FAILED))
            if settled.count() == len(ids):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {settled.count()} of {len(ids)} uploads settled after {timeout:g} s")
            time.sleep(0.05)
        failed = list(Image.objects.filter(pk__in=ids, status=Status.FAILED).values_list("pk", "error"))
        assert not failed, f"failed uploads: {failed[:5]}"
        return {
            str(pk): at.timestamp() for pk, at in Image.objects.filter(pk__in=ids).values_list("pk", "processed_at")
        }

    def start_runners(concurrency: int) -> tuple[Process, Process]:
        # `make run`'s two runners with their default jobs: every queue they poll there, they poll here.
        at_once = ["--concurrency", str(concurrency)]
        fn = spawn(f"functions-{concurrency}", [sys.executable, "-m", "devstack.runner", *at_once], env, local)
        web = spawn(f"web-jobs-{concurrency}", [sys.executable, "manage.py", "runjobs"], env, local)
        children.extend((fn, web))
        for runner in (fn, web):
            wait_until(lambda r=runner: "local function runner:" in r.text(), 60, f"{runner.name} to start")
        return fn, web

    def stop_runners(fn: Process, web: Process, expected: int) -> dict[str, float]:
        cpu = {"function runner": fn.stop(), "web runner": web.stop()}
        # Each photo's run reports twice on the results queue: its result, and the record of the run (job.run).
        for runner, job, count in ((fn, processor, expected), (web, applier, 2 * expected)):
            assert handled(runner, job) == (count, 0), (
                f"{runner.name}: {job} handled/failed {handled(runner, job)}, expected ({count}, 0): lost or "
                f"doubled work"
            )
        return cpu

    def check_outputs(ids: list[str]) -> int:
        """Each image: one row per variant and format, and in S3 exactly their objects and the manifest."""
        s3 = aws.client("s3")
        rows: dict[str, set[str]] = {i: set() for i in ids}
        for image_id, name, fmt, key in Variant.objects.filter(image_id__in=ids).values_list(
            "image_id", "name", "format", "key"
        ):
            rows[str(image_id)].add(key)
            assert fmt in cfg.image_formats, fmt
            assert name in {v.name for v in cfg.variants}, name
        objects = 0
        for image in Image.objects.filter(pk__in=ids):
            per_image = Variant.objects.filter(image=image).count()
            assert per_image == len(cfg.variants) * len(cfg.image_formats), (image.pk, per_image)
            prefix = variants_prefix(image.original_key)
            stored = set(aws.list_keys(cfg.bucket, prefix, s3))
            assert stored == rows[str(image.pk)] | {prefix + MANIFEST}, (image.pk, sorted(stored))
            objects += len(stored)
        return objects

    def queues_empty() -> None:
        """Nothing waiting or in flight on the two jobs' queues, nothing in their dead-letter queues."""
        sqs = aws.client("sqs")
        jobs = [registry.get(processor), registry.get(applier)]
        names = {j.queue.resolved() for j in jobs} | {j.dead_letter.resolved() for j in jobs if j.dead_letter}
        names |= {spec.dlq_name for spec in queue_specs() if spec.dead_letter and spec.name in names}
        attributes = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        for name in sorted(names):
            # Run records trail the photos by a moment (sent in the background, then applied): drained soon after.
            deadline = time.monotonic() + 15
            while True:
                url = aws.queue_url(name)
                counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attributes)["Attributes"]
                if all(counts[a] == "0" for a in attributes) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert all(counts[a] == "0" for a in attributes), (name, counts)

    servers = {"moto": children[0], "site": server}

    # Warm up: the site's first requests, the runners' imports and clients, the first photo through Pillow.
    fn, web = start_runners(args.concurrency[1])
    warm = [upload(n)[0] for n in range(2)]
    wait_ready(warm, 60)
    stop_runners(fn, web, len(warm))

    phases: list[Phase] = []
    idle: list[float] = []
    work: list[float] = []  # the job's own part of each idle upload

    def job_seconds(image_id: str) -> float:
        """What process_image itself took (its result's ``duration_ms``: from its first request to its last write
        before the report), read from the result manifest it stored."""
        key = variants_prefix(Image.objects.get(pk=image_id).original_key) + MANIFEST
        manifest = json.loads(aws.client("s3").get_object(Bucket=cfg.bucket, Key=key)["Body"].read())
        return manifest["duration_ms"] / 1000

    for concurrency in args.concurrency:
        phase = Phase(concurrency)
        before = {name: cpu_seconds(p.proc.pid) for name, p in servers.items()}
        machine, clients, started = machine_busy_seconds(), time.process_time(), time.monotonic()
        fn, web = start_runners(concurrency)
        with ThreadPoolExecutor(args.clients) as pool:
            phase.landed = dict(pool.map(upload, range(args.uploads)))
        ids = list(phase.landed)
        phase.ready = wait_ready(ids, 60 + 5 * args.uploads)
        expected = len(ids)
        if concurrency == args.concurrency[1]:
            # A single upload at a time on the now idle stack, at random points of the pollers' long polls.
            pauses = random.Random(7)
            singles = {}
            for n in range(args.idle):
                time.sleep(pauses.uniform(0.2, 1.2))
                image_id, landed = upload(args.uploads + n)
                singles[image_id] = landed
                ready = wait_ready([image_id], 60)
                idle.append(ready[image_id] - landed)
                work.append(job_seconds(image_id))
            expected += len(singles)
            ids += list(singles)
        queues_empty()
        phase.cpu = stop_runners(fn, web, expected)
        phase.cpu |= {name: cpu_seconds(p.proc.pid) - before[name] for name, p in servers.items()}
        phase.cpu["clients (this process)"] = time.process_time() - clients
        phase.others = (machine_busy_seconds() - machine - sum(phase.cpu.values())) / (time.monotonic() - started)
        objects = check_outputs(ids)
        phases.append(phase)
        lat = phase.latencies()
        print(
            f"\nconcurrency {concurrency}: {len(phase.landed)} ready, each once ({processor} and {applier} handled "
            f"{expected} each, {expected} rows ready, {objects} objects under variants/, queues empty)"
        )
        print(
            f"  stored over {max(phase.landed.values()) - min(phase.landed.values()):.1f} s; first stored -> last "
            f"ready {phase.span():.1f} s: {phase.throughput():.2f} photos/s"
        )
        print(f"  upload -> ready: p50 {percentile(lat, 0.5):.2f} s, p95 {percentile(lat, 0.95):.2f} s")
        per_photo = {name: seconds / expected for name, seconds in phase.cpu.items()}
        total = sum(per_photo.values())
        print(
            "  CPU per photo: "
            + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in per_photo.items())
            + f"; {total * 1000:.0f} ms in all: {os.cpu_count()} free cores would do {os.cpu_count() / total:.1f} "
            f"photos/s at most; other processes kept {max(0.0, phase.others):.2f} cores busy meanwhile"
        )

    low, high = phases
    ratio = high.throughput() / low.throughput()
    idle_median = statistics.median(idle)
    print(
        f"\nthroughput at concurrency {high.concurrency} / {low.concurrency}: {high.throughput():.2f} / "
        f"{low.throughput():.2f} photos/s = {ratio:.2f}x (goal >= {GOAL_RATIO}x)"
    )
    print(
        f"single upload on an idle stack, upload -> ready: median {idle_median:.3f} s over {len(idle)} "
        f"(min {min(idle):.3f}, max {max(idle):.3f}; goal <= {GOAL_IDLE_SECONDS} s); the job itself "
        f"{statistics.median(work):.3f} s, the rest (S3's event to the runner, the result to the row) "
        f"{statistics.median(i - w for i, w in zip(idle, work, strict=True)):.3f} s"
    )
    print(f"load average at the end {os.getloadavg()[0]:.2f}; logs in {local}")
    missed = []
    if ratio < GOAL_RATIO:
        missed.append(f"throughput ratio {ratio:.2f} < {GOAL_RATIO}")
    if idle_median > GOAL_IDLE_SECONDS:
        missed.append(f"idle upload -> ready {idle_median:.3f} s > {GOAL_IDLE_SECONDS} s")
    if missed:
        print("MISSED: " + "; ".join(missed))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
