"""Where each job runs: the per-job switch (``settings.OFFLOAD_MODES``) and the dispatch that follows it.

    inline  the job runs in the caller's process, now
    celery  the site enqueues it; a Celery worker runs it (routed to a queue named after the job)
    lambda  the site does nothing: the AWS event (S3, SQS...) triggers the function

The handler is the same in every mode: the one named in ``offload/registry.py``. The Celery task is in
``boardsite.core.tasks``, imported only when a job is enqueued, so a site without a job in celery mode never loads
Celery.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from django.conf import settings

from boardsite import aws
from offload import registry
from offload.events import sqs_event

log = logging.getLogger(__name__)


def mode(job_name: str) -> str:
    job = registry.get(job_name)  # unknown names fail loudly
    # A scheduled job has no caller to run it inline: unless told otherwise, its schedule (Lambda) runs it.
    default = "lambda" if isinstance(job.trigger, registry.ScheduleTrigger) else "inline"
    return settings.OFFLOAD_MODES.get(job_name, default)


def celery_schedule(trigger: registry.ScheduleTrigger) -> Any:
    """Beat's schedule for a registry trigger: seconds for rate(), a crontab (in UTC) for cron()."""
    cron = trigger.cron
    if cron is None:
        return float(trigger.every_seconds)
    from celery.schedules import crontab  # Celery loads only when a job runs in celery mode

    # EventBridge reads cron() in UTC; beat reads a crontab in the Celery app's timezone, UTC here (enable_utc, no
    # CELERY_TIMEZONE): tests/test_digest.py checks that the crontab fires at 23:00 UTC.
    return crontab(**cron.celery_fields())


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery beat entries for the scheduled jobs in ``celery`` mode (read from the registry)."""
    return {
        job.name: {
            "task": "boardsite.run_job",
            "schedule": celery_schedule(job.trigger),
            "args": [job.name, {"source": "celery.beat", "detail-type": "Scheduled Event", "detail": {}}],
            "options": {"queue": celery_queue(job.name)},
        }
        for job in registry.JOBS.values()
        if isinstance(job.trigger, registry.ScheduleTrigger) and mode(job.name) == "celery"
    }


def celery_queue(job_name: str) -> str:
    return f"jobs.{job_name}"


def celery_queues() -> list[str]:
    """Every queue a worker must consume: read from the registry, so routing cannot drift from the jobs."""
    return [celery_queue(name) for name in registry.JOBS]


def celery_worker_command(python: str) -> list[str]:
    """A worker that consumes every job's queue (``-P solo``: one job at a time, as a Lambda does), with an
    embedded beat when a scheduled job runs under Celery."""
    queues = ",".join(celery_queues())
    cmd = [python, "-m", "celery", "-A", "boardsite", "worker", "-P", "solo", "-Q", queues, "--loglevel", "INFO"]
    if beat_schedule():
        cmd += ["-B", "--schedule", str(settings.LOCAL_DIR / "celerybeat-schedule")]
    return cmd


def dispatch(job_name: str, event: dict[str, Any]) -> None:
    """Run ``job_name`` on ``event`` wherever its mode says. In ``lambda`` mode the trigger is AWS's."""
    where = mode(job_name)
    if where == "inline":
        run_job(job_name, event)
    elif where == "celery":
        from boardsite.core.tasks import run_job_task  # Celery loads here, only when a job runs in celery mode

        run_job_task.apply_async(args=[job_name, event], queue=celery_queue(job_name))
    else:
        log.debug("%s runs as a Lambda function; its AWS trigger starts it", job_name)


def redeliver(job_name: str, event: dict[str, Any]) -> None:
    """Start a job again with an event its trigger lost (the sweep does this).

    inline/celery: as ``dispatch``. lambda: deliver the event as AWS would: an asynchronous invoke of the deployed
    function (``LAMBDA_FUNCTIONS``), or locally the uploads queue that S3 notifies and the local runner polls.
    """
    if mode(job_name) != "lambda":
        dispatch(job_name, event)
        return
    job = registry.get(job_name)
    if not isinstance(job.trigger, registry.S3Trigger):
        raise ValueError(f"{job_name} is not triggered by S3; nothing to redeliver")
    function = settings.LAMBDA_FUNCTIONS.get(job_name)
    if function:
        aws.client("lambda").invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
    else:
        queue = aws.client("sqs").get_queue_url(QueueName=settings.BOARDSITE_UPLOADS_QUEUE)["QueueUrl"]
        aws.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(event))


def report_result(result: dict[str, Any]) -> None:
    """Where an offload function run by the site (inline or Celery) sends its result event."""
    if mode("apply_image_result") == "lambda":
        # The results queue, as a Lambda-run function would: the apply function consumes it.
        queue = aws.client("sqs").get_queue_url(QueueName=settings.BOARDSITE_RESULTS_QUEUE)["QueueUrl"]
        aws.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(result))
    else:
        dispatch("apply_image_result", sqs_event([(str(uuid.uuid4()), json.dumps(result))]))


def run_job(job_name: str, event: dict[str, Any]) -> Any:
    """Run a job's handler in this process with the event it would get from AWS."""
    job = registry.get(job_name)
    handler = job.resolve()
    if job.side == "offload":
        # The function reads its configuration from the environment, as on Lambda: give it the site's.
        os.environ.update(aws.offload_environment())
        return handler(event, None, report=report_result)
    return handler(event, None)
