"""What a burst of uploads costs the web side, with upload tickets from the site (issue_upload_ticket inline) and
from the upload-ticket function (lambda), in one run.

    .venv/bin/python bench/upload_web_work.py [--uploads 100] [--batch 20] [--check]

What runs: moto's server, the function runner (``python -m devstack.runner``: process_image on Lambda's path) and,
for the lambda phase, the function URL (``python -m devstack.function_urls``), each its own process as on ``make
run``; the site itself and the results job (``apply_results``) in this process, in threads, so that every request
the site serves, every database query and the CPU time of the threads doing the web side's work are counted where
they happen (the site's threads by ``time.thread_time`` around each request; the results job's around each result
it applies). The clients do what the board page and the terminal client do, with an access token: per batch of
``--batch`` files, inline: a ticket and a completion report to the site per photo; lambda: one grant from the site,
each ticket from the function, no report (S3 starts the processing); then, as the page does, one batched status
request (``GET /api/images?ids=``) a second for all the photos still pending.

Per mode it prints the site's requests by kind, its queries and its CPU per photo, the results job's queries and CPU
per photo (the events it applies: in lambda mode each photo's ``image.ticketed`` too), and the ratio lambda/inline.

Goal (``--check`` exits 1 when it is missed): in lambda mode the web side does no per-photo request work: no ticket
and no completion report reach the site, and its requests other than the batched status polls are at most one per
batch (the grant).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.burst import answers, free_port, spawn, wait_until  # noqa: E402 - after the path

KINDS = ("upload-grants", "uploads", "complete", "status", "other")


class Counts:
    """What the web side did, by who did it (the site's request threads, the results job), thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.queries: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()
        self.local = threading.local()

    def query(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with self.lock:
            self.queries[getattr(self.local, "role", "other")] += 1
        return execute(sql, params, many, context)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.queries.clear()
            self.cpu.clear()


def kind(path: str, method: str) -> str:
    if path == "/api/upload-grants":
        return "upload-grants"
    if path == "/api/uploads":
        return "uploads"
    if path.endswith("/complete"):
        return "complete"
    if path == "/api/images" and method == "GET":
        return "status"
    return "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20, help="files per batch (one drop, one grant)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the goal is met")
    args = parser.parse_args()
    base = Path(os.environ.get("BOARDSITE_LOCAL_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    local = Path(tempfile.mkdtemp(prefix="bench-web-work-", dir=base))
    aws_port, site_port, functions_port = free_port(), free_port(), free_port()
    endpoint, site = f"http://127.0.0.1:{aws_port}", f"http://127.0.0.1:{site_port}"
    functions = f"http://127.0.0.1:{functions_port}"
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        BOARDSITE_LOCAL_DIR=str(local),
        DJANGO_SETTINGS_MODULE="boardsite.settings",
        OFFLOAD_MODES="",
        UPLOAD_MAX_OUTSTANDING=str(args.uploads + 10),  # one person sends the whole burst
        UPLOAD_GRANT_KEY="bench-" + "k" * 40,
        UPLOAD_TICKET_FUNCTION_URL=functions,
        PYTHONUNBUFFERED="1",
    )
    env = dict(os.environ)
    children = []
    try:
        children.append(
            spawn("moto", [str(Path(sys.executable).parent / "moto_server"), "-p", str(aws_port)], env, local)
        )
        wait_until(lambda: answers(f"{endpoint}/moto-api/"), 30, "moto's server")
        children.append(spawn("functions", [sys.executable, "-m", "devstack.runner", "process_image"], env, local))
        cmd = [sys.executable, "-m", "devstack.function_urls", "--port", str(functions_port), "--origin", site]
        children.append(spawn("function-url", cmd, env, local))
        return bench(args, site, site_port, children)
    finally:
        for child in reversed(children):
            if child.proc.poll() is None:
                child.proc.terminate()
                child.proc.wait(15)


def bench(args: argparse.Namespace, site: str, site_port: int, children: list) -> int:
    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db.backends.signals import connection_created
    from werkzeug.serving import make_server

    from bench.photos import photo
    from boardsite.accounts.services import user_signup
    from boardsite.accounts.tokens import token_create
    from boardsite.boards.services import board_create
    from boardsite.core import results as core_results
    from devstack import provision, runner
    from offload import aws, registry

    counts = Counts()
    connection_created.connect(lambda connection, **_: connection.execute_wrappers.append(counts.query), weak=False)
    call_command("migrate", verbosity=0)
    provision.provision(origins=[site])
    aws.client("sqs").purge_queue(QueueUrl=aws.queue_url(registry.get("process_image").queue.resolved()))
    user = user_signup(username="bench", password="a-long-bench-password")
    board = board_create(user=user, title="web work")
    _, token = token_create(user=user, name="bench", scopes=["read", "upload"])

    django_app = WSGIHandler()

    def app(environ: dict, start_response: Any) -> Any:
        counts.local.role = "site"
        started = time.thread_time()
        try:
            return list(django_app(environ, start_response))
        finally:
            with counts.lock:
                counts.requests[kind(environ["PATH_INFO"], environ["REQUEST_METHOD"])] += 1
                counts.cpu["site"] += time.thread_time() - started

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = make_server("127.0.0.1", site_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real_apply = core_results.result_apply

    def applying(*, result: dict) -> bool:
        counts.local.role = "results"
        started = time.thread_time()
        try:
            return real_apply(result=result)
        finally:
            with counts.lock:
                counts.cpu["results"] += time.thread_time() - started

    core_results.result_apply = applying  # the results job's handler looks it up on each result
    stop = threading.Event()
    applier = threading.Thread(target=runner.run, args=([registry.get("apply_results")], stop), daemon=True)
    applier.start()
    wait_until(lambda: answers(f"{site}/login/"), 30, "the site")
    wait_until(lambda: "function URL on" in children[-1].text(), 30, "the function URL")
    auth = {"Authorization": f"Bearer {token}"}
    photos = [photo(1.0, seed) for seed in range(4)]
    http = requests.Session()
    http.headers.update(auth)
    print(
        f"{args.uploads} uploads in batches of {args.batch} (1 MP JPEGs), a token's client as the page does it; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start"
    )

    def burst(mode: str) -> dict[str, Any]:
        settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "issue_upload_ticket": mode}
        counts.reset()
        pending: set[str] = set()
        started = time.monotonic()
        for first in range(0, args.uploads, args.batch):
            names = [f"{mode}-{n}.jpg" for n in range(first, min(args.uploads, first + args.batch))]
            sizes = [len(photos[n % len(photos)]) for n in range(len(names))]
            where = http.post(
                f"{site}/api/upload-grants", json={"board": board.pk, "files": len(names), "bytes": sum(sizes)}
            ).json()
            for n, name in enumerate(names):
                body = {"board": board.pk, "filename": name, "content_type": "image/jpeg", "size": sizes[n]}
                if where["grant"]:
                    ticket = requests.post(where["ticket_url"], json={**body, "grant": where["grant"]}, timeout=30)
                    if ticket.status_code in (403, 429):  # the grant used up or expired: a new one, as clients do
                        rest = {"board": board.pk, "files": len(names) - n, "bytes": sum(sizes[n:])}
                        where = http.post(f"{site}/api/upload-grants", json=rest).json()
                        ticket = requests.post(where["ticket_url"], json={**body, "grant": where["grant"]}, timeout=30)
                else:
                    ticket = http.post(f"{site}/api/uploads", json=body, timeout=30)
                assert ticket.status_code == 201, ticket.text
                answer = ticket.json()
                data = photos[n % len(photos)]
                upload = answer["upload"]
                stored = requests.post(upload["url"], data=upload["fields"], files={"file": (name, data)}, timeout=60)
                assert stored.status_code in (200, 201, 204), stored.text
                if answer["image"]["complete_url"]:
                    done = http.post(f"{site}{answer['image']['complete_url']}", timeout=60)
                    assert done.status_code == 200, done.text
                pending.add(answer["image"]["id"])
            while len(pending) > args.batch:  # a page keeps polling while the next drop goes on
                poll(pending)
        while pending:
            if time.monotonic() - started > 600:
                raise SystemExit(f"{len(pending)} uploads still pending after 600 s")
            poll(pending)
        with counts.lock:
            return {
                "requests": dict(counts.requests),
                "queries": dict(counts.queries),
                "cpu": dict(counts.cpu),
                "seconds": time.monotonic() - started,
            }

    def poll(pending: set[str]) -> None:
        time.sleep(1.0)
        ids = list(pending)
        for start in range(0, len(ids), 100):
            answer = http.get(f"{site}/api/images", params={"ids": ",".join(ids[start : start + 100])}).json()
            for image in answer["images"]:
                if image["status"] in ("ready", "failed"):
                    assert image["status"] == "ready", image
                    pending.discard(image["id"])

    try:
        runs = {mode: burst(mode) for mode in ("inline", "lambda")}
    finally:
        stop.set()
        server.shutdown()
    n = args.uploads
    for mode, run in runs.items():
        req, queries, cpu = run["requests"], run["queries"], run["cpu"]
        kinds = ", ".join(f"{k} {req.get(k, 0) / n:.2f}" for k in KINDS if req.get(k))
        print(f"\n{mode}: {n} photos ready in {run['seconds']:.1f} s")
        print(f"  site requests per photo: {sum(req.values()) / n:.2f} ({kinds})")
        print(
            f"  site: {queries.get('site', 0) / n:.1f} queries and {1000 * cpu.get('site', 0) / n:.1f} ms CPU per photo"
        )
        print(
            f"  results job: {queries.get('results', 0) / n:.1f} queries and {1000 * cpu.get('results', 0) / n:.1f} ms "
            "CPU per photo (the events it applies)"
        )
    inline, lam = runs["inline"], runs["lambda"]
    site_cpu = lam["cpu"].get("site", 0) / max(inline["cpu"].get("site", 0), 1e-9)
    site_q = lam["queries"].get("site", 0) / max(inline["queries"].get("site", 1), 1)
    print(f"\nlambda / inline, the site's share: CPU {site_cpu:.2f}x, queries {site_q:.2f}x")
    per_photo = {k: v for k, v in lam["requests"].items() if k != "status"}
    batches = -(-n // args.batch)
    problems = []
    if lam["requests"].get("uploads") or lam["requests"].get("complete"):
        problems.append("tickets or completion reports reached the site in lambda mode")
    if sum(per_photo.values()) > batches:
        problems.append(f"{sum(per_photo.values())} requests other than status polls for {batches} batches")
    print("goal: no per-photo request work on the site in lambda mode: " + ("; ".join(problems) or "met"))
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
