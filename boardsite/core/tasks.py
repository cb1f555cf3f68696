"""The Celery task behind ``celery`` mode. Celery's worker finds it by autodiscovery (``boardsite.celery``); the site
imports it on the first job it enqueues (``boardsite.core.jobs.dispatch``), which is what loads Celery at all."""

from __future__ import annotations

from typing import Any

from boardsite.celery import app
from boardsite.core.jobs import run_job


# Bound to our app, not ``shared_task``: with no app imported at start-up, a shared task would enqueue through
# Celery's unconfigured default app.
@app.task(name="boardsite.run_job")
def run_job_task(job_name: str, event: dict[str, Any]) -> None:
    run_job(job_name, event)
