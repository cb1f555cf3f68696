"""The local function runner (``python -m devstack.runner``, ``manage.py runjobs``): it deletes what it handled, leaves
failures for redelivery without spinning, and waits out an unreachable AWS with one log line per back-off step."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import socket
import threading

import pytest
from botocore.exceptions import EndpointConnectionError
from moto.server import ThreadedMotoServer

from devstack import provision, runner
from offload import aws, registry
from tests.helpers import wait_for

CALLS: list[dict] = []


def record(event: dict, context: object = None) -> None:
    CALLS.append(event)


def always_fails(event: dict, context: object = None) -> None:
    CALLS.append(event)
    raise ValueError("this job cannot handle that message")


def schedule_cannot_reach_aws(event: dict, context: object = None) -> None:
    CALLS.append(event)
    raise RuntimeError("sweep failed") from EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queue_counts(sqs, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def start(
    jobs: list[registry.Job], stop: threading.Event | None = None, **kwargs
) -> tuple[threading.Event, threading.Thread]:
    stop = stop or threading.Event()
    thread = threading.Thread(target=runner.run, args=(jobs, stop), kwargs=kwargs, daemon=True)
    thread.start()
    return stop, thread


class PlayedClock:
    """The runner's clock and wait for a test: time passes only when the runner waits, and at once. At ``stop_at``
    it stops the runner; at ``pause_at`` its wait holds (``paused`` is set) until the test sets ``resume``."""

    def __init__(self, stop: threading.Event, *, stop_at: float = float("inf"), pause_at: float = float("inf")):
        self.now, self.stop, self.stop_at, self.pause_at = 0.0, stop, stop_at, pause_at
        self.paused, self.resume = threading.Event(), threading.Event()

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        if self.now >= self.stop_at:
            self.stop.set()
        if self.now >= self.pause_at and not self.resume.is_set():
            self.paused.set()
            self.resume.wait()
        return self.stop.is_set()


def start_played(
    jobs: list[registry.Job], *, stop_at: float = float("inf"), pause_at: float = float("inf"), **options
) -> tuple[threading.Event, threading.Thread, PlayedClock]:
    stop = threading.Event()
    clock = PlayedClock(stop, stop_at=stop_at, pause_at=pause_at)
    stop, thread = start(jobs, stop=stop, clock=clock, wait=clock.wait, **options)
    return stop, thread, clock


def finish(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the runner did not stop"


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def uploads(sqs):
    """The uploads queue (process_image's local trigger), drained of whatever provisioning left in it."""
    job = registry.get("process_image")
    while runner.poll_once(job, handler=lambda *a: None, wait_seconds=0):
        pass
    return job, aws.queue_url(runner.job_queue_name(job))


def test_handled_messages_are_deleted_not_just_hidden(sqs, uploads):
    job, url = uploads
    bodies = [{"Records": [], "n": n} for n in range(3)]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    handled = 0
    for _ in range(5):
        handled += runner.poll_once(job, handler=record, wait_seconds=1)
        if handled == len(bodies):
            break
    assert handled == len(bodies)
    assert sorted(e["n"] for e in CALLS) == [0, 1, 2]
    # A runner that only received them would pass a second poll (the visibility timeout hides them), not this.
    assert queue_counts(sqs, url) == (0, 0)


def test_a_failing_handler_leaves_the_message_for_redelivery(sqs, uploads, caplog):
    job, url = uploads
    # Visible again after 3 s instead of a minute (long enough for the checks below on a busy machine: the failed
    # run's record is sent first).
    quick = dataclasses.replace(job, timeout=3)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [], "n": 7}))
    assert runner.poll_once(quick, handler=always_fails, wait_seconds=1) == 0
    failure = [r for r in caplog.records if r.name == "devstack.runner" and "left for redelivery" in r.getMessage()]
    assert len(failure) == 1
    assert failure[0].exc_info, "the job's own failure keeps its traceback"
    assert queue_counts(sqs, url) == (0, 1)

    wait_for(lambda: queue_counts(sqs, url) == (1, 0), timeout=15)  # its visibility timeout (3 s) is over
    assert runner.poll_once(quick, handler=record, wait_seconds=2) == 1
    assert [e["n"] for e in CALLS] == [7, 7]
    assert queue_counts(sqs, url) == (0, 0)


def test_a_message_that_is_no_event_fails_alone_and_the_runner_goes_on(sqs, uploads, caplog):
    job, url = uploads
    sqs.send_message(QueueUrl=url, MessageBody="</script> not json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [], "n": 1}))
    handled = 0
    for _ in range(5):
        handled += runner.poll_once(job, handler=record, wait_seconds=1)  # raised JSONDecodeError before
        if handled:
            break
    assert handled == 1
    assert [e["n"] for e in CALLS] == [1]
    assert any("is not an event it can take" in r.getMessage() for r in caplog.records)
    assert queue_counts(sqs, url) == (0, 1)  # left for redelivery, then the dead-letter queue


def test_a_failing_handler_backs_off_instead_of_spinning(sqs, monkeypatch, caplog):
    # A queue without a redrive policy, and a message visible again at once: only the back-off stops a spin.
    url = sqs.create_queue(QueueName="runner-test-poison")["QueueUrl"]
    monkeypatch.setenv("BOARDSITE_RESULTS_QUEUE", "runner-test-poison")
    job = registry.Job(
        name="poisoned",
        handler="tests.jobs.test_runner.always_fails",
        trigger=registry.SQSTrigger(queue=registry.RESULTS),
        timeout=0,
        memory=128,
        side="offload",
        description="always fails",
    )
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    # 3 s played on the runner's clock (it stops itself there); a runner that spins never waits, so its clock never
    # gets there: stopped after 20 s of real time instead, with hundreds of calls.
    stop, thread, _ = start_played([job], stop_at=3, wait_seconds=1, backoff_base=0.1, backoff_cap=30)
    thread.join(timeout=20)
    finish(stop, thread)
    # Delays 0.1, 0.2, 0.4, 0.8, 1.6 s: at most 6 attempts in 3 s (without back-off: hundreds).
    assert 2 <= len(CALLS) <= 6, len(CALLS)
    assert all(r.exc_info for r in caplog.records if "left for redelivery" in r.getMessage())


def test_unreachable_aws_one_line_per_backoff_step_then_back(monkeypatch, caplog):
    port = free_port()  # nothing listens here (yet)
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    caplog.set_level(logging.INFO, logger="devstack.runner")
    base, seconds = 0.1, 4.0
    # AWS stays away for ``seconds`` of the runner's clock: its wait holds there until AWS is back.
    stop, thread, clock = start_played(
        [registry.get("process_image")], pause_at=seconds, wait_seconds=1, backoff_base=base, backoff_cap=30
    )
    server = None
    try:
        assert clock.paused.wait(timeout=30), "the runner never waited out the outage"
        lines = [r for r in caplog.records if r.name == "devstack.runner" and r.levelno >= logging.WARNING]
        assert lines, "nothing logged while AWS was unreachable"
        assert not [r for r in caplog.records if r.exc_info], "a traceback while AWS was unreachable"
        assert "Traceback" not in caplog.text
        # One line per step, each announcing the next (doubling) delay: base, 2 base, 4 base …
        delays = [float(re.search(r"trying again in ([\d.]+)s", r.getMessage()).group(1)) for r in lines]
        assert delays == pytest.approx([base * 2**n for n in range(len(delays))]), delays
        steps = 0  # how many back-off steps fit in the time: an upper bound on the lines
        while sum(base * 2**n for n in range(steps + 1)) <= seconds:
            steps += 1
        assert len(lines) <= steps + 1, [r.getMessage() for r in lines]
        assert all(endpoint in r.getMessage() for r in lines)

        # AWS comes (back) up: one line says so and polling resumes.
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        aws.clear_caches()
        provision.provision(origins=["http://127.0.0.1"])
        clock.resume.set()
        wait_for(lambda: "answers again" in caplog.text, timeout=20)
        assert caplog.text.count("answers again") == 1
    finally:
        clock.resume.set()
        finish(stop, thread)
        if server is not None:
            server.stop()
        aws.clear_caches()


def test_a_scheduled_job_that_cannot_reach_aws_logs_one_line(caplog):
    job = registry.Job(
        name="unreachable_schedule",
        handler="tests.jobs.test_runner.schedule_cannot_reach_aws",
        trigger=registry.ScheduleTrigger(expression="rate(5 minutes)", every_seconds=300),
        timeout=30,
        memory=128,
        side="offload",
        description="cannot reach AWS",
    )
    stop, thread = start([job])
    wait_for(lambda: CALLS, timeout=5, interval=0.05)
    finish(stop, thread)
    assert len(CALLS) == 1
    lines = [r for r in caplog.records if r.name == "devstack.runner" and r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert not lines[0].exc_info
    assert "unreachable_schedule" in lines[0].getMessage()
    assert "could not reach AWS (Could not connect to the endpoint URL" in lines[0].getMessage()
    assert "runs again in 300s" in lines[0].getMessage()


class Gate:
    """Handlers that wait inside until the test opens the gate: how many are inside at once, and the most ever."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.opened = threading.Event()
        self.inside = self.most = 0
        self.seen: list[int] = []

    def wait_inside(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.inside >= count, timeout=30), f"{self.inside} inside, not {count}"


GATE = Gate()


def number(event: dict) -> int:
    """The test's message number, from an S3-shaped body (the event itself) or an SQS event of one record."""
    return json.loads(event["Records"][0]["body"])["n"] if "n" not in event else event["n"]


def held_at_the_gate(event: dict, context: object = None) -> None:
    with GATE.changed:
        GATE.inside += 1
        GATE.most = max(GATE.most, GATE.inside)
        GATE.seen.append(number(event))
        GATE.changed.notify_all()
    try:
        assert GATE.opened.wait(timeout=30), "the test never opened the gate"
    finally:
        with GATE.changed:
            GATE.inside -= 1


def some_fail(event: dict, context: object = None) -> dict | None:
    n = number(event)
    CALLS.append({"n": n})
    if n % 3 == 0:
        raise ValueError(f"message {n} cannot be handled")
    if n % 3 == 1:
        return {"batchItemFailures": [{"itemIdentifier": "the only record"}]}  # partial batch failure
    return None


@pytest.fixture
def gate():
    global GATE
    GATE = Gate()
    yield GATE
    GATE.opened.set()  # no handler stays blocked after a failed test


def on_uploads(job: registry.Job, handler: str) -> registry.Job:
    """process_image's queue (S3-triggered: only the function's concurrency bounds it) with the test's handler."""
    return dataclasses.replace(job, handler=f"tests.jobs.test_runner.{handler}")


def fed_by(queue: registry.Queue, handler: str, max_concurrency: int) -> registry.Job:
    return registry.Job(
        name=f"test_{queue.name}",
        handler=f"tests.jobs.test_runner.{handler}",
        trigger=registry.SQSTrigger(queue=queue, max_concurrency=max_concurrency),
        timeout=60,
        memory=128,
        side="offload",
        description="a queue-fed test job",
    )


def send(sqs, url: str, numbers: range) -> None:
    for n in numbers:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [], "n": n}))


def test_concurrency_runs_that_many_invocations_at_once_and_leaves_the_rest_queued(sqs, uploads, gate):
    job, url = uploads
    send(sqs, url, range(10))
    stop, thread = start([on_uploads(job, "held_at_the_gate")], concurrency=4, wait_seconds=1)
    try:
        gate.wait_inside(4)
        # Four invocations at once; the pollers took no more: six wait visible in the queue, four are in flight.
        assert queue_counts(sqs, url) == (6, 4)
        assert gate.inside == 4
        gate.opened.set()
        wait_for(lambda: queue_counts(sqs, url) == (0, 0) and len(gate.seen) == 10, timeout=30)
    finally:
        gate.opened.set()
        finish(stop, thread)
    assert sorted(gate.seen) == list(range(10)), "each message handled exactly once"
    assert gate.most == 4


def test_a_reserved_concurrency_caps_the_function_and_leaves_the_rest_queued(sqs, uploads, gate, monkeypatch):
    monkeypatch.setitem(registry.RESERVED_CONCURRENCY, "offload", 2)
    job, url = uploads
    send(sqs, url, range(10))
    stop, thread = start([on_uploads(job, "held_at_the_gate")], concurrency=4, wait_seconds=1)
    try:
        gate.wait_inside(2)
        assert queue_counts(sqs, url) == (8, 2), "a throttled function leaves its messages queued"
        gate.opened.set()
        wait_for(lambda: queue_counts(sqs, url) == (0, 0) and len(gate.seen) == 10, timeout=30)
    finally:
        gate.opened.set()
        finish(stop, thread)
    assert sorted(gate.seen) == list(range(10))
    assert gate.most == 2


def test_a_reserved_concurrency_caps_the_function_across_its_queues(sqs, uploads, gate, monkeypatch):
    # One function (the offload side's) fed by two queues: its 2 slots are shared. Both pollers listen while a slot
    # is free, so one may receive as the other takes the last slots: it then waits with those messages (hidden,
    # never invoked) for the next slot, and takes no more.
    monkeypatch.setitem(registry.RESERVED_CONCURRENCY, "offload", 2)
    job, url = uploads
    second = registry.Queue("runner-test-second", "RUNNER_TEST_SECOND_QUEUE")
    second_url = sqs.create_queue(QueueName=second.name)["QueueUrl"]
    send(sqs, url, range(0, 5))
    send(sqs, second_url, range(5, 10))
    jobs = [on_uploads(job, "held_at_the_gate"), fed_by(second, "held_at_the_gate", max_concurrency=10)]
    stop, thread = start(jobs, concurrency=4, wait_seconds=1)
    try:
        gate.wait_inside(2)
        visible, hidden = map(sum, zip(queue_counts(sqs, url), queue_counts(sqs, second_url), strict=True))
        assert (visible + hidden, gate.inside) == (10, 2)
        assert visible >= 6, "each poller received at most the 2 slots it saw free"
        gate.opened.set()
        wait_for(lambda: len(gate.seen) == 10, timeout=30)
        wait_for(lambda: queue_counts(sqs, url) == queue_counts(sqs, second_url) == (0, 0), timeout=30)
    finally:
        gate.opened.set()
        finish(stop, thread)
    assert sorted(gate.seen) == list(range(10)), "each message handled exactly once"
    assert gate.most == 2


def numbered(event: dict, context: object = None) -> None:
    CALLS.append({"n": number(event)})


def test_one_slot_serves_every_queue_of_the_function(sqs, uploads):
    # At concurrency 1 the pollers of both queues share the one slot; neither holds it while it listens, so neither
    # starves the other (a poller that kept the slot through its empty long polls would).
    job, url = uploads
    second = registry.Queue("runner-test-shared", "RUNNER_TEST_SHARED_QUEUE")
    second_url = sqs.create_queue(QueueName=second.name)["QueueUrl"]
    send(sqs, url, range(0, 10))
    send(sqs, second_url, range(10, 20))
    jobs = [on_uploads(job, "numbered"), fed_by(second, "numbered", max_concurrency=2)]
    stop, thread = start(jobs, concurrency=1, wait_seconds=1)
    try:
        wait_for(lambda: len(CALLS) == 20, timeout=30)
        wait_for(lambda: queue_counts(sqs, url) == queue_counts(sqs, second_url) == (0, 0), timeout=30)
    finally:
        finish(stop, thread)
    assert sorted(c["n"] for c in CALLS) == list(range(20))


def test_a_queue_bound_below_the_functions_caps_that_queue(sqs, gate):
    queue = registry.Queue("runner-test-bounded", "RUNNER_TEST_BOUNDED_QUEUE")
    url = sqs.create_queue(QueueName=queue.name)["QueueUrl"]
    send(sqs, url, range(6))
    stop, thread = start([fed_by(queue, "held_at_the_gate", max_concurrency=3)], concurrency=4, wait_seconds=1)
    try:
        gate.wait_inside(3)
        assert queue_counts(sqs, url) == (3, 3)
        gate.opened.set()
        wait_for(lambda: queue_counts(sqs, url) == (0, 0) and len(gate.seen) == 6, timeout=30)
    finally:
        gate.opened.set()
        finish(stop, thread)
    assert sorted(gate.seen) == list(range(6))
    assert gate.most == 3


def test_failures_side_by_side_are_left_for_redelivery(sqs, uploads, caplog):
    job, url = uploads
    send(sqs, url, range(12))
    stop, thread = start([on_uploads(job, "some_fail")], concurrency=4, wait_seconds=1, backoff_base=0.05)
    try:
        wait_for(lambda: len(CALLS) >= 12 and queue_counts(sqs, url) == (0, 8), timeout=30)
    finally:
        finish(stop, thread)
    assert sorted(c["n"] for c in CALLS) == list(range(12)), "each called once (the failed are hidden for a minute)"
    # Four handled and deleted; the eight failures (raised or reported) stay for redelivery.
    assert queue_counts(sqs, url) == (0, 8)
    raised = [r for r in caplog.records if r.name == "devstack.runner" and "failed on message" in r.getMessage()]
    reported = [r for r in caplog.records if "reported message" in r.getMessage()]
    assert (len(raised), len(reported)) == (4, 4)
    assert all(r.exc_info for r in raised)
    assert f"{job.name} 4 handled, 8 failed" in caplog.text


def test_concurrency_per_function_and_queue():
    assert runner.queue_concurrency(registry.get("process_image"), 4) == 4  # S3's invoke: the function's only
    assert runner.queue_concurrency(registry.get("send_email"), 4) == 2  # its trigger's max_concurrency
    assert runner.queue_concurrency(registry.get("apply_results"), 8) == 5
    assert runner.queue_concurrency(registry.get("apply_results"), 1) == 1
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        runner.run([], threading.Event(), concurrency=0)
    with pytest.raises(ValueError, match="LONG_POLL_SECONDS"):
        runner.run([], threading.Event(), wait_seconds=runner.LONG_POLL_SECONDS + 1)
    with pytest.raises(SystemExit):
        runner.main(["--concurrency", "0"])


def test_clients_and_queue_urls_are_made_once_under_concurrent_first_use(sqs, uploads, monkeypatch):
    # The runner's invocations ask for their clients at once; each (service, region, endpoint) gets one client.
    aws.clear_caches()
    made = []
    session = aws._session()
    create = session.create_client

    def create_client(*args, **kwargs):
        made.append(args[0])
        return create(*args, **kwargs)

    monkeypatch.setattr(session, "create_client", create_client)
    barrier = threading.Barrier(8)
    got: list[tuple[object, str]] = []

    def first_use():
        barrier.wait()
        got.append((aws.client("s3"), aws.queue_url(runner.job_queue_name(uploads[0]))))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 8
    assert len({id(client) for client, _ in got}) == 1
    assert {url for _, url in got} == {uploads[1]}
    assert sorted(made) == ["s3", "sqs"]  # sqs: the one the queue URL is asked with
    aws.clear_caches()
