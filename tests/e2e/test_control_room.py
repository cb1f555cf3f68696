"""The migration control room in a real browser: a staff member moves process_image to Lambda in steps with shadow
runs on, sees an injected fault trip the automatic rollback, retries a dead letter, and moves the job back."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from boardsite.control import watch as watch_job
from boardsite.core import runs
from offload import aws, registry
from offload import runs as offload_runs
from tests.e2e.browser import csp_problems, watch
from tests.factories import make_user

pytestmark = pytest.mark.e2e


def route_text(page) -> str:
    return page.locator("#route").inner_text()


@pytest.mark.django_db(transaction=True)
def test_move_in_steps_roll_back_on_a_fault_retry_a_dead_letter_and_move_back(
    page, live_server, local_aws, settings, monkeypatch
):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    make_user("ada", is_staff=True)
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.click("text=Control room")
    page.click("a:text-is('process_image')")
    page.select_option("#baseline", "celery")
    page.select_option("#canary", "lambda")
    page.fill("#steps", "5,25,100")
    page.fill("#bake", "60")
    page.fill("#shadow_share", "10")
    page.fill("#why", "move it to Lambda")
    page.click("form.route button")
    assert route_text(page) == "lambda 5 %, celery 95 %; shadow 10 %"

    # A bake time later the watch takes the next step.
    watch_job.watch(now=timezone.now() + dt.timedelta(seconds=61))
    page.reload()
    assert route_text(page) == "lambda 25 %, celery 75 %; shadow 10 %"

    # Runs on both runtimes, half of Lambda's failing by the fault-injection setting; the watch rolls the canary back.
    monkeypatch.setenv("OFFLOAD_FAULTS", "process_image@lambda=fail:50")
    job = registry.get("process_image")
    for _ in range(60):
        offload_runs.measure(job, "celery", lambda: None, {}, runs.record)
        try:
            offload_runs.measure(job, "lambda", lambda: None, {}, runs.record)
        except offload_runs.InjectedFault:
            pass
    assert watch_job.watch()["rolled_back"] == ["process_image"]
    page.reload()
    alert = page.locator("[role=alert]")
    assert "automatic rollback: lambda failed" in alert.inner_text()
    assert route_text(page) == "celery"  # the rollback stops the shadow copies too
    assert page.locator("svg.chart").count() == 4
    assert "InjectedFault" in page.locator("table[aria-label='Runs by runtime']").inner_text()
    alert.locator("button").click()
    assert page.locator("[role=alert]").count() == 0

    # A dead letter of the mail job, retried on Lambda: back on the job's own queue.
    mail_queue = registry.get("send_email").queue.resolved()
    aws.client("sqs").send_message(
        QueueUrl=aws.queue_url(registry.redrive_queue(mail_queue)), MessageBody=json.dumps({"Type": "Notification"})
    )
    page.goto(f"{live_server.url}/control/dead-letters/")
    letters = page.locator(f"table[aria-label='Letters of {registry.redrive_queue(mail_queue)}']")
    letters.locator("select[name=runtime]").select_option("lambda")
    letters.locator("button[value=retry]").click()
    assert "Handed to lambda." in page.locator(".messages").inner_text()
    assert aws.client("sqs").receive_message(QueueUrl=aws.queue_url(mail_queue), WaitTimeSeconds=1)["Messages"]

    # Up again, then back with one click.
    page.goto(f"{live_server.url}/control/jobs/process_image/")
    page.fill("#share", "25")
    page.fill("#why", "fixed, try again")
    page.click("form.route button")
    assert route_text(page) == "lambda 25 %, celery 75 %"
    page.fill("#why-back", "not today")
    page.click("text=Back to celery")
    assert route_text(page) == "celery"
    changes = page.locator("table[aria-label='Changes']").inner_text()
    assert "not today" in changes
    assert "automatic rollback" in changes
    assert csp_problems(page, console) == []
