"""The Celery app (the monolith's worker pool) and its one task. Jobs in ``celery`` mode run here; routing and beat
come from the registry (``boardsite.core.jobs``). The site sends tasks by name through this app
(``settings.OFFLOAD_CELERY_APP``), so nothing below imports it."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from boardsite.core.jobs import CELERY_TASK, beat_schedule, run_job

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boardsite.settings")

app = Celery("boardsite")
app.config_from_object("django.conf:settings", namespace="CELERY")


# Bound to our app, not ``shared_task``: with no app imported at start-up, a shared task would enqueue through
# Celery's unconfigured default app.
@app.task(name=CELERY_TASK)
def run_job_task(job_name: str, event: dict[str, Any]) -> None:
    run_job(job_name, event, "celery")


@app.on_after_configure.connect
def _schedule_from_registry(sender: Celery, **kwargs: object) -> None:
    sender.conf.beat_schedule = beat_schedule()
