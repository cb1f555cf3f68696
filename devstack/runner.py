"""The local function runner: Lambda's poll-based integration, on this machine.

Locally S3 delivers events to SQS (moto cannot invoke Lambda code without Docker). As Lambda's event source mappings
do, the runner long-polls each job's queue in a poller of its own, calls the job's handler with the real event,
deletes the message on success and leaves failures for redelivery (the queue's redrive policy moves a message that
keeps failing to its dead-letter queue). Up to ``--concurrency`` invocations of a function (a side's jobs share one)
run at once, fewer where the registry reserves fewer for it (``RESERVED_CONCURRENCY``) or a queue's trigger bounds it
(``max_concurrency``); with every slot busy the pollers stop receiving and messages wait in their queue, as they do
for a throttled Lambda.

    python -m devstack.runner [--concurrency N] [JOB ...]

Jobs whose handler needs Django (``side="web"``) run through ``manage.py runjobs``, which uses this same loop.

While the local AWS is unreachable (moto restarting, say) the pollers wait 1, 2, 4 … 30 s between attempts and the
runner logs one line per step, then one line when it answers again; a handler that fails is logged with its traceback
and its job is polled again after the same kind of back-off, one message at a time until one succeeds, so a poison
message cannot make a poller spin.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from devstack.backoff import BASE_SECONDS, CAP_SECONDS, Backoff
from offload import aws, config, registry, runs
from offload.events import sqs_event

log = logging.getLogger("devstack.runner")

BACKOFF_BASE, BACKOFF_CAP = BASE_SECONDS, CAP_SECONDS

# Every long poll lasts at most this long (each queue has its own poller: a longer poll would only delay a stop). It
# is also how long a killed runner's open polls can still take a message into the void at the local AWS (real SQS
# does the same): the supervisor's first restart delay (devstack.backoff.BASE_SECONDS) is not shorter, so a restarted
# runner never starts beside a dead poll.
LONG_POLL_SECONDS = 1
assert LONG_POLL_SECONDS <= BASE_SECONDS

DEFAULT_CONCURRENCY = 4  # invocations of a function at once, unless ``--concurrency`` says otherwise
SQS_MAX_BATCH = 10  # the most messages one ReceiveMessage returns

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
    # With the attributes Lambda's poller passes on (when it was sent, how often received): the run records read them.
    attributes = {k: v for k, v in message.get("Attributes", {}).items() if k in RECORD_ATTRIBUTES}
    return sqs_event([(message["MessageId"], message["Body"])], attributes=attributes or None)


RECORD_ATTRIBUTES = ("SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp")


class _RunRecords:
    """Offload jobs' run records on their way to the results queue, sent from one thread, as many per request as
    have queued up (``SendMessageBatch``, at most 10): recording never waits on the job's path, and under load one
    request carries several records instead of one each. ``flush`` (the runner stopping) sends what is left."""

    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._send, name="run-records", daemon=True)
                self._thread.start()
        self._queue.put(record)

    def _send(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 10:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                entries = [{"Id": str(n), "MessageBody": json.dumps(r)} for n, r in enumerate(batch)]
                url = aws.queue_url(registry.RESULTS.resolved())
                failed = aws.client("sqs").send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
                if failed:
                    log.warning("%d run records not sent: %s", len(failed), failed[0].get("Message", ""))
            except Exception:  # a record lost is a run not counted, never a job broken
                log.warning("could not send %d run records", len(batch), exc_info=True)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


RUN_RECORDS = _RunRecords()


def record_run(job: registry.Job) -> Callable[[dict[str, Any]], None]:
    """Where this runner's run records go, as a deployed function's would (offload/runs.py): an offload job's onto
    the results queue (batched: ``RUN_RECORDS``), a web job's (``manage.py runjobs``, Django is there) straight into
    the database."""
    if job.side == "web":
        from boardsite.core.runs import record  # only runjobs runs web jobs, with Django set up

        return record
    return RUN_RECORDS


def poll_once(
    job: registry.Job, handler: Callable[..., Any] | None = None, *, wait_seconds: int = 1, max_messages: int = 10
) -> int:
    """Receive one batch and run the handler on each message, one after another; returns how many succeeded.
    Raises when AWS cannot be reached, even from inside the handler: not the job's fault."""
    handler = handler or job.resolve()
    sqs, url, messages = _receive(job, wait_seconds=wait_seconds, max_messages=max_messages)
    handled = sum(_invoke(job, handler, sqs, url, message) for message in messages)
    RUN_RECORDS.flush()  # a caller that polls the results next finds every record of this batch there
    return handled


def _receive(job: registry.Job, *, wait_seconds: int, max_messages: int) -> tuple[Any, str, list[dict[str, Any]]]:
    """(client, queue URL, messages): at most ``max_messages``, hidden for the job's timeout while it runs."""
    sqs = aws.client("sqs")
    url = aws.queue_url(job_queue_name(job))
    reply = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max_messages,
        WaitTimeSeconds=wait_seconds,
        VisibilityTimeout=job.timeout,
        AttributeNames=list(RECORD_ATTRIBUTES),
    )
    return sqs, url, reply.get("Messages", [])


def _invoke(job: registry.Job, handler: Callable[..., Any], sqs: Any, url: str, message: dict[str, Any]) -> bool:
    """One invocation: True when the message was handled (and deleted), False when it is left for redelivery.
    Raises when AWS cannot be reached."""
    try:
        event = event_for(job, message)
    except (ValueError, KeyError, TypeError):
        # Not an event at all (anyone who may send to the queue can put anything there): as Lambda would, this
        # message fails alone and goes to the dead-letter queue after its tries; the runner and its others go on.
        log.error("%s: message %s is not an event it can take; left for redelivery", job.name, message["MessageId"])
        return False
    try:
        # Measured and recorded as a Lambda run (runtime, duration, memory, cold start, queue wait…).
        answer = runs.measure(job, "lambda", lambda: handler(event, None), event, record_run(job))
    except Exception as exc:
        if unreachable(exc):
            raise
        log.exception("%s failed on message %s; left for redelivery", job.name, message["MessageId"])
        return False
    if isinstance(answer, dict) and answer.get("batchItemFailures"):
        # Partial batch failure reporting (ReportBatchItemFailures on the deployed mapping): as Lambda's poller,
        # leave the reported message for redelivery (and, after maxReceiveCount, the dead-letter queue).
        log.warning("%s reported message %s failed; left for redelivery", job.name, message["MessageId"])
        return False
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return True


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


def _describe(job: registry.Job, concurrency: int) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        return f"{job.name} {job.trigger.describe()}"
    return f"{job.name} <- {job_queue_name(job)} (up to {queue_concurrency(job, concurrency)} at once)"


def function_concurrency(side: str, concurrency: int) -> int:
    """How many invocations of ``side``'s function (a side's jobs share one Lambda function) run at once:
    ``concurrency``, capped by the side's reserved concurrency (``registry.RESERVED_CONCURRENCY``)."""
    reserved = registry.reserved_concurrency(side)
    return concurrency if reserved is None else min(concurrency, reserved)


def queue_concurrency(job: registry.Job, concurrency: int) -> int:
    """How many invocations ``job``'s queue feeds at once: its function's, capped by the trigger's
    ``max_concurrency`` where Lambda polls that queue once deployed (``registry.max_concurrency``; an S3 trigger's
    local queue stands in for S3's own invoke, which only the function's concurrency bounds)."""
    bound = registry.max_concurrency(job)
    cap = function_concurrency(job.side, concurrency)
    return cap if bound is None else min(cap, bound)


class _Slots:
    """Invocation slots, counted as Lambda counts them: per function (``function_concurrency``) and per queue
    (``queue_concurrency``). A poller receives only while a slot is free, at most as many messages as are free, so
    with every slot busy its messages stay queued, visible, exactly as a throttled function leaves them. It does not
    hold a slot while it long-polls: the pollers of one function all listen at once, and a message on any of their
    queues starts at once when the function is idle."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._busy: dict[str, int] = {}
        self._changed = threading.Condition()

    def _free(self, limits: dict[str, int]) -> int:
        return min(cap - self._busy.get(key, 0) for key, cap in limits.items())

    def free(self, limits: dict[str, int]) -> int:
        """How many slots are free under every limit (key -> capacity), once one is at least; 0 once stopping."""
        with self._changed:
            while not self._stop.is_set():
                if (free := self._free(limits)) > 0:
                    return free
                self._changed.wait(0.1)  # ``stop`` is set without notifying us: look at it again soon
            return 0

    def take(self, limits: dict[str, int]) -> bool:
        """One slot under every limit, waiting for it; False once stopping."""
        with self._changed:
            while not self._stop.is_set():
                if self._free(limits) > 0:
                    for key in limits:
                        self._busy[key] = self._busy.get(key, 0) + 1
                    return True
                self._changed.wait(0.1)
            return False

    def give(self, limits: dict[str, int]) -> None:
        with self._changed:
            for key in limits:
                self._busy[key] -= 1
            self._changed.notify_all()


class _Outage:
    """The local AWS not answering: one back-off for every poller (they wait for the same AWS), one log line per
    step whichever poller met it, one line when it answers again."""

    def __init__(self, base: float, cap: float, clock: Callable[[], float]) -> None:
        self._backoff, self._clock = Backoff(base, cap), clock
        self._until: float | None = None
        self._lock = threading.Lock()

    def failed(self, cause: BaseException) -> None:
        with self._lock:
            if self._until is not None and self._clock() < self._until:
                return  # the step another poller (or invocation) already took for this outage
            delay = self._backoff.next()
            self._until = self._clock() + delay
        log.warning("AWS unavailable at %s (%s); trying again in %gs", _endpoint(), _short(cause), delay)

    def remaining(self) -> float:
        with self._lock:
            return 0.0 if self._until is None else max(0.0, self._until - self._clock())

    def answered(self) -> None:
        with self._lock:
            back, self._until = self._backoff.reset(), None
        if back:
            log.info("AWS at %s answers again; polling resumed", _endpoint())


class _Workers:
    """The threads invocations run in: as many as may run at once (the slots bound what the pollers hand over)."""

    def __init__(self, size: int, fail: Callable[[BaseException], None]) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._fail = fail
        self._threads = [threading.Thread(target=self._work, name=f"invocation-{n}", daemon=True) for n in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        self._tasks.put((task, args))

    def _work(self) -> None:
        try:
            while (item := self._tasks.get()) is not None:
                task, args = item
                try:
                    task(*args)
                except BaseException as exc:
                    self._fail(exc)
        finally:
            _close_django_connections()

    def close(self) -> None:
        """Let the invocations handed over finish, then end the threads."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


def _close_django_connections() -> None:
    # A web-side handler opens a database connection in the thread it runs in (Django keeps one per thread): close
    # it with the thread, or the session outlives the runner (and PostgreSQL cannot drop a test database under it).
    if (db := sys.modules.get("django.db")) is not None:
        db.connections.close_all()


class _Batch:
    """The messages of one receive; when the last has run, the job backs off if none succeeded (as the loop did
    with a whole batch before invocations ran side by side)."""

    def __init__(self, poller: _Poller, size: int) -> None:
        self._poller, self._left, self._done, self._failed = poller, size, 0, 0
        self._lock = threading.Lock()

    def finish(self, handled: bool | None) -> None:
        """``handled``: True (deleted), False (the job failed), None (AWS did not answer: not the job's fault)."""
        with self._lock:
            self._done += handled is True
            self._failed += handled is False
            self._left -= 1
            if self._left:
                return
        self._poller.settle(self._done, self._failed)


class _Poller:
    """One queue-fed job's poller, Lambda's event source mapping: while a slot is free it receives at most as many
    messages as are free, and hands each to a worker as one invocation, with a slot of its own. A job whose last
    batch failed is polled again after a back-off, one message at a time until one succeeds, so a poison message
    cannot make it spin."""

    def __init__(
        self,
        job: registry.Job,
        handler: Callable[..., Any],
        *,
        concurrency: int,
        slots: _Slots,
        outage: _Outage,
        workers: _Workers,
        stop: threading.Event,
        clock: Callable[[], float],
        wait: Callable[[float], object],
        wait_seconds: int,
        backoff: Backoff,
    ) -> None:
        self.job, self.handler, self.slots, self.outage, self.workers = job, handler, slots, outage, workers
        self.stop, self.clock, self.wait, self.wait_seconds = stop, clock, wait, wait_seconds
        self.function_key, self.queue_key = f"function:{job.side}", f"queue:{job_queue_name(job)}"
        self.function_cap = function_concurrency(job.side, concurrency)
        self.queue_cap = queue_concurrency(job, concurrency)
        self.failing = backoff  # its own handler failing
        self.next_poll = 0.0
        self.handled = self.failed = 0
        self._lock = threading.Lock()

    def limits(self) -> dict[str, int]:
        return {self.function_key: self.function_cap, self.queue_key: 1 if self.failing.failures else self.queue_cap}

    def pause(self) -> float:
        """How long to wait before the next receive: AWS away, or the job backing off."""
        return max(self.outage.remaining(), self.next_poll - self.clock())

    def run(self) -> None:
        while not self.stop.is_set():
            if (pause := self.pause()) > 0:
                self.wait(pause)
                continue
            limits = self.limits()
            free = self.slots.free(limits)
            if not free:
                return  # stopping
            if self.pause() > 0:  # an outage or a failure came while every slot was busy
                continue
            try:
                sqs, url, messages = _receive(
                    self.job, wait_seconds=self.wait_seconds, max_messages=min(free, SQS_MAX_BATCH)
                )
            except Exception as exc:
                if (cause := unreachable(exc)) is None:
                    raise
                self.outage.failed(cause)
                continue
            self.outage.answered()
            batch = _Batch(self, len(messages))
            for n, message in enumerate(messages):
                # Another poller of the function may have taken the slots seen free meanwhile: this one waits for the
                # next (its messages hidden for the job's timeout, far longer), already waiting when it frees.
                if not self.slots.take(limits):
                    _release(sqs, url, messages[n:])  # stopping: back to the queue at once
                    return
                self.workers.submit(self.invoke, sqs, url, message, batch, limits)

    def invoke(self, sqs: Any, url: str, message: dict[str, Any], batch: _Batch, limits: dict[str, int]) -> None:
        try:
            try:
                handled: bool | None = _invoke(self.job, self.handler, sqs, url, message)
            except Exception as exc:
                if (cause := unreachable(exc)) is None:
                    raise
                self.outage.failed(cause)
                handled = None  # left for redelivery; the job is not to blame
            with self._lock:
                self.handled += handled is True
                self.failed += handled is False
            batch.finish(handled)
        finally:
            self.slots.give(limits)  # after the outcome is known: the poller then sees any back-off it causes

    def settle(self, done: int, failed: int) -> None:
        with self._lock:
            if failed and not done:
                self.next_poll = self.clock() + self.failing.next()
            elif done:
                self.failing.reset()


def run(
    jobs: list[registry.Job],
    stop: threading.Event,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    wait_seconds: int = LONG_POLL_SECONDS,
    backoff_base: float = BACKOFF_BASE,
    backoff_cap: float = BACKOFF_CAP,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], object] | None = None,
) -> None:
    """Poll every queue-fed job's queue, each in its own thread, running up to ``concurrency`` invocations of each
    side's function at once (capped by its reserved concurrency, and per queue by the trigger's bound), and run the
    scheduled jobs on time (first at start), until ``stop`` is set. An error that is neither the job's nor AWS's
    being away sets ``stop`` and is raised here once everything has stopped (the supervisor starts a new runner).

    Each long poll lasts ``wait_seconds``, at most ``LONG_POLL_SECONDS``. ``clock`` (seconds, monotonic) and ``wait``
    (``stop.wait`` by default) measure and spend the back-off delays and the schedule's ticks: tests pass their own
    to play minutes of back-off at once."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if not 0 <= wait_seconds <= LONG_POLL_SECONDS:
        raise ValueError(f"wait_seconds must be 0-{LONG_POLL_SECONDS} (LONG_POLL_SECONDS), got {wait_seconds}")
    wait = wait or stop.wait
    handlers = {job.name: job.resolve() for job in jobs}
    polled = [j for j in jobs if not isinstance(j.trigger, registry.ScheduleTrigger)]
    scheduled = [j for j in jobs if isinstance(j.trigger, registry.ScheduleTrigger)]
    errors: list[BaseException] = []

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        stop.set()

    slots = _Slots(stop)
    outage = _Outage(backoff_base, backoff_cap, clock)  # one for all jobs: they wait for the same AWS
    workers = _Workers(sum(function_concurrency(side, concurrency) for side in {j.side for j in polled}), fail)
    pollers = [
        _Poller(
            job,
            handlers[job.name],
            concurrency=concurrency,
            slots=slots,
            outage=outage,
            workers=workers,
            stop=stop,
            clock=clock,
            wait=wait,
            wait_seconds=wait_seconds,
            backoff=Backoff(backoff_base, backoff_cap),
        )
        for job in polled
    ]
    log.info("local function runner: %s", ", ".join(_describe(j, concurrency) for j in jobs))
    threads = [threading.Thread(target=_guarded(p.run, fail), name=f"poll-{p.job.name}", daemon=True) for p in pollers]
    try:
        for thread in threads:
            thread.start()
        _run_schedule(scheduled, handlers, stop, slots=slots, concurrency=concurrency, clock=clock, wait=wait)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        workers.close()
        RUN_RECORDS.flush()
    if pollers:
        log.info("stopped: %s", ", ".join(f"{p.job.name} {p.handled} handled, {p.failed} failed" for p in pollers))
    if errors:
        raise errors[0]


def _release(sqs: Any, url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again now, not after their visibility timeout (best effort: a runner stops)."""
    for message in messages:
        try:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        except Exception as exc:
            log.warning("could not put message %s back on its queue (%s)", message["MessageId"], _short(exc))


def _guarded(body: Callable[[], None], fail: Callable[[BaseException], None]) -> Callable[[], None]:
    def guarded() -> None:
        try:
            body()
        except BaseException as exc:
            fail(exc)

    return guarded


def _run_schedule(
    scheduled: list[registry.Job],
    handlers: dict[str, Callable[..., Any]],
    stop: threading.Event,
    *,
    slots: _Slots,
    concurrency: int,
    clock: Callable[[], float],
    wait: Callable[[float], object],
) -> None:
    """Run each scheduled job when due, until ``stop``; each run takes a slot of its function, as on Lambda."""
    # Every scheduled job runs once at start, then on its schedule. For a rate() job that is its next period early;
    # for a cron() job it is outside its time, which is acceptable only because such jobs are idempotent per period
    # (the weekly digest sends one per user and week whatever the number of runs): a local stack is rarely up at
    # Monday 23:00, and this way starting it sends the digest of the last finished week.
    due = {j.name: 0.0 for j in scheduled}
    while not stop.is_set():
        for job in scheduled:
            now = _clock(job.trigger, clock)
            if now() < due[job.name]:
                continue
            limits = {f"function:{job.side}": function_concurrency(job.side, concurrency)}
            if not slots.take(limits):
                return  # stopping
            due[job.name] = next_run(job.trigger, now())
            again = _again(job.trigger, due[job.name])
            event = scheduled_event(job)
            try:
                call = functools.partial(handlers[job.name], event, None)
                runs.measure(job, "lambda", call, event, record_run(job))
            except Exception as exc:
                if (cause := unreachable(exc)) is None:
                    log.exception("%s failed; it runs again %s", job.name, again)
                else:
                    log.warning("%s could not reach AWS (%s); it runs again %s", job.name, _short(cause), again)
            finally:
                slots.give(limits)
        if scheduled:
            wait(1)
        else:
            stop.wait()


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


def add_concurrency_argument(parser: Any) -> None:
    """``--concurrency N``, for this runner and ``manage.py runjobs``."""

    def at_least_one(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
        return int(text)

    parser.add_argument(
        "--concurrency",
        type=at_least_one,
        default=DEFAULT_CONCURRENCY,
        help=f"invocations of the function at once (default {DEFAULT_CONCURRENCY}; the registry's reserved "
        "concurrency and each queue's max_concurrency cap it)",
    )


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
    others' schedule is Celery beat's). Requests are not polled: devstack/function_urls.py answers them."""
    return [
        job
        for job in registry.JOBS.values()
        if job.side == side
        and not isinstance(job.trigger, registry.HTTPTrigger)  # served by devstack/function_urls.py, not polled
        and (not isinstance(job.trigger, registry.ScheduleTrigger) or mode(job.name) == "lambda")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jobs", nargs="*", help="jobs to run (default: every offload-side job)")
    add_concurrency_argument(parser)
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
    run(jobs, stop, concurrency=args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
