"""`python -m deploy wire`: partial batch responses on the deployed SQS mappings, checked on the local AWS."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from deploy import __main__ as cli
from deploy import resources, wire
from deploy.config import DeployConfig
from deploy.generate import build_settings
from devstack import provision
from offload import aws, registry

CFG = DeployConfig(account="123456789012", region="us-east-1")  # moto's account


def queue_event(stage: dict) -> dict:
    """The web stage's SQS event (scheduled jobs come before it or after it, in registry order)."""
    return next(e for e in stage["events"] if "event_source" in e)


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
    return buf.getvalue()


@pytest.fixture
def deployed(moto_endpoint, monkeypatch, tmp_path):
    """What `zappa deploy web` leaves: the function, and its SQS mapping without FunctionResponseTypes."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # an inline job of another test may have left another
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_caches()
    settings = build_settings(CFG)
    sqs, lam, iam = aws.client("sqs"), aws.client("lambda"), aws.client("iam")
    results = next(s for s in resources.queue_specs(CFG.queue_names) if s.name == "boardsite-image-results")
    url, arn = provision._queue(sqs, results)
    assert arn == queue_event(settings["web"])["event_source"]["arn"]
    iam.create_role(RoleName=CFG.role_name("web"), AssumeRolePolicyDocument="{}")
    lam.create_function(
        FunctionName="boardsite-web",
        Runtime="python3.12",
        Role=settings["web"]["role_arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": tiny_zip()},
        Timeout=settings["web"]["timeout_seconds"],
    )
    mapping = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="boardsite-web", BatchSize=10)
    # The web stage's other SQS triggers (the mail feedback queue): Zappa maps them too, and wire handles them alike.
    specs = {spec.name: spec for spec in resources.queue_specs(CFG.queue_names)}
    for event in settings["web"]["events"]:
        other = event.get("event_source", {}).get("arn", "")
        if other.startswith("arn:aws:sqs:") and other != arn:
            provision._queue(sqs, specs[other.rsplit(":", 1)[1]])
            lam.create_event_source_mapping(EventSourceArn=other, FunctionName="boardsite-web", BatchSize=10)
    # ... and its schedules: one EventBridge rule per scheduled job, targeting the function.
    events = aws.client("events")
    function_arn = lam.get_function(FunctionName="boardsite-web")["Configuration"]["FunctionArn"]
    for n, event in enumerate(e for e in settings["web"]["events"] if "expression" in e):
        events.put_rule(Name=f"boardsite-web-schedule-{n}", ScheduleExpression=event["expression"])
        events.put_targets(Rule=f"boardsite-web-schedule-{n}", Targets=[{"Id": "1", "Arn": function_arn}])
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings))
    yield {"settings": str(path), "mapping": mapping["UUID"], "queue_url": url, "lambda": lam, "sqs": sqs}
    aws.clear_caches()


def test_wire_sets_report_batch_item_failures(deployed, capsys):
    lam = deployed["lambda"]
    assert not lam.get_event_source_mapping(UUID=deployed["mapping"]).get("FunctionResponseTypes")
    assert cli.main(["wire", "web", "-s", deployed["settings"]]) == 0
    assert lam.get_event_source_mapping(UUID=deployed["mapping"])["FunctionResponseTypes"] == [
        "ReportBatchItemFailures"
    ]
    assert "ReportBatchItemFailures, at most 5 at once, set on mapping" in capsys.readouterr().out
    every = lam.list_event_source_mappings(FunctionName="boardsite-web")["EventSourceMappings"]
    assert {m["EventSourceArn"].rsplit(":", 1)[1] for m in every} == {
        "boardsite-image-results",
        "boardsite-mail-feedback",
    }
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in every)
    bounds = {
        job.trigger.queue.setting: job.trigger.max_concurrency
        for job in registry.JOBS.values()
        if job.side == "web" and isinstance(job.trigger, registry.SQSTrigger)
    }
    assert {m["EventSourceArn"].rsplit(":", 1)[1]: m["ScalingConfig"]["MaximumConcurrency"] for m in every} == {
        CFG.queue(setting): bound for setting, bound in bounds.items()
    }
    assert cli.main(["wire", "web", "-s", deployed["settings"]]) == 0  # idempotent
    assert "already set" in capsys.readouterr().out


def test_wire_refuses_a_visibility_timeout_below_six_times_the_function_timeout(deployed, capsys):
    deployed["sqs"].set_queue_attributes(QueueUrl=deployed["queue_url"], Attributes={"VisibilityTimeout": "60"})
    assert cli.main(["wire", "web", "-s", deployed["settings"]]) == 1
    assert "visibility timeout 60 s is below 6 x the function's timeout (30 s)" in capsys.readouterr().err


def test_wire_reports_a_mapping_zappa_failed_to_create(deployed, capsys):
    deployed["lambda"].delete_event_source_mapping(UUID=deployed["mapping"])
    assert cli.main(["wire", "web", "-s", deployed["settings"]]) == 1
    assert "no event source mapping on boardsite-web" in capsys.readouterr().err


# --- the functions stage: mappings made by ARN, the S3 statements, the recorded release ---------------------------


def _policy_sids(lam, function: str) -> list[str]:
    return [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]]


@pytest.fixture
def functions(moto_endpoint, monkeypatch, tmp_path):
    """What `zappa deploy functions` and a few `zappa update functions` leave: the mail mapping made by the
    function's ARN, the bucket's notification, and one random-id S3 statement per update besides Zappa's own."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_REGION", CFG.region)
    aws.clear_caches()
    settings = build_settings(CFG)
    stage = settings["functions"]
    name = wire.function_name("functions", stage)
    sqs, lam, iam, s3 = aws.client("sqs"), aws.client("lambda"), aws.client("iam"), aws.client("s3")
    specs = {spec.name: spec for spec in resources.queue_specs(CFG.queue_names)}
    (source,) = wire.s3_sources(stage)
    bucket = source["arn"].removeprefix("arn:aws:s3:::")
    s3.create_bucket(Bucket=bucket)
    iam.create_role(RoleName=stage["role_arn"].rsplit("/", 1)[1], AssumeRolePolicyDocument="{}")
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=stage["role_arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": tiny_zip()},
        Timeout=stage["timeout_seconds"],
        Publish=True,
    )["FunctionArn"]
    for queue in wire.sqs_bounds(stage):
        provision._queue(sqs, specs[queue.rsplit(":", 1)[1]])
        lam.create_event_source_mapping(EventSourceArn=queue, FunctionName=arn, BatchSize=10)  # as Zappa: by ARN
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "Id": name,
                    "LambdaFunctionArn": arn,
                    "Events": source["events"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": source["prefix"]}]}},
                }
            ]
        },
    )
    lam.add_permission(  # Zappa's S3EventSource.add: a fixed id, no SourceAccount
        FunctionName=name,
        StatementId=f"s3-{bucket}",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=source["arn"],
    )
    for n in range(30):  # Zappa's create_event_permission, once per update: a random id each time
        lam.add_permission(
            FunctionName=name,
            StatementId=f"RANDOM{n:02d}",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=source["arn"],
            SourceAccount=CFG.account,
        )
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings))
    yield {"settings": str(path), "stage": stage, "name": name, "arn": arn, "bucket": bucket, "lambda": lam, "s3": s3}
    aws.clear_caches()


def test_wire_finds_mappings_zappa_made_by_arn(functions, capsys):
    lam = functions["lambda"]
    assert lam.list_event_source_mappings(FunctionName=functions["name"])["EventSourceMappings"] == []  # moto
    assert cli.main(["wire", "functions", "-s", functions["settings"]]) == 0, capsys.readouterr().err
    mappings = lam.list_event_source_mappings(FunctionName=functions["arn"])["EventSourceMappings"]
    send_email = registry.get("send_email").trigger
    (mapping,) = [m for m in mappings if m["EventSourceArn"].endswith(":" + CFG.queue(send_email.queue.setting))]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": send_email.max_concurrency}
    assert len(mappings) == sum(registry.polled(j) is not None for j in registry.JOBS.values() if j.side == "offload")


def test_wire_keeps_one_s3_statement_limited_to_the_account(functions, capsys):
    lam, name = functions["lambda"], functions["name"]
    assert len(_policy_sids(lam, name)) == 31
    assert cli.main(["wire", "functions", "-s", functions["settings"]]) == 0, capsys.readouterr().err
    (statement,) = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
    assert statement["Sid"] == wire.permission_sid(f"arn:aws:s3:::{functions['bucket']}")
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnLike": {"AWS:SourceArn": f"arn:aws:s3:::{functions['bucket']}"},
        "StringEquals": {"AWS:SourceAccount": CFG.account},
    }
    assert "removed 31 other S3 statement(s)" in capsys.readouterr().out
    assert cli.main(["wire", "functions", "-s", functions["settings"]]) == 0  # idempotent
    assert _policy_sids(lam, name) == [statement["Sid"]]


def test_wire_leaves_no_s3_statement_when_nothing_s3_triggers_the_function(functions, capsys):
    stage = json.loads(json.dumps(functions["stage"]))
    stage["events"] = [e for e in stage["events"] if not e["event_source"]["arn"].startswith("arn:aws:s3:::")]
    done, _ = wire.wire("functions", stage)
    assert "removed 31 other S3 statement(s)" in "\n".join(done)
    with pytest.raises(functions["lambda"].exceptions.ResourceNotFoundException):
        functions["lambda"].get_policy(FunctionName=functions["name"])  # an empty policy is no policy


def test_wire_reports_a_missing_notification_and_a_left_over_mapping(functions, tmp_path, capsys):
    functions["s3"].put_bucket_notification_configuration(Bucket=functions["bucket"], NotificationConfiguration={})
    stage = json.loads(json.dumps(functions["stage"]))
    stage["events"] = [e for e in stage["events"] if not e["event_source"]["arn"].startswith("arn:aws:sqs:")]
    _, problems = wire.wire("functions", stage)
    assert any("no notification to" in p for p in problems)
    assert any("mapped to" in p and "not an event of the settings" in p for p in problems)


def test_wire_checks_the_bounds_against_reserved_concurrency(functions):
    functions["lambda"].put_function_concurrency(FunctionName=functions["name"], ReservedConcurrentExecutions=2)
    _, problems = wire.wire("functions", functions["stage"])
    assert any("its reserved concurrency is 2" in p for p in problems)


def test_wire_records_what_latest_runs_as_a_version(functions, capsys):
    """Without SnapStart Zappa publishes the code before the configuration: the release's last version is wire's."""
    lam, name = functions["lambda"], functions["name"]
    lam.update_function_configuration(FunctionName=name, MemorySize=2048)
    assert cli.main(["wire", "functions", "-s", functions["settings"]]) == 0
    versions = [v for v in lam.list_versions_by_function(FunctionName=name)["Versions"] if v["Version"] != "$LATEST"]
    assert [v["MemorySize"] for v in versions] == [128, 2048]
    assert "published version 2" in capsys.readouterr().out
    assert cli.main(["wire", "functions", "-s", functions["settings"]]) == 0
    assert len(lam.list_versions_by_function(FunctionName=name)["Versions"]) == 3  # nothing new to record


def test_commands_say_what_aws_answered_instead_of_a_traceback(moto_endpoint, monkeypatch, tmp_path, capsys):
    """The operator's review: `wire` on a stage not deployed yet, or without credentials, was a botocore traceback."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    aws.clear_caches()
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(build_settings(CFG)))
    assert cli.main(["wire", "web", "-s", str(path)]) == 1
    err = capsys.readouterr().err
    assert "python -m deploy wire: AWS refused" in err
    assert "has the stage been deployed?" in err
    # No credentials anywhere (and no local AWS, whose clients get dummy ones): botocore refuses before any request.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.clear_caches()
    assert cli.main(["status", "web", "-s", str(path)]) == 1
    assert "no AWS credentials" in capsys.readouterr().err
    aws.clear_caches()
    with pytest.raises(SystemExit):
        cli.main(["check", "web", "-s", str(path), "--url", "photos.example.com"])
    assert "give the site's address with its scheme, e.g. https://photos.example.com" in capsys.readouterr().err
    # A settings file that is not there (a typo'd -s): said in a line too.
    for command in ("template", "policy"):
        args = [command, "-s", str(tmp_path / "missing.json")] + (["functions"] if command == "policy" else [])
        assert cli.main(args) == 1
        assert f"cannot read {tmp_path / 'missing.json'}: No such file or directory" in capsys.readouterr().err
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(SystemExit, match="no web or functions stage: write them with `python -m deploy configure`"):
        cli.main(["policy", "web", "-s", str(tmp_path / "empty.json")])
    assert cli.main(["template", "-s", str(tmp_path)]) == 1
    assert f"cannot read {tmp_path}: Is a directory" in capsys.readouterr().err
