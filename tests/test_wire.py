"""`python -m deploy wire`: partial batch responses on the deployed SQS mappings, checked on the local AWS."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from deploy import __main__ as cli
from deploy.stages import DeployConfig, build_settings
from offload import aws, provision

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
    results = next(s for s in provision.queue_specs(CFG.queue_names) if s.name == "boardsite-image-results")
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
    specs = {spec.name: spec for spec in provision.queue_specs(CFG.queue_names)}
    for event in settings["web"]["events"]:
        other = event.get("event_source", {}).get("arn", "")
        if other.startswith("arn:aws:sqs:") and other != arn:
            provision._queue(sqs, specs[other.rsplit(":", 1)[1]])
            lam.create_event_source_mapping(EventSourceArn=other, FunctionName="boardsite-web", BatchSize=10)
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
    assert "ReportBatchItemFailures set" in capsys.readouterr().out
    every = lam.list_event_source_mappings(FunctionName="boardsite-web")["EventSourceMappings"]
    assert {m["EventSourceArn"].rsplit(":", 1)[1] for m in every} == {
        "boardsite-image-results",
        "boardsite-mail-feedback",
    }
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in every)
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
