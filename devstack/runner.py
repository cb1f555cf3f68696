"""The local function runner: Lambda's poll-based integration, on this machine.

Locally S3 delivers events to SQS (moto cannot invoke Lambda code without Docker). The runner long-polls the job's
queue, calls the job's handler with the real event, deletes the message on success and leaves failures for
redelivery (the queue's redrive policy moves a message that keeps failing to its dead-letter queue).

    python -m devstack.runner [JOB ...]

Jobs whose handler needs Django (``side="web"``) run through ``manage.py runjobs``, which uses this same loop.

While the local AWS is unreachable (moto restarting, say) the loop waits 1, 2, 4 … 30 s between attempts and logs one
line per step, then one line when it answers again; a handler that fails is logged with its traceback and its job is
polled again after the same kind of back-off, so a poison message cannot make the loop spin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from devstack.backoff import BASE_SECONDS, CAP_SECONDS, Backoff
from offload import aws, config, registry
from offload.events import sqs_event

log = logging.getLogger("devstack.runner")

BACKOFF_BASE, BACKOFF_CAP = BASE_SECONDS, CAP_SECONDS

# A runner that polls several queues long-polls each for this long. It is also how long a killed runner's open poll
# can still take a message into the void at the local AWS (real SQS does the same): the supervisor's first restart
# delay (devstack.backoff.BASE_SECONDS) is not shorter, so a restarted runner never starts beside a dead poll.
LONG_POLL_SECONDS = 1
assert LONG_POLL_SECONDS <= BASE_SECONDS

# What "the local AWS is not there" looks like: refused or timed-out connections, and (just after moto restarted)
# queues that provisioning has not created again yet.
_MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def unreachable(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s chain (itself or what it was raised from) saying AWS could not be reached, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BotoConnectionError | HTTPClientError):
            return current
        if isinstance(current, ClientError) and current.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
            return current
        current = current.__cause__ or current.__context__
    return None


def job_queue_name(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        raise ValueError(f"{job.name} runs on a schedule, not from a queue")
    assert job.queue is not None
    return job.queue.resolved()


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
    return _poll(job, handler or job.resolve(), wait_seconds=wait_seconds, max_messages=max_messages)[0]


def _poll(job: registry.Job, handler: Callable[..., Any], *, wait_seconds: int, max_messages: int) -> tuple[int, int]:
    """(succeeded, failed). Raises when AWS cannot be reached, even from inside the handler: not the job's fault."""
    sqs = aws.client("sqs")
    url = aws.queue_url(job_queue_name(job))
    reply = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds, VisibilityTimeout=job.timeout
    )
    done = failed = 0
    for message in reply.get("Messages", []):
        try:
            answer = handler(event_for(job, message), None)
        except Exception as exc:
            if unreachable(exc):
                raise
            log.exception("%s failed on message %s; left for redelivery", job.name, message["MessageId"])
            failed += 1
            continue
        if isinstance(answer, dict) and answer.get("batchItemFailures"):
            # Partial batch failure reporting (ReportBatchItemFailures on the deployed mapping): as Lambda's poller,
            # leave the reported message for redelivery (and, after maxReceiveCount, the dead-letter queue).
            log.warning("%s reported message %s failed; left for redelivery", job.name, message["MessageId"])
            failed += 1
            continue
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        done += 1
    return done, failed


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


def next_run(trigger: registry.ScheduleTrigger, now: float) -> float:
    """When a scheduled job that ran at ``now`` runs next, on the same clock (``_clock``: epoch seconds for cron).

    rate(): ``every_seconds`` later. cron(): the schedule's next time strictly after ``now`` in UTC, as EventBridge
    would fire it, so a job run exactly at its time does not run again on the next loop.
    """
    cron = trigger.cron
    if cron is None:
        return now + trigger.every_seconds
    return cron.next_after(dt.datetime.fromtimestamp(now, dt.UTC)).timestamp()


def _describe(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        return f"{job.name} {job.trigger.describe()}"
    return f"{job.name} <- {job_queue_name(job)}"


def run(
    jobs: list[registry.Job],
    stop: threading.Event,
    *,
    wait_seconds: int = 5,
    backoff_base: float = BACKOFF_BASE,
    backoff_cap: float = BACKOFF_CAP,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], object] | None = None,
) -> None:
    """Poll every job's queue, and run scheduled jobs on time (first at start), until ``stop`` is set.

    ``clock`` (seconds, monotonic) and ``wait`` (``stop.wait`` by default) measure and spend the back-off delays and
    rate() periods: tests pass their own to play minutes of back-off at once."""
    wait = wait or stop.wait
    handlers = {job.name: job.resolve() for job in jobs}
    polled = [j for j in jobs if not isinstance(j.trigger, registry.ScheduleTrigger)]
    scheduled = [j for j in jobs if isinstance(j.trigger, registry.ScheduleTrigger)]
    # Every scheduled job runs once at start, then on its schedule. For a rate() job that is its next period early;
    # for a cron() job it is outside its time, which is acceptable only because such jobs are idempotent per period
    # (the weekly digest sends one per user and week whatever the number of runs): a local stack is rarely up at
    # Monday 23:00, and this way starting it sends the digest of the last finished week.
    due = {j.name: 0.0 for j in scheduled}
    next_poll = {j.name: 0.0 for j in polled}
    outage = Backoff(backoff_base, backoff_cap)  # one for all jobs: they wait for the same AWS
    failing = {j.name: Backoff(backoff_base, backoff_cap) for j in polled}  # a job's own handler failing
    log.info("local function runner: %s", ", ".join(_describe(j) for j in jobs))
    while not stop.is_set():
        for job in scheduled:
            now = _clock(job.trigger, clock)
            if now() >= due[job.name]:
                due[job.name] = next_run(job.trigger, now())
                again = _again(job.trigger, due[job.name])
                try:
                    handlers[job.name](scheduled_event(job), None)
                except Exception as exc:
                    if (cause := unreachable(exc)) is None:
                        log.exception("%s failed; it runs again %s", job.name, again)
                    else:
                        log.warning("%s could not reach AWS (%s); it runs again %s", job.name, _short(cause), again)
        for job in polled:
            if stop.is_set() or clock() < next_poll[job.name]:
                continue
            try:
                done, failed = _poll(
                    job,
                    handlers[job.name],
                    wait_seconds=wait_seconds if len(polled) == 1 else LONG_POLL_SECONDS,
                    max_messages=10,
                )
            except Exception as exc:
                if (cause := unreachable(exc)) is None:
                    raise
                delay = outage.next()
                log.warning("AWS unavailable at %s (%s); trying again in %gs", _endpoint(), _short(cause), delay)
                wait(delay)
                break
            if outage.reset():
                log.info("AWS at %s answers again; polling resumed", _endpoint())
            if failed and not done:
                next_poll[job.name] = clock() + failing[job.name].next()
            elif done:
                failing[job.name].reset()
        if not polled:
            wait(1)
        elif (idle := min(next_poll.values()) - clock()) > 0:
            wait(min(idle, 1.0))  # every job is backing off: wait, do not spin


def _clock(trigger: registry.ScheduleTrigger, monotonic: Callable[[], float] = time.monotonic) -> Callable[[], float]:
    # A cron time is a time of day: wall clock. A rate() period is measured on the monotonic clock (steps of the wall
    # clock must not make it run twice or never).
    return monotonic if trigger.cron is None else time.time


def _again(trigger: registry.ScheduleTrigger, due: float) -> str:
    if trigger.cron is None:
        return f"in {trigger.every_seconds}s"
    return "at " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(due))


def _endpoint() -> str:
    return config.load().endpoint_url or "AWS"


def _short(exc: BaseException) -> str:
    """The first line of an exception, for a one-line log."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def install_signal_handlers(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def env_mode(name: str) -> str:
    """A job's mode as ``OFFLOAD_MODES`` in this process's environment says (else its default): what the runner,
    which has no Django settings, goes by."""
    return registry.parse_modes(os.environ.get("OFFLOAD_MODES", "")).get(name) or registry.get(name).default_mode


def default_jobs(side: str, mode: Callable[[str], str] = env_mode) -> list[registry.Job]:
    """What a runner of ``side`` runs unless told otherwise (this one: offload; ``manage.py runjobs``: web), the jobs
    Lambda would run: every job with a queue or S3 trigger (work reaches its queue only when routed to Lambda, and a
    route can change at run time: boardsite/core/routing.py), and the scheduled jobs in lambda mode (``mode``; the
    others' schedule is Celery beat's)."""
    return [
        job
        for job in registry.JOBS.values()
        if job.side == side and (not isinstance(job.trigger, registry.ScheduleTrigger) or mode(job.name) == "lambda")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="*", help="jobs to run (default: every offload-side job)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    names = args.jobs or [j.name for j in default_jobs("offload")]
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
