"""Every run of every job is measured and recorded (offload/runs.py, boardsite/core/runs.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import pytest
from django.test import Client

from boardsite.core import jobs, runs
from boardsite.core.models import JobRun
from offload import aws, registry
from offload import runs as offload_runs
from offload.events import s3_object_created_event, sqs_event
from tests.helpers import ROOT, upload


@pytest.mark.django_db
def test_an_inline_upload_records_both_runs_with_their_figures(settings, people, board, local_aws, jpeg):
    uploader = Client()
    uploader.force_login(people["contributor"])
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    upload(uploader, board.pk, jpeg())
    process = JobRun.objects.get(job="process_image")
    apply = JobRun.objects.get(job="apply_results")
    assert (process.runtime, process.outcome, process.error_class, process.attempt) == ("inline", "ok", "", 1)
    assert process.memory_mb == registry.get("process_image").memory
    assert 0 < process.duration_ms < 60_000
    assert process.billed_ms >= process.duration_ms
    assert process.billed_ms - process.duration_ms < 1
    assert process.peak_memory_mb > 10
    assert 0 <= process.queue_wait_ms < 5_000, "from the event's time (the door made it) to the start"
    assert apply.runtime == "inline"
    assert apply.outcome == "ok"
    assert process.started_at <= apply.started_at


@pytest.mark.django_db
def test_a_failing_run_is_recorded_with_its_error_class_and_still_fails(settings, monkeypatch):
    job = registry.get("apply_results")

    def boom(event, context=None):
        raise KeyError("nope")

    monkeypatch.setattr(registry.Job, "resolve", lambda self: boom)
    with pytest.raises(KeyError):
        jobs.run_job(job.name, sqs_event([("m1", "{}")]), "celery")
    run = JobRun.objects.get()
    assert (run.job, run.runtime, run.outcome, run.error_class) == ("apply_results", "celery", "failed", "KeyError")


@pytest.mark.django_db
def test_a_batch_with_failed_items_counts_as_failed(settings):
    answer = jobs.run_job("apply_results", sqs_event([("m1", "not json"), ("m2", json.dumps({"type": "x.unknown"}))]))
    assert answer["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    assert JobRun.objects.get().error_class == "BatchItemFailures"


def test_recording_never_breaks_the_job():
    def sink(record):
        raise ConnectionError("the database is away")

    answer = offload_runs.measure(registry.get("send_email"), "inline", lambda: "done", {}, sink)
    assert answer == "done"


def test_the_first_run_in_a_process_is_cold_the_next_warm(monkeypatch):
    monkeypatch.setattr(offload_runs, "_warm", set())
    records: list[dict] = []
    job = registry.get("send_email")
    for _ in range(2):
        offload_runs.measure(job, "lambda", lambda: None, {}, records.append)
    assert [r["cold"] for r in records] == [True, False]
    assert records[0]["init_ms"] > 0
    assert records[1]["init_ms"] == 0


def test_queue_wait_and_attempt_come_from_the_event():
    now = time.time()
    sent = sqs_event(
        [("m", "{}")], attributes={"SentTimestamp": str(int((now - 2.5) * 1000)), "ApproximateReceiveCount": "3"}
    )
    at, attempt = offload_runs.event_timing(sent)
    assert attempt == 3
    assert abs(now - 2.5 - at) < 0.01
    s3_event = s3_object_created_event(bucket="b", key="originals/1/x.jpg", size=1, etag="e")
    assert abs(offload_runs.event_timing(s3_event)[0] - time.time()) < 1
    scheduled = {"source": "aws.events", "time": "2026-12-07T10:00:00Z", "detail": {}}
    assert offload_runs.event_timing(scheduled) == (1796637600.0, 1)
    assert offload_runs.event_timing({"detail": {}}) == (None, 1)


@pytest.mark.django_db
def test_at_least_999_of_1000_runs_are_recorded():
    for i in range(1000):
        jobs.run_job("apply_results", sqs_event([(f"m{i}", json.dumps({"type": "nobody.applies.this"}))]))
    assert JobRun.objects.filter(job="apply_results").count() >= 999


@pytest.mark.django_db
def test_a_record_delivered_twice_is_kept_once_and_a_bad_one_is_refused():
    records: list[dict] = []
    offload_runs.measure(registry.get("process_image"), "lambda", lambda: None, {}, records.append)
    assert runs.run_apply(result=records[0]) is True
    assert runs.run_apply(result=records[0]) is False
    assert JobRun.objects.count() == 1
    with pytest.raises(ValueError, match="not a run record"):
        runs.run_apply(result={**records[0], "job": "no_such_job"})


@pytest.mark.django_db
def test_a_deployed_function_reports_its_run_on_the_results_queue(local_aws, monkeypatch, tmp_path):
    """The functions stage's entry point measures each job it runs and sends the record where results go; the web
    side's results job turns it into a row."""
    from offload import entry

    class Settings:
        APP_MODULE = "offload.entry"
        LOG_LEVEL = None
        DEBUG = False
        PROJECT_NAME, API_STAGE = "boardsite", "functions"
        ENVIRONMENT_VARIABLES: dict = {}
        AWS_EVENT_MAPPING = {"arn:aws:sqs:us-east-1:000000000000:boardsite-mail": "tests.core.test_runs.mail_stub"}

    monkeypatch.setitem(entry._state, "settings", Settings)
    stubbed = dataclasses.replace(registry.get("send_email"), handler="tests.core.test_runs.mail_stub")
    monkeypatch.setitem(registry.JOBS, "send_email", stubbed)
    results = aws.queue_url(registry.RESULTS.resolved())
    sqs = aws.client("sqs")
    sqs.purge_queue(QueueUrl=results)
    event = sqs_event([("m1", "{}")], queue_arn="arn:aws:sqs:us-east-1:000000000000:boardsite-mail")
    assert entry.lambda_handler(event, None) == {"batchItemFailures": []}
    messages = sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = [json.loads(m["Body"]) for m in messages]
    assert [(b["type"], b["job"], b["runtime"], b["outcome"]) for b in bodies] == [
        ("job.run", "send_email", "lambda", "ok")
    ]
    jobs.run_job("apply_results", sqs_event([(m["MessageId"], m["Body"]) for m in messages]))
    assert JobRun.objects.filter(job="send_email", runtime="lambda").count() == 1


def mail_stub(event, context=None):
    return {"batchItemFailures": []}


def test_faults_are_parsed_and_injected(monkeypatch):
    table = offload_runs.faults("process_image@lambda=fail:30,slow:500; send_email=fail:100 ; bad@x=boom:1")
    assert table == {("process_image", "lambda"): (0.3, 0.5), ("send_email", "*"): (1.0, 0.0)}
    monkeypatch.setenv("OFFLOAD_FAULTS", "send_email@lambda=fail:100")
    records: list[dict] = []
    with pytest.raises(offload_runs.InjectedFault):
        offload_runs.measure(registry.get("send_email"), "lambda", lambda: None, {}, records.append)
    offload_runs.measure(registry.get("send_email"), "celery", lambda: None, {}, records.append)  # other runtime
    assert [(r["outcome"], r["error_class"]) for r in records] == [("failed", "InjectedFault"), ("ok", "")]
    monkeypatch.setenv("OFFLOAD_FAULTS", "send_email@lambda=fail:30")
    outcomes = []
    for _ in range(2000):
        try:
            offload_runs.measure(registry.get("send_email"), "lambda", lambda: None, {}, lambda r: None)
            outcomes.append(True)
        except offload_runs.InjectedFault:
            outcomes.append(False)
    assert 0.25 < outcomes.count(False) / len(outcomes) < 0.35


def test_s3s_test_event_is_no_run(monkeypatch):
    monkeypatch.setenv("OFFLOAD_FAULTS", "process_image@lambda=fail:100")
    records: list[dict] = []
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}
    assert offload_runs.measure(registry.get("process_image"), "lambda", lambda: "ran", event, records.append) == "ran"
    assert records == []


def test_a_cold_starts_init_time_ends_when_the_process_is_ready_not_at_its_first_run():
    """A process that waits for work (the local runner, a provisioned or SnapStart Lambda) must not count the wait
    as initialisation: init_ms runs from the process's start to its readiness, read from /proc."""
    script = "import time, offload.runs as r; time.sleep(1.5); print(r.init_ms())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    init = float(out.stdout)
    assert 0 < init < 1500, init
