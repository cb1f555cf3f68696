"""`python -m deploy wire <stage>`: run after `zappa deploy|update <stage>`.

Zappa 0.63 creates the SQS event source mappings but cannot set ``FunctionResponseTypes``: without
``ReportBatchItemFailures`` Lambda ignores the handler's ``{"batchItemFailures": [...]}`` and retries (or deletes)
the whole batch. This sets it on every SQS mapping of the stage's function, and checks what Zappa only logs:

- every SQS event in the settings has its mapping (Zappa logs "Unable to add event source" and carries on);
- each trigger queue's visibility timeout is at least 6x the function's timeout (AWS's guidance: a message must not
  reappear while the poller still retries a throttled or slow batch).

    python -m deploy wire web [-s zappa_settings.json]

Exits 1 (after wiring what it could) when a check fails. AWS_ENDPOINT_URL points it at the local AWS (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from offload.aws import make_client
from offload.registry import SQS_VISIBILITY_FACTOR

REPORT_FAILURES = "ReportBatchItemFailures"


def function_name(stage_name: str, stage: dict[str, Any]) -> str:
    # Zappa names the function "<project_name>-<stage>" (slugified; our names are slugs already).
    return f"{stage['project_name']}-{stage_name}"


def _mappings(lam: Any, function: str) -> list[dict[str, Any]]:
    pages = lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function)
    return [m for page in pages for m in page["EventSourceMappings"]]


def wire(stage_name: str, stage: dict[str, Any], *, endpoint_url: str | None = None) -> tuple[list[str], list[str]]:
    """Wire the stage's SQS mappings. Returns (what was done, problems)."""
    region = stage["aws_region"]
    lam = make_client("lambda", region, endpoint_url)
    sqs = make_client("sqs", region, endpoint_url)
    function = function_name(stage_name, stage)
    timeout = lam.get_function_configuration(FunctionName=function)["Timeout"]
    done: list[str] = []
    problems: list[str] = []
    mappings = [m for m in _mappings(lam, function) if m["EventSourceArn"].startswith("arn:aws:sqs:")]
    for mapping in mappings:
        arn = mapping["EventSourceArn"]
        if REPORT_FAILURES not in (mapping.get("FunctionResponseTypes") or []):
            lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionResponseTypes=[REPORT_FAILURES])
            done.append(f"{arn}: {REPORT_FAILURES} set on mapping {mapping['UUID']}")
        else:
            done.append(f"{arn}: {REPORT_FAILURES} already set")
        _, _, _, _, account, queue = arn.split(":")
        url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
        visibility = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"][
                "VisibilityTimeout"
            ]
        )
        if visibility < SQS_VISIBILITY_FACTOR * timeout:
            problems.append(
                f"{arn}: visibility timeout {visibility} s is below {SQS_VISIBILITY_FACTOR} x the function's "
                f"timeout ({timeout} s); raise it in the template (offload/registry.py visibility_timeout)"
            )
    mapped = {m["EventSourceArn"] for m in mappings}
    for event in stage.get("events", []):
        arn = event.get("event_source", {}).get("arn", "")
        if arn.startswith("arn:aws:sqs:") and arn not in mapped:
            problems.append(f"{arn}: no event source mapping on {function} (did `zappa deploy` log an error?)")
    return done, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy wire", description=__doc__)
    parser.add_argument("stage")
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    args = parser.parse_args(argv)
    settings = json.loads(Path(args.settings).read_text())
    if args.stage not in settings:
        parser.error(f"no stage {args.stage!r} in {args.settings}")
    done, problems = wire(args.stage, settings[args.stage], endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    for line in done:
        print(line)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if problems else 0
