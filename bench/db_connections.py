"""How should the web Lambda hold its PostgreSQL connection? Measured, not assumed (settings: CONN_MAX_AGE).

Each "request" runs what Django runs around a view: ``close_if_unusable_or_obsolete()`` at the start and the end
(the ``request_started``/``request_finished`` handlers) and one small query. Compared in one run:

  per-request   CONN_MAX_AGE=0: connect (TCP, startup, auth) and disconnect on every request
  persistent    CONN_MAX_AGE=300: one connection per process, reused
  persistent+hc the same with CONN_HEALTH_CHECKS (a ping before the first query of each request)

Then N concurrent "instances" (threads, each with its own connection as each Lambda instance has) make requests with
idle gaps, while a monitor samples ``pg_stat_activity``: how many server connections they hold at peak and once idle.

    python bench/db_connections.py [--url postgres://postgres@127.0.0.1:5432/postgres] [--check]

The local server has no TLS and trusts 127.0.0.1, so the connect cost here is a floor: RDS adds a TLS handshake and
SCRAM authentication (several round trips) to every connect-per-request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import dj_database_url
import django
from django.conf import settings

MODES = {"per-request": (0, False), "persistent": (300, False), "persistent+hc": (300, True)}


def database(url: str, max_age: int, health_checks: bool, tag: str) -> dict[str, Any]:
    db = dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=health_checks)
    db.setdefault("OPTIONS", {})["application_name"] = tag
    return db


def handler_for(url: str, mode: str, tag: str) -> Any:
    from django.db.utils import ConnectionHandler

    max_age, health_checks = MODES[mode]
    return ConnectionHandler({"default": database(url, max_age, health_checks, tag)})


def request(connection: Any) -> None:
    """What one Django request does with the database: the signal handlers around one query."""
    connection.close_if_unusable_or_obsolete()  # request_started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relkind = %s", ["r"])
        cursor.fetchone()
    connection.close_if_unusable_or_obsolete()  # request_finished


def per_request_costs(url: str, n: int, rounds: int = 10) -> dict[str, tuple[float, float]]:
    """Per mode: (CPU µs, wall µs) per request, medians of ``n``, taken in interleaved rounds (a noisy machine)."""
    connections = {mode: handler_for(url, mode, f"bench-{mode}")["default"] for mode in MODES}
    samples: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in MODES}
    for connection in connections.values():
        request(connection)  # warm: imports, first connect
    for _ in range(rounds):
        for mode, connection in connections.items():
            cpu, wall = samples[mode]
            for _ in range(max(n // rounds, 1)):
                c0, w0 = time.process_time(), time.perf_counter()
                request(connection)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
    for connection in connections.values():
        connection.close()
    return {mode: (statistics.median(c) * 1e6, statistics.median(w) * 1e6) for mode, (c, w) in samples.items()}


def server_connections(monitor: Any, tag: str) -> int:
    with monitor.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [tag])
        return cursor.fetchone()[0]


def concurrent(url: str, mode: str, instances: int, requests: int, gap: float) -> tuple[int, int]:
    """(peak, idle) server connections held by ``instances`` concurrent instances in ``mode``."""
    tag = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    handler = handler_for(url, mode, tag)  # connections are per thread: one per instance
    monitors = handler_for(url, "persistent", "bench-monitor")  # one connection per thread that samples
    done = threading.Event()
    peak = [0]

    def sample() -> None:
        monitor = monitors["default"]
        while not done.is_set():
            peak[0] = max(peak[0], server_connections(monitor, tag))
            time.sleep(0.005)
        monitor.close()

    def instance() -> None:
        connection = handler["default"]
        for _ in range(requests):
            request(connection)
            time.sleep(gap)  # the instance waits for its next event; a persistent connection stays open

    threads = [threading.Thread(target=instance) for _ in range(instances)]
    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    sampler.join()
    time.sleep(0.05)
    idle = server_connections(monitors["default"], tag)  # instances alive but idle (a warm Lambda between events)
    monitors["default"].close()
    return peak[0], idle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--requests", type=int, default=1000, help="requests per mode for the per-request cost")
    parser.add_argument("--instances", type=int, default=20, help="concurrent instances")
    parser.add_argument("--check", action="store_true", help="exit 1 unless persistent is clearly cheaper")
    args = parser.parse_args(argv)
    settings.configure(DATABASES={}, USE_TZ=True)
    django.setup()

    print(f"per request (median of {args.requests}; one query, Django's request signal handlers):")
    costs = per_request_costs(args.url, args.requests)
    for mode in MODES:
        print(f"  {mode:14s} CPU {costs[mode][0]:8.0f} µs   wall {costs[mode][1]:8.0f} µs")
    base_cpu, base_wall = costs["persistent"]
    print(
        f"  connect-per-request / persistent: CPU x{costs['per-request'][0] / base_cpu:.1f}, "
        f"wall x{costs['per-request'][1] / base_wall:.1f}; health check adds "
        f"{costs['persistent+hc'][0] - base_cpu:.0f} µs CPU, {costs['persistent+hc'][1] - base_wall:.0f} µs wall"
    )

    print(f"\n{args.instances} concurrent instances, 20 requests each with 20 ms idle gaps: server connections held")
    held = {}
    for mode in ("per-request", "persistent"):
        held[mode] = concurrent(args.url, mode, args.instances, 20, 0.02)
        print(f"  {mode:14s} peak {held[mode][0]:3d}   once idle {held[mode][1]:3d}")

    if args.check:
        problems = []
        if not costs["per-request"][0] > 2 * base_cpu:
            problems.append("connect-per-request is not clearly dearer in CPU than a kept connection")
        if held["persistent"][1] != args.instances or held["per-request"][1] != 0:
            problems.append(f"unexpected idle connection counts: {held}")
        for problem in problems:
            print("CHECK FAILED:", problem, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
