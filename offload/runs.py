"""Every run of every job, measured where it runs: the control room's numbers (boardsite/core/runs.py records them).

``measure`` wraps one call of a job's handler in any runtime: inline (the request), celery (the worker), lambda (the
deployed entry point, or locally the runners). It takes a few clock readings around the call and builds one record;
sending it (``sink``) happens after the handler returned, and a failure to send is logged, never raised: recording
never breaks a job. A run that raises is recorded as failed with its error class, and the exception goes on.

What a record holds, and where each figure comes from:

- ``duration_ms`` wall time of the call; ``billed_ms`` Lambda's billing of it (rounded up to the millisecond; cold
  starts also bill their init, ``init_ms``, since 2025-08-01);
- ``peak_memory_mb`` the process's high-water mark (``ru_maxrss``), what Lambda's "Max Memory Used" reports;
  ``memory_mb`` the memory the job is configured with (its registry entry);
- ``cold`` the first run of the job in this process (a new Lambda instance, a new worker);
- ``unit`` what it worked on (``unit_of``), which a dead letter is matched with;
- ``queue_wait_ms`` from the event's own time (S3's ``eventTime``, SQS's ``SentTimestamp``, EventBridge's ``time``)
  to the start of the run; ``attempt`` SQS's ``ApproximateReceiveCount`` (1 when the event says nothing).

Fault injection (``OFFLOAD_FAULTS``, read per run): ``job@runtime=fail:30,slow:500`` makes 30 % of that job's runs on
that runtime fail (``InjectedFault``) and each one 500 ms slower: how a test, or a person trying the control room,
sees the automatic rollback trip. Entries are separated by ``;``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from offload import metrics, registry
from offload.events import shadow_mark

log = logging.getLogger(__name__)

RUN_RESULT = registry.JOB_RUN

_warm: set[str] = set()
_warm_lock = threading.Lock()


def _boot_clock() -> float | None:
    """Seconds since the machine booted (the clock /proc counts a process's start in); None off Linux."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None


def _process_start() -> float | None:
    """When this process started, on ``_boot_clock`` (Linux /proc: field 22, in clock ticks); None elsewhere."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


_imported_at = _boot_clock()


def init_ms() -> float:
    """How long this process took to become ready: from its start to the end of its entry module's import
    (``READY_AT`` in offload/entry.py and boardsite/entry.py, which run the deployed functions), else to this module's
    import (the local runners import it at start). Not to the first run: a process may wait long for work (the local
    runner, a SnapStart or provisioned instance), and that wait is not initialisation."""
    ready = [
        at
        for at in (getattr(sys.modules.get(name), "READY_AT", None) for name in ("offload.entry", "boardsite.entry"))
        if at is not None
    ]
    start, end = _process_start(), min([*ready, _imported_at]) if _imported_at is not None else None
    if start is None or end is None:
        return 0.0
    return round(max(0.0, end - start) * 1000, 1)


class InjectedFault(RuntimeError):
    """A failure ``OFFLOAD_FAULTS`` asked for."""


def measure(
    job: registry.Job,
    runtime: str,
    call: Callable[[], Any],
    event: Any,
    sink: Callable[[dict[str, Any]], None],
    *,
    shadow: bool = False,
) -> Any:
    """Run ``call`` (one invocation of ``job``'s handler on ``event``), then hand its record to ``sink``. S3's test
    event (sent when a notification is set up) is no unit of work: run as it is, neither measured nor faulted."""
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent":
        return call()
    with _warm_lock:
        cold = job.name not in _warm
        _warm.add(job.name)
    started_at = time.time()
    start = time.perf_counter()
    outcome, error_class, answer = "ok", "", None
    try:
        _inject(job.name, runtime)
        answer = call()
        if isinstance(answer, dict) and answer.get("batchItemFailures"):
            outcome, error_class = "failed", "BatchItemFailures"
        return answer
    except BaseException as exc:
        outcome, error_class = "failed", type(exc).__name__
        raise
    finally:
        duration_ms = (time.perf_counter() - start) * 1000
        try:
            record = _record(job, runtime, event, started_at, duration_ms, outcome, error_class, cold, shadow)
            sink(record)
        except Exception:  # recording never breaks the job
            log.warning("could not record a run of %s", job.name, exc_info=True)


def _record(
    job: registry.Job,
    runtime: str,
    event: Any,
    started_at: float,
    duration_ms: float,
    outcome: str,
    error_class: str,
    cold: bool,
    shadow: bool,
) -> dict[str, Any]:
    event_time, attempt = event_timing(event)
    shadow = shadow or shadow_mark(event) is not None
    return {
        "type": RUN_RESULT,
        "run_id": str(uuid.uuid4()),
        "job": job.name,
        "runtime": runtime,
        "outcome": outcome,
        "error_class": error_class[:120],
        "attempt": attempt,
        "started_at": started_at,
        "duration_ms": round(duration_ms, 3),
        "billed_ms": max(1, math.ceil(duration_ms)),
        "peak_memory_mb": metrics.peak_rss_mb(),
        "memory_mb": job.memory,
        "cold": cold,
        "init_ms": init_ms() if cold and runtime == "lambda" else 0,
        "queue_wait_ms": None if event_time is None else round(max(0.0, started_at - event_time) * 1000, 1),
        "shadow": shadow,
        "unit": unit_of(event)[:255],
    }


def unit_of(event: Any) -> str:
    """What the run worked on, to find its runs from a dead letter: the object's key (without the runtime it was
    placed for) for an S3 event, else the first SQS message's id ("" when the event names neither)."""
    from offload.events import parse_s3_event

    if not isinstance(event, dict):
        return ""
    try:
        created = parse_s3_event(event)
    except (KeyError, TypeError, ValueError):
        created = []
    if created:
        return registry.unplaced(created[0].key)
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return str(records[0].get("messageId") or "")
    return ""


def event_timing(event: Any) -> tuple[float | None, int]:
    """(when the event was made, epoch seconds, if it says; the delivery attempt)."""
    if not isinstance(event, dict):
        return None, 1
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        first = records[0]
        attributes = first.get("attributes") or {}
        attempt = _int(attributes.get("ApproximateReceiveCount"), 1)
        if "SentTimestamp" in attributes:
            return _int(attributes["SentTimestamp"], 0) / 1000 or None, attempt
        if "eventTime" in first:
            return _iso(first["eventTime"]), attempt
        return None, attempt
    if "time" in event:
        return _iso(event["time"]), 1
    return None, 1


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _iso(value: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- fault injection -------------------------------------------------------------------------------------------


def faults(raw: str | None = None) -> dict[tuple[str, str], tuple[float, float]]:
    """``OFFLOAD_FAULTS`` as {(job, runtime): (share failing 0-1, extra seconds)}; malformed entries are ignored
    with a warning (a typo must not stop the site)."""
    raw = os.environ.get("OFFLOAD_FAULTS", "") if raw is None else raw
    parsed: dict[tuple[str, str], tuple[float, float]] = {}
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        target, _, spec = entry.partition("=")
        job, _, runtime = target.strip().partition("@")
        fail = slow = 0.0
        try:
            for part in filter(None, (p.strip() for p in spec.split(","))):
                name, _, value = part.partition(":")
                if name == "fail":
                    fail = float(value) / 100
                elif name == "slow":
                    slow = float(value) / 1000
                else:
                    raise ValueError(name)
        except ValueError:
            log.warning("ignoring OFFLOAD_FAULTS entry %r: use job@runtime=fail:PERCENT,slow:MS", entry)
            continue
        parsed[(job, runtime or "*")] = (min(max(fail, 0.0), 1.0), max(slow, 0.0))
    return parsed


def _inject(job: str, runtime: str) -> None:
    if not os.environ.get("OFFLOAD_FAULTS"):
        return
    table = faults()
    fail, slow = table.get((job, runtime)) or table.get((job, "*")) or (0.0, 0.0)
    if slow:
        time.sleep(slow)
    if fail and random.random() < fail:  # a share of runs, not a secret
        raise InjectedFault(f"OFFLOAD_FAULTS: {job} on {runtime}")
