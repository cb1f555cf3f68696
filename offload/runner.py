"""The local function runner: Lambda's poll-based integration, on this machine.

Locally S3 delivers events to SQS (moto cannot invoke Lambda code without Docker). The runner long-polls the job's
queue, calls the job's handler with the real event, deletes the message on success and leaves failures for
redelivery (the queue's redrive policy moves a message that keeps failing to its dead-letter queue).

    python -m offload.runner process_image

Jobs whose handler needs Django (``side="web"``) run through ``manage.py runjobs``, which uses this same loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from offload import aws, config, registry
from offload.events import sqs_event

log = logging.getLogger("offload.runner")


def job_queue_name(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        raise ValueError(f"{job.name} runs on a schedule, not from a queue")
    if isinstance(job.trigger, registry.S3Trigger):
        return config.queue_name(job.trigger.local_queue_setting)
    return config.queue_name(job.trigger.queue_setting)


def event_for(job: registry.Job, message: dict[str, Any]) -> dict[str, Any]:
    """The event Lambda would hand the job for this SQS message."""
    if isinstance(job.trigger, registry.S3Trigger):
        # As if S3 had invoked the function directly: the message body *is* the S3 event.
        return json.loads(message["Body"])
    return sqs_event([(message["MessageId"], message["Body"])])


def poll_once(
    job: registry.Job, handler: Callable[..., Any] | None = None, *, wait_seconds: int = 1, max_messages: int = 10
) -> int:
    """Receive one batch and run the handler on each message; returns how many succeeded."""
    handler = handler or job.resolve()
    sqs = aws.client("sqs")
    url = aws.queue_url(job_queue_name(job))
    reply = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds, VisibilityTimeout=job.timeout
    )
    done = 0
    for message in reply.get("Messages", []):
        try:
            handler(event_for(job, message), None)
        except Exception:
            log.exception("%s failed on message %s; left for redelivery", job.name, message["MessageId"])
            continue
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        done += 1
    return done


def scheduled_event(job: registry.Job) -> dict[str, Any]:
    """The event EventBridge hands a scheduled function."""
    return {
        "version": "0",
        "source": "aws.events",
        "detail-type": "Scheduled Event",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resources": [f"arn:aws:events:local:000000000000:rule/boardsite-{job.name}"],
        "detail": {},
    }


def _describe(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        return f"{job.name} every {job.trigger.every_seconds}s"
    return f"{job.name} <- {job_queue_name(job)}"


def run(jobs: list[registry.Job], stop: threading.Event, *, wait_seconds: int = 5) -> None:
    """Poll every job's queue, and run scheduled jobs on time (first at start), until ``stop`` is set."""
    handlers = {job.name: job.resolve() for job in jobs}
    polled = [j for j in jobs if not isinstance(j.trigger, registry.ScheduleTrigger)]
    scheduled = [j for j in jobs if isinstance(j.trigger, registry.ScheduleTrigger)]
    due = {j.name: 0.0 for j in scheduled}
    log.info("local function runner: %s", ", ".join(_describe(j) for j in jobs))
    while not stop.is_set():
        for job in scheduled:
            if time.monotonic() >= due[job.name]:
                due[job.name] = time.monotonic() + job.trigger.every_seconds
                try:
                    handlers[job.name](scheduled_event(job), None)
                except Exception:
                    log.exception("%s failed; it runs again in %ss", job.name, job.trigger.every_seconds)
        for job in polled:
            try:
                poll_once(job, handlers[job.name], wait_seconds=wait_seconds if len(polled) == 1 else 1)
            except Exception:  # the local AWS restarting, say: keep going
                log.exception("polling %s failed", job.name)
                stop.wait(1)
        if not polled:
            stop.wait(1)


def install_signal_handlers(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="*", help="jobs to run (default: every offload-side job)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    names = args.jobs or [j.name for j in registry.JOBS.values() if j.side == "offload"]
    jobs = []
    for name in names:
        try:
            job = registry.get(name)
        except KeyError as exc:
            parser.error(str(exc.args[0]))
        if job.side != "offload":
            parser.error(f"{name} needs Django; run it with `python manage.py runjobs {name}`")
        jobs.append(job)
    stop = threading.Event()
    install_signal_handlers(stop)
    run(jobs, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
