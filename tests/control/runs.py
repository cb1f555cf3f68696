"""Recorded runs for the control room's tests, made directly (what offload/runs.py would have recorded)."""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone

from boardsite.core.models import JobRun


def add_runs(
    runtime: str,
    n: int,
    *,
    failed: int = 0,
    ms: float = 100.0,
    at: dt.datetime | None = None,
    job: str = "process_image",
) -> None:
    at = at or timezone.now()
    JobRun.objects.bulk_create(
        JobRun(
            run_id=str(uuid.uuid4()),
            job=job,
            runtime=runtime,
            outcome="failed" if i < failed else "ok",
            error_class="InjectedFault" if i < failed else "",
            started_at=at - dt.timedelta(seconds=i),
            duration_ms=ms,
            billed_ms=int(ms),
            memory_mb=1024,
        )
        for i in range(n)
    )
