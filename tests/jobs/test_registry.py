"""The registry is the one source: Zappa triggers, Celery routing and the runner all agree with it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.core.checks import run_checks

from boardsite.core import jobs
from deploy import lint
from devstack import runner
from offload import registry

ZAPPA = json.loads((Path(__file__).resolve().parents[2] / "zappa_settings.json").read_text())


RESULTS = "boardsite.core.results.handler"


def test_zappa_settings_agree_with_the_registry():
    assert lint.check_zappa_settings(ZAPPA) == []


def _event(stage: dict, function: str) -> dict:
    """The stage's event for ``function`` (by name: the list grows as jobs are added)."""
    (event,) = [e for e in stage["events"] if e["function"] == function]
    return event


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (lambda z: z["functions"]["events"][0]["event_source"].pop("prefix"), "prefix must be 'originals/lambda/'"),
        (
            lambda z: (
                z["functions"]["events"][0]["event_source"].update(key_filters=[])
                or z["functions"]["events"][0]["event_source"].pop("prefix")
            ),
            "prefix",
        ),
        (lambda z: z["web"]["events"].clear(), "expected one event"),
        (lambda z: _event(z["web"], RESULTS)["event_source"].update(arn="arn:aws:sqs:us-east-1:1:other"), "SQS queue"),
        (lambda z: z["functions"].update(timeout_seconds=5), "timeout_seconds"),
        (lambda z: z["functions"].pop("callbacks"), "holds the build only"),
        (
            lambda z: _event(z["web"], "boardsite.images.sweep.handler").update(expression="rate(1 day)"),
            "expression must be",
        ),
        # Same queue name, another account or region: Zappa would never create the mapping (full ARNs compared).
        (
            lambda z: _event(z["web"], RESULTS)["event_source"].update(
                arn="arn:aws:sqs:REGION:123456789012:boardsite-image-results"
            ),
            "SQS queue",
        ),
        (
            lambda z: _event(z["web"], RESULTS)["event_source"].update(
                arn="arn:aws:sqs:us-east-1:000000000000:boardsite-image-results"
            ),
            "SQS queue",
        ),
        (lambda z: z["web"].update(role_arn="arn:aws:iam::999999999999:role/boardsite-web-lambda"), "SQS queue"),
        (lambda z: z["functions"].pop("dead_letter_arn"), "dead_letter_arn"),
        (lambda z: z["functions"]["environment_variables"].update(UPLOAD_MAX_BYTES="1"), "disagree on UPLOAD_MAX"),
    ],
)
def test_the_check_catches_drift(breakage, complaint):
    broken = copy.deepcopy(ZAPPA)
    breakage(broken)
    assert any(complaint in p for p in lint.check_zappa_settings(broken))


def test_every_job_resolves_to_a_callable_and_has_a_celery_queue():
    for job in registry.JOBS.values():
        assert callable(job.resolve())
        # A request cannot wait in a Celery queue: an HTTP job has none.
        http = isinstance(job.trigger, registry.HTTPTrigger)
        assert (jobs.celery_queue(job.name) in jobs.celery_queues()) is not http, job.name


def test_runner_refuses_web_jobs_and_unknown_jobs(capsys):
    with pytest.raises(SystemExit):
        runner.main(["apply_results"])
    assert "manage.py runjobs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["no_such_job"])
    assert "unknown job" in capsys.readouterr().err


def test_a_retry_must_wait_longer_than_the_function_may_run(settings):
    settings.PROCESSING_RETRY_SECONDS = registry.get("process_image").timeout
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == ["boardsite.E005"]


@pytest.mark.parametrize(
    ("name", "value", "error_id"),
    [
        ("PROCESSING_MAX_ATTEMPTS", 0, "boardsite.E006"),
        ("UPLOAD_MAX_OUTSTANDING", 0, "boardsite.E006"),
        ("BOARD_MAX_PHOTOS", 0, "boardsite.E006"),
        ("UPLOAD_DAILY_BYTES", 1000, "boardsite.E007"),
    ],
)
def test_quota_settings_are_checked(settings, name, value, error_id):
    setattr(settings, name, value)
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == [error_id]


@pytest.mark.parametrize(
    ("modes", "error_id"),
    [
        ({"process_image": "lambda", "apply_results": "lambda"}, None),
        # every job that reports off Lambda: the results job may leave it
        (
            {
                **{
                    j.name: "inline" if isinstance(j.trigger, registry.HTTPTrigger) else "celery"
                    for j in registry.JOBS.values()
                    if j.reports
                },
                "apply_results": "inline",
            },
            None,
        ),
        # a job answering requests runs inline (the site's view) or on lambda (a function URL), never in Celery
        ({"issue_upload_ticket": "celery"}, "boardsite.E003"),
        # send_email on Lambda reports refused mail on the results queue too: derived from its ``reports``
        ({"process_image": "celery", "apply_results": "inline"}, "boardsite.E003"),
        ({"process_image": "fargate"}, "boardsite.E002"),
        ({"resize": "inline"}, "boardsite.E001"),
        ({"process_image": "lambda", "apply_results": "celery"}, "boardsite.E003"),
        ({"sweep_uploads": "inline"}, "boardsite.E004"),
    ],
)
def test_offload_modes_check(settings, modes, error_id):
    settings.OFFLOAD_MODES = modes
    ids = [e.id for e in run_checks() if e.id.startswith("boardsite.")]
    assert ids == ([error_id] if error_id else [])


def test_pinning_an_unknown_job_is_an_error(settings):
    settings.OFFLOAD_PINNED = frozenset({"process_image", "resize"})
    errors = [e for e in run_checks() if e.id.startswith("boardsite.")]
    assert [(e.id, e.msg) for e in errors] == [("boardsite.E008", "OFFLOAD_PINNED names an unknown job 'resize'")]


def test_a_reserved_concurrency_must_cover_its_queues(monkeypatch):
    # The offload side's queues may run 2 at once (send_email's bound); the web side's 5 + 2, and it serves pages.
    for side, least in (("offload", 2), ("web", 8)):
        monkeypatch.setitem(registry.RESERVED_CONCURRENCY, side, least - 1)
        with pytest.raises(ValueError, match=f"reserve at least {least}"):
            registry._check_registry()
        monkeypatch.setitem(registry.RESERVED_CONCURRENCY, side, least)
    registry._check_registry()
    monkeypatch.setitem(registry.RESERVED_CONCURRENCY, "nowhere", 3)
    with pytest.raises(ValueError, match="no side 'nowhere'"):
        registry._check_registry()


def test_the_functions_stage_reserves_what_the_registry_declares(monkeypatch):
    from deploy.config import DeployConfig
    from deploy.generate import build_settings

    assert "lambda_concurrency" not in ZAPPA["functions"]  # none declared: the account's unreserved pool
    monkeypatch.setitem(registry.RESERVED_CONCURRENCY, "offload", 20)
    monkeypatch.setitem(registry.RESERVED_CONCURRENCY, "web", 30)
    assert any("lambda_concurrency must be 20" in p for p in lint.check_zappa_settings(ZAPPA))
    generated = build_settings(DeployConfig())
    assert generated["functions"]["lambda_concurrency"] == 20
    assert generated["web"]["lambda_concurrency"] == 30
    assert build_settings(DeployConfig(concurrency=50))["web"]["lambda_concurrency"] == 50  # configure's comes first
    assert runner.function_concurrency("offload", 64) == 20
    assert runner.function_concurrency("offload", 4) == 4
