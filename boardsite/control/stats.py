"""Numbers per job and runtime from the recorded runs (``core.JobRun``): what the control page, the watch and the
cost projection read."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import timezone

from boardsite.control.costs import PerRun
from boardsite.core.models import JobRun
from offload import registry

SAMPLE = 20_000  # the newest runs per job and runtime a percentile is computed over


@dataclass(frozen=True)
class RuntimeStats:
    runtime: str
    runs: int = 0
    failures: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    wait_p50_ms: float | None = None
    wait_p95_ms: float | None = None
    peak_memory_mb: float | None = None
    mean_billed_ms: float | None = None
    mean_duration_ms: float | None = None
    cold_share: float = 0.0
    mean_init_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float:
        """Failed runs in percent (0 when there were none)."""
        return 100 * self.failures / self.runs if self.runs else 0.0


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` 0-100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def runs_of(job: str, since: dt.datetime, *, shadow: bool = False) -> QuerySet[JobRun]:
    return JobRun.objects.filter(job=job, started_at__gte=since, shadow=shadow)


def runtime_stats(job: str, runtime: str, since: dt.datetime, *, shadow: bool = False) -> RuntimeStats:
    rows = list(
        runs_of(job, since, shadow=shadow)
        .filter(runtime=runtime)
        .order_by("-started_at")
        .values_list(
            "outcome", "error_class", "duration_ms", "queue_wait_ms", "peak_memory_mb", "billed_ms", "cold", "init_ms"
        )[:SAMPLE]
    )
    if not rows:
        return RuntimeStats(runtime)
    # Latency of the runs that did the work: a run failing at once would make a crashing runtime look fast.
    durations = [r[2] for r in rows if r[0] == "ok"]
    waits = [r[3] for r in rows if r[3] is not None]
    errors: dict[str, int] = {}
    for outcome, error_class, *_ in rows:
        if outcome != "ok":
            errors[error_class or "unknown"] = errors.get(error_class or "unknown", 0) + 1
    colds = [r for r in rows if r[6]]
    memories = [r[4] for r in rows if r[4] is not None]
    return RuntimeStats(
        runtime=runtime,
        runs=len(rows),
        failures=sum(errors.values()),
        p50_ms=percentile(durations, 50),
        p95_ms=percentile(durations, 95),
        wait_p50_ms=percentile(waits, 50),
        wait_p95_ms=percentile(waits, 95),
        peak_memory_mb=max(memories) if memories else None,
        mean_billed_ms=sum(r[5] for r in rows) / len(rows),
        mean_duration_ms=sum(r[2] for r in rows) / len(rows),
        cold_share=len(colds) / len(rows),
        mean_init_ms=sum(r[7] for r in colds) / len(colds) if colds else 0.0,
        errors=errors,
    )


def job_stats(job: str, since: dt.datetime, *, shadow: bool = False) -> dict[str, RuntimeStats]:
    """Each runtime's numbers since ``since`` (every runtime, ran or not)."""
    return {runtime: runtime_stats(job, runtime, since, shadow=shadow) for runtime in registry.MODES}


@dataclass(frozen=True)
class Point:
    start: dt.datetime
    runs: int
    failure_rate: float
    p95_ms: float | None
    wait_p95_ms: float | None


def series(job: str, runtime: str, since: dt.datetime, until: dt.datetime, buckets: int = 24) -> list[Point]:
    """The runs of ``job`` on ``runtime`` in ``buckets`` equal slices of [since, until): what the charts draw."""
    width = (until - since) / buckets
    rows = list(
        runs_of(job, since)
        .filter(runtime=runtime, started_at__lt=until)
        .values_list("started_at", "outcome", "duration_ms", "queue_wait_ms")
    )
    slices: list[list[tuple]] = [[] for _ in range(buckets)]
    for row in rows:
        index = min(buckets - 1, int((row[0] - since) / width))
        slices[index].append(row)
    points = []
    for i, part in enumerate(slices):
        failed = sum(1 for r in part if r[1] != "ok")
        done = [r for r in part if r[1] == "ok"]
        points.append(
            Point(
                start=since + i * width,
                runs=len(part),
                failure_rate=100 * failed / len(part) if part else 0.0,
                p95_ms=percentile([r[2] for r in done], 95),
                wait_p95_ms=percentile([r[3] for r in part if r[3] is not None], 95),
            )
        )
    return points


def monthly_volume(job: str, *, days: int = 7, now: dt.datetime | None = None) -> int:
    """Runs a month at the pace of the last ``days`` days (shadow runs left out: they are not the job's work)."""
    now = now or timezone.now()
    count = runs_of(job, now - dt.timedelta(days=days)).count()
    return round(count * 30.4 / days)


def per_run(job: str, since: dt.datetime) -> PerRun | None:
    """What one run uses, from the runs since ``since``: Lambda's own when it ran there (billed time, cold starts),
    else the others' durations as an estimate. None without any run."""
    memory = registry.get(job).memory
    for runtime in ("lambda", "celery", "inline"):
        s = runtime_stats(job, runtime, since)
        if s.runs:
            return PerRun(
                billed_ms=s.mean_billed_ms or 0,
                duration_ms=s.mean_duration_ms or 0,
                memory_mb=memory,
                cold_share=s.cold_share if runtime == "lambda" else 0.0,
                init_ms=s.mean_init_ms if runtime == "lambda" else 0.0,
            )
    return None
