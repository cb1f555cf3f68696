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
from collections.abc import Callable
from typing import Any

from offload import aws, registry
from offload.events import sqs_event

log = logging.getLogger("offload.runner")


def job_queue_name(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.S3Trigger):
        setting, default = job.trigger.local_queue_setting, "boardsite-uploads"
    else:
        setting, default = job.trigger.queue_setting, "boardsite-image-results"
    return os.environ.get(setting, default)


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


def run(jobs: list[registry.Job], stop: threading.Event, *, wait_seconds: int = 5) -> None:
    """Poll every job's queue until ``stop`` is set."""
    handlers = {job.name: job.resolve() for job in jobs}
    log.info("local function runner: %s", ", ".join(f"{j.name} <- {job_queue_name(j)}" for j in jobs))
    while not stop.is_set():
        for job in jobs:
            try:
                poll_once(job, handlers[job.name], wait_seconds=wait_seconds if len(jobs) == 1 else 1)
            except Exception:  # the local AWS restarting, say: keep going
                log.exception("polling %s failed", job.name)
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
