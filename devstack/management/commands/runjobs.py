"""Run web-side jobs (``side="web"`` in offload/registry.py) locally, as Zappa would run them on Lambda.

python manage.py runjobs                  # every web-side job
python manage.py runjobs JOB ...           # some of them
python manage.py runjobs --concurrency 8   # invocations at once (devstack.runner.DEFAULT_CONCURRENCY by default)
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from boardsite import aws
from boardsite.core.db import database_problem
from boardsite.core.jobs import mode
from devstack import runner
from offload import registry


class Command(BaseCommand):
    help = "Poll the queues of web-side jobs and run their handlers (the local stand-in for their Lambda triggers)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("jobs", nargs="*")
        runner.add_concurrency_argument(parser)

    def handle(self, *args: Any, jobs: list[str], concurrency: int, **options: Any) -> None:
        # By default every web-side job; a scheduled one only when its schedule is Lambda's (not Celery beat's).
        names = jobs or [j.name for j in runner.default_jobs("web", mode)]
        selected = []
        for name in names:
            try:
                job = registry.get(name)
            except KeyError as exc:
                raise CommandError(exc.args[0]) from None
            if job.side != "web":
                raise CommandError(f"{name} is an offload function; run it with `python -m devstack.runner {name}`")
            selected.append(job)
        if problem := database_problem():
            raise CommandError(problem)
        os.environ.update(aws.offload_environment())
        stop = threading.Event()
        runner.install_signal_handlers(stop)
        runner.run(selected, stop, concurrency=concurrency)
