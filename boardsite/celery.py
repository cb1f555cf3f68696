"""The Celery app (the monolith's worker pool). Jobs in ``celery`` mode run here; routing comes from the registry."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boardsite.settings")

app = Celery("boardsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["boardsite.core"])


@app.on_after_configure.connect
def _schedule_from_registry(sender: Celery, **kwargs: object) -> None:
    from boardsite.core.jobs import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
