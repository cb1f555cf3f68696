"""The record of every run (``offload/runs.py`` measures; this keeps): what the control room's numbers come from.

Runs in this process (inline, a Celery worker, ``manage.py runjobs``, the web stage's Lambda) are written directly
(``record``); runs on the functions' Lambda come back as results of type ``registry.JOB_RUN`` on the results queue
and are written by ``run_apply``. A record delivered twice is kept once (its ``run_id``). Writing never raises into
the job: a run whose record cannot be written is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import IntegrityError, transaction

from offload import registry

log = logging.getLogger(__name__)

_FIELDS = (
    "job",
    "runtime",
    "outcome",
    "error_class",
    "attempt",
    "duration_ms",
    "billed_ms",
    "init_ms",
    "peak_memory_mb",
    "memory_mb",
    "cold",
    "queue_wait_ms",
    "shadow",
    "unit",
)


def record(run: dict[str, Any]) -> None:
    """Keep one run's record (the ``sink`` of ``offload.runs.measure`` in a process with the database)."""
    try:
        run_apply(result=run)
    except Exception:
        log.warning("could not record a run of %s", run.get("job"), exc_info=True)


def run_apply(*, result: dict[str, Any]) -> bool:
    """The applier of ``registry.JOB_RUN`` results; False when the record was kept already. A malformed record
    raises ValueError (the results job reports it as a failed record)."""
    if result.get("job") not in registry.JOBS or result.get("runtime") not in registry.MODES:
        raise ValueError(f"not a run record: {str(result)[:200]}")
    values = {name: result.get(name) for name in _FIELDS}
    values["unit"] = str(values["unit"] or "")[:255]
    values["started_at"] = dt.datetime.fromtimestamp(float(result["started_at"]), dt.UTC)
    from boardsite.core.models import JobRun  # not at import: the door (and the Celery app) load before the apps

    try:
        # Its own savepoint: an inline run inside a request's transaction must not be broken by a duplicate.
        with transaction.atomic():
            JobRun.objects.create(run_id=str(result["run_id"]), **values)
    except IntegrityError:
        return False
    return True
