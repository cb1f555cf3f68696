"""Adding a job is its module plus one registry entry (README, "Adding a job"): the living proof.

``tests/jobs_added.py`` declares two jobs through the registry only (``registry.add``, loaded in the processes these
tests start by ``BOARDSITE_EXTRA_JOBS``): an S3-triggered offload function on a new prefix with a dead-letter queue of
its own, and a scheduled web job. Nothing else in the code names them, and everything derives: Celery routing and
beat, the local runners, provisioning on moto, the CloudFormation template (cfn-lint), IAM, Zappa's settings, the
system checks; then each runs end to end on the local stack in inline, Celery and Lambda mode.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from boardsite.core import jobs
from boardsite.notifications.models import Kind, Notification
from deploy import iam, lint, parse, template
from deploy.config import DeployConfig
from deploy.generate import build_settings
from devstack import provision, runner
from offload import aws, registry
from tests import jobs_added
from tests.helpers import celery_worker, database_url, wait_for
from tests.iam_analysis import missing_permissions, parse_module

ROOT = Path(__file__).resolve().parents[2]
NEW = tuple(job.name for job in jobs_added.JOBS)
SHEET, PURGE = (registry.get(name) if name in registry.JOBS else None for name in NEW)  # not declared yet: None
CFG = DeployConfig(account="111122223333", region="eu-west-1")
COMMITTED = json.loads((ROOT / "zappa_settings.json").read_text())


@pytest.fixture
def added(monkeypatch, settings):
    """The two jobs declared, here and in every process the test starts."""
    monkeypatch.setenv("BOARDSITE_EXTRA_JOBS", "tests.jobs_added")
    registry.add(*jobs_added.JOBS)
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, **{job.name: job.default_mode for job in jobs_added.JOBS}}
    yield {job.name: job for job in jobs_added.JOBS}
    registry.remove(*NEW)


def test_nothing_outside_their_module_names_them():
    found = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-e", NEW[0], "-e", NEW[1]], cwd=ROOT, capture_output=True, text=True
    )
    assert sorted(found.stdout.split()) == ["README.md", "tests/jobs/test_adding_a_job.py", "tests/jobs_added.py"]
    assert SHEET is None, "declared by the test only"
    assert PURGE is None


def test_a_second_declaration_or_a_clash_is_refused_and_changes_nothing(added):
    with pytest.raises(ValueError, match="declared already"):
        registry.add(added["make_contact_sheet"])
    sheet = added["make_contact_sheet"]
    same_queue = dataclasses.replace(
        sheet, name="another_sheet", trigger=dataclasses.replace(sheet.trigger, prefix="x/")
    )
    with pytest.raises(ValueError, match="feeds 2 jobs"):
        registry.add(same_queue)
    other_queue = dataclasses.replace(sheet.trigger, local_queue=registry.Queue("boardsite-other", "BOARDSITE_OTHER"))
    with pytest.raises(ValueError, match="overlaps"):
        registry.add(dataclasses.replace(sheet, name="another_sheet", trigger=other_queue))
    assert "another_sheet" not in registry.JOBS


def test_celery_routing_beat_and_the_runners_pick_them_up(added, settings):
    assert {"jobs.make_contact_sheet", "jobs.purge_old_notifications"} <= set(jobs.celery_queues())
    worker = jobs.celery_worker_command("python")
    assert "jobs.make_contact_sheet" in worker[worker.index("-Q") + 1]
    assert "purge_old_notifications" not in jobs.beat_schedule()  # its schedule is Lambda's by default
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "purge_old_notifications": "celery"}
    entry = jobs.beat_schedule()["purge_old_notifications"]
    assert (entry["schedule"], entry["options"]["queue"]) == (86400.0, "jobs.purge_old_notifications")
    assert "make_contact_sheet" in [job.name for job in runner.default_jobs("offload")]
    assert "purge_old_notifications" not in [job.name for job in runner.default_jobs("web", jobs.mode)]  # beat's
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "purge_old_notifications": "lambda"}
    assert "purge_old_notifications" in [job.name for job in runner.default_jobs("web", jobs.mode)]


def test_provisioning_on_moto_makes_its_queue_dead_letter_queue_and_s3_notification(added, local_aws):
    out = provision.provision(origins=["http://127.0.0.1"])
    sqs = aws.client("sqs")
    url = out["boardsite-contact-sheets"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":boardsite-contact-sheets-dlq")
    notifications = aws.client("s3").get_bucket_notification_configuration(Bucket=os.environ["BOARDSITE_BUCKET"])
    rules = {c["Filter"]["Key"]["FilterRules"][0]["Value"]: c["QueueArn"] for c in notifications["QueueConfigurations"]}
    # Only what the site placed for Lambda (jobs.place): in inline or celery mode the site starts it, once.
    assert rules["contact-sheets/lambda/"].endswith(":boardsite-contact-sheets")
    assert "originals/lambda/" in rules  # the others stay


def test_the_template_iam_and_zappa_settings_pick_them_up(added, tmp_path):
    tpl = template.build_template(CFG, ["https://photos.example.com"])
    resources = tpl["Resources"]
    assert resources["BoardsiteContactSheets"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["BoardsiteContactSheetsDlq", "Arn"]
    }
    # S3 may send to its queue; the bucket's notification is `deploy wire`'s (a stack update would replace Zappa's).
    policy = resources["BoardsiteContactSheetsS3Policy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "s3.amazonaws.com"}
    assert "NotificationConfiguration" not in resources["MediaBucket"]["Properties"]
    path = tmp_path / "template.json"
    path.write_text(json.dumps(tpl))
    linted = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    functions = iam.stage_policy(CFG, "functions")
    sids = {s["Sid"]: s for s in functions["Statement"]}
    assert sids["MakeContactSheetPoller"]["Resource"] == ["arn:aws:sqs:eu-west-1:111122223333:boardsite-contact-sheets"]
    assert "MakeContactSheetReports" in sids
    # The IAM call analysis (tests/iam_analysis.py), on the job's own module: every AWS call it makes is granted.
    units = parse_module("tests.jobs_added", (ROOT / "tests" / "jobs_added.py").read_text())
    calls = [
        (svc, method, arg, f"tests/jobs_added.py:{line}") for u in units.values() for svc, method, arg, line in u.calls
    ]
    assert {(svc, method) for svc, method, *_ in calls} == {("s3", "head_object"), ("s3", "put_object")}
    assert missing_permissions(calls, functions) == []
    writes = [s for s in functions["Statement"] if "s3:PutObject" not in s["Action"]]
    assert missing_permissions(calls, {**functions, "Statement": writes}), "the analysis can fail"
    # ... and each grant acts on the job's own prefixes only (test_iam.py checks the keys real calls use).
    bucket = f"arn:aws:s3:::{CFG.media_bucket}"
    assert sids["MakeContactSheetGrant1"]["Resource"] == [f"{bucket}/contact-sheets/*"]
    assert sids["MakeContactSheetGrant2"]["Resource"] == [f"{bucket}/contact-sheet-pages/*"]

    settings = build_settings(CFG)
    (event,) = [e for e in settings["functions"]["events"] if e["function"] == "tests.jobs_added.make_contact_sheet"]
    assert event["event_source"]["arn"] == "arn:aws:sqs:eu-west-1:111122223333:boardsite-contact-sheets"
    (schedule,) = [e for e in settings["web"]["events"] if e["function"] == "tests.jobs_added.purge_old_notifications"]
    assert schedule["expression"] == "rate(1 day)"
    assert "make_contact_sheet=lambda" in settings["web"]["environment_variables"]["OFFLOAD_MODES"]
    assert lint.check_settings(settings) == []
    # The committed file lacks them: what configure would write now differs, and says where from.
    differences = lint.explain_differences(COMMITTED, build_settings(parse.config_from_settings(COMMITTED)))
    assert any("make_contact_sheet" in d and "functions.events" in d for d in differences), differences
    assert any("purge_old_notifications" in d and "web.events" in d for d in differences), differences


def test_deploy_wire_adds_its_s3_notification_and_keeps_the_others(added, local_aws):
    from deploy import wire

    provision.provision(origins=["http://127.0.0.1"])
    s3, bucket = aws.client("s3"), os.environ["BOARDSITE_BUCKET"]
    queue = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.queue_url("boardsite-contact-sheets"), AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    # As on AWS before `deploy wire`: the bucket notifies only what Zappa set up, not the new job's queue.
    others = [
        c
        for c in s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
        if c["QueueArn"] != queue
    ]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": others})
    prefix = registry.get("make_contact_sheet").trigger.notify_prefix
    wanted = [(prefix, ["s3:ObjectCreated:*"], queue)]
    before = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert wire.notify_queues(s3, bucket, wanted) == [f"s3://{bucket}/contact-sheets/lambda/: notifies {queue}"]
    after = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert [c["QueueArn"] for c in after] == [c["QueueArn"] for c in before] + [queue]  # the others kept
    assert wire.notify_queues(s3, bucket, wanted) == []  # once


def test_the_system_checks_pick_them_up(added, settings):
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == []
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "purge_old_notifications": "inline"}
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == ["boardsite.E004"]
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "purge_old_notifications": "lambda", "apply_results": "celery"}
    (error,) = [e for e in run_checks() if e.id == "boardsite.E003"]
    assert "make_contact_sheet" in error.msg
    # Without the site starting it, S3's events are its only start: lambda mode only.
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "apply_results": "lambda", "make_contact_sheet": "celery"}
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == []
    sheet = added["make_contact_sheet"]
    registry.JOBS["make_contact_sheet"] = dataclasses.replace(
        sheet, trigger=dataclasses.replace(sheet.trigger, started_by_site=False)
    )
    (error,) = [e for e in run_checks() if e.id == "boardsite.E003"]
    assert error.msg.startswith("nothing would start make_contact_sheet outside lambda mode")


# --- end to end on the local stack --------------------------------------------------------------------------------


def put_into_inbox(name: str) -> tuple[str, dict]:
    key = jobs.place(jobs_added.INBOX + name)  # as the site signs an upload: under the runtime its route gives it
    s3 = aws.client("s3")
    s3.put_object(Bucket=os.environ["BOARDSITE_BUCKET"], Key=key, Body=b"x" * 1234)
    return key, s3.head_object(Bucket=os.environ["BOARDSITE_BUCKET"], Key=key)


def sheet_of(key: str) -> str:
    sheet = jobs_added.SHEETS + registry.unplaced(key).removeprefix(jobs_added.INBOX) + ".txt"
    return aws.client("s3").get_object(Bucket=os.environ["BOARDSITE_BUCKET"], Key=sheet)["Body"].read().decode()


def applied(key: str) -> dict | None:
    path = jobs_added.applied_dir() / (Path(key).name + ".json")
    return json.loads(path.read_text()) if path.exists() else None


def old_and_new_notifications() -> tuple[Notification, Notification]:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="reader", password="a-long-test-password")
    long_ago = timezone.now() - dt.timedelta(days=jobs_added.KEEP_DAYS + 1)
    make = lambda when: Notification.objects.create(  # noqa: E731
        user=user, kind=Kind.PHOTOS_ADDED, created_at=when, updated_at=when
    )
    return make(long_ago), make(timezone.now())


@pytest.mark.django_db
def test_inline_the_site_runs_the_contact_sheet_and_applies_its_report(added, local_aws, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "make_contact_sheet": "inline", "apply_results": "inline"}
    key, head = put_into_inbox("inline.jpg")
    jobs.object_created(key, size=head["ContentLength"], etag=head["ETag"])  # the door, as for any upload
    assert sheet_of(key) == f"{key}: 1234 bytes\n"
    sheet = jobs_added.SHEETS + "inline.jpg.txt"
    assert applied(key) == {"type": "contact_sheet.made", "key": key, "sheet": sheet, "bytes": 1234}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_celery_a_real_worker_runs_both(added, local_aws, settings, tmp_path):
    modes = {
        "make_contact_sheet": "celery",
        "purge_old_notifications": "celery",
        "apply_results": "inline",
        "process_image": "celery",
        "send_email": "celery",
    }
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, **modes}
    old, new = old_and_new_notifications()
    with celery_worker(tmp_path, ",".join(f"{k}={v}" for k, v in modes.items())):
        key, head = put_into_inbox("celery.jpg")
        jobs.object_created(key, size=head["ContentLength"], etag=head["ETag"])
        result = wait_for(lambda: applied(key), timeout=60)
        # As beat sends it (the worker's embedded beat would, once a day).
        entry = jobs.beat_schedule()["purge_old_notifications"]
        from boardsite.celery import app

        app.send_task(entry["task"], args=entry["args"], queue=entry["options"]["queue"])
        wait_for(lambda: not Notification.objects.filter(pk=old.pk).exists(), timeout=60)
    assert result["bytes"] == 1234
    assert sheet_of(key) == f"{key}: 1234 bytes\n"
    assert Notification.objects.filter(pk=new.pk).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_lambda_s3_its_queue_the_local_runner_and_runjobs_run_both(added, local_aws, settings, tmp_path):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "make_contact_sheet": "lambda", "apply_results": "lambda"}
    provision.provision(origins=["http://127.0.0.1"])
    old, new = old_and_new_notifications()
    env = {**os.environ, "DATABASE_URL": database_url()}
    logs = {name: tmp_path / f"{name}.log" for name in ("functions", "web")}
    commands = {
        # `make run`'s two runners, on these jobs only: the offload side's, and the web side's (which runs a
        # schedule once at start).
        "functions": [sys.executable, "-m", "devstack.runner", "make_contact_sheet"],
        "web": [sys.executable, "manage.py", "runjobs", "apply_results", "purge_old_notifications"],
    }
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs[name].open("w"), stderr=subprocess.STDOUT)
        for name, cmd in commands.items()
    ]
    try:
        key, _ = put_into_inbox("lambda.jpg")  # S3's own event, on the job's queue: nothing here starts it
        result = wait_for(lambda: applied(key), timeout=90)
        wait_for(lambda: not Notification.objects.filter(pk=old.pk).exists(), timeout=60)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        for log in logs.values():
            print(log.read_text()[-3000:])
    assert result["bytes"] == 1234
    assert "make_contact_sheet <- boardsite-contact-sheets" in logs["functions"].read_text()
    assert Notification.objects.filter(pk=new.pk).exists()
