"""`python -m deploy wire <stage>`: run after every `zappa deploy|update|schedule <stage>`.

Zappa 0.63 leaves four things undone or wrong on a stage's function (read in zappa/core.py and zappa/utilities.py),
and this finishes them; it changes nothing that is already right, so it can run any time:

- SQS event source mappings: Zappa creates them without ``FunctionResponseTypes`` and without a concurrency bound.
  Without ``ReportBatchItemFailures`` Lambda ignores the handler's ``{"batchItemFailures": [...]}`` and retries (or
  deletes) whole batches; without ``ScalingConfig.MaximumConcurrency`` the pollers scale past the function's
  reserved concurrency, and throttled messages count receives towards the dead-letter queue. Both are set on every
  SQS mapping of the function, the bound from the job's trigger in ``offload/registry.py``. Mappings are looked up
  by the function's ARN, as Zappa creates them (and by its name too: AWS accepts either).
- The function's resource policy: every ``zappa update`` or ``schedule`` of an S3-triggered function adds a
  statement for ``s3.amazonaws.com`` under a random id, and nothing removes them: after about 50 updates AWS refuses
  the next one (``PolicyLengthExceededException``, 20 KB). This keeps one statement per bucket of the settings,
  ``boardsite-s3-<bucket>``, limited to this account (``SourceAccount``), and removes the other S3 statements
  (Zappa's random ones and its ``s3-<bucket>``, which it puts back on the next update).
- S3 -> SQS for a job whose S3 events go through its own queue (``S3Trigger.via_queue``): the bucket's notification
  to that queue, added beside Zappa's S3 -> Lambda one (the template declares none: a stack update would replace
  the whole notification setting).
- Without SnapStart, Zappa publishes the code before it applies the configuration, so no version holds what
  ``$LATEST`` runs: it is published here, so that each release's last version holds its code and its configuration
  (``python -m deploy rollback`` restores by that). SnapStart stages: Zappa publishes it itself.
- Checks of what Zappa only logs: every SQS event of the settings has its mapping, every S3 event its bucket
  notification; each trigger queue's visibility timeout is at least 6x the function's timeout; the mappings'
  concurrency bounds add up to less than the function's reserved concurrency, when it has one.

    python -m deploy wire web [-s zappa_settings.json]

Exits 1 (after wiring what it could) when a check fails. AWS_ENDPOINT_URL points it at the local AWS (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy import resources, rollback
from offload import registry
from offload.aws import make_client
from offload.registry import SQS_VISIBILITY_FACTOR

REPORT_FAILURES = "ReportBatchItemFailures"
S3_PRINCIPAL = "s3.amazonaws.com"
function_name = rollback.function_name


def _mappings(lam: Any, function: str, arn: str) -> list[dict[str, Any]]:
    """The function's event source mappings, looked up by ARN (how Zappa creates them) and by name, once each."""
    found: dict[str, dict[str, Any]] = {}
    for ref in (arn, function):
        for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=ref):
            for mapping in page["EventSourceMappings"]:
                found.setdefault(mapping["UUID"], mapping)
    return list(found.values())


def sqs_bounds(stage: dict[str, Any]) -> dict[str, int]:
    """Queue ARN -> MaximumConcurrency, for each SQS event of the stage (from the job the event runs)."""
    jobs = {job.handler: job for job in registry.JOBS.values()}
    out: dict[str, int] = {}
    for event in stage.get("events", []):
        arn = event.get("event_source", {}).get("arn", "")
        job = jobs.get(event.get("function", ""))
        if arn.startswith("arn:aws:sqs:"):
            bound = registry.max_concurrency(job) if job else None
            out[arn] = bound or registry.SQS_MIN_CONCURRENCY
    return out


def s3_sources(stage: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["event_source"]
        for e in stage.get("events", [])
        if e.get("event_source", {}).get("arn", "").startswith("arn:aws:s3:::")
    ]


def permission_sid(bucket_arn: str) -> str:
    # Lambda's statement ids: letters, digits, '-' and '_' (bucket names add '.'), at most 100 characters.
    return ("boardsite-s3-" + re.sub(r"[^A-Za-z0-9_-]", "_", bucket_arn.removeprefix("arn:aws:s3:::")))[:100]


def _policy(lam: Any, function: str) -> list[dict[str, Any]]:
    try:
        return json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise


def _service(statement: dict[str, Any]) -> str:
    principal = statement.get("Principal")
    return principal.get("Service", "") if isinstance(principal, dict) else ""


def tidy_s3_permissions(lam: Any, function: str, arn: str, buckets: list[str]) -> list[str]:
    """One statement per bucket that triggers the function (limited to its account); no other S3 statement."""
    done: list[str] = []
    account = arn.split(":")[4]
    statements = [s for s in _policy(lam, function) if _service(s) == S3_PRINCIPAL]
    keep = set()
    for bucket in buckets:
        sid = permission_sid(bucket)
        keep.add(sid)
        if not any(s.get("Sid") == sid for s in statements):
            lam.add_permission(
                FunctionName=function,
                StatementId=sid,
                Action="lambda:InvokeFunction",
                Principal=S3_PRINCIPAL,
                SourceArn=bucket,
                SourceAccount=account,
            )
            done.append(f"policy: {sid} lets {bucket} (account {account}) invoke {function}")
    removed = [s["Sid"] for s in statements if s.get("Sid") not in keep]
    for sid in removed:  # after the one kept is in place: S3 is never left without a statement
        lam.remove_permission(FunctionName=function, StatementId=sid)
    if removed:
        done.append(f"policy: removed {len(removed)} other S3 statement(s) ({', '.join(sorted(removed))})")
    return done


def _notified(s3: Any, source: dict[str, Any], arn: str) -> bool:
    bucket = source["arn"].removeprefix("arn:aws:s3:::")
    configurations = s3.get_bucket_notification_configuration(Bucket=bucket).get("LambdaFunctionConfigurations", [])
    for configuration in configurations:
        rules = configuration.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        prefix = next((r["Value"] for r in rules if r["Name"].lower() == "prefix"), "")
        if configuration["LambdaFunctionArn"] == arn and prefix == source.get("prefix", ""):
            return True
    return False


def _prefix_rules(configuration: dict[str, Any]) -> list[tuple[str, str]]:
    # S3 answers "Prefix" where it was given "prefix".
    return [
        (r["Name"].lower(), r["Value"]) for r in configuration.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    ]


def notify_queues(s3: Any, bucket: str, wanted: list[tuple[str, list[str], str]]) -> list[str]:
    """Make the bucket notify each queue of ``wanted`` ((prefix, events, queue ARN): the S3-triggered jobs that take
    their events through their queue), keeping every other notification (Zappa's S3 -> Lambda ones). Returns what
    it added."""
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    queues = current.setdefault("QueueConfigurations", [])
    added = []
    for prefix, events, queue_arn in wanted:
        if any(q["QueueArn"] == queue_arn and _prefix_rules(q) == [("prefix", prefix)] for q in queues):
            continue
        queues.append(resources.queue_notification(prefix, events, queue_arn))
        added.append(f"s3://{bucket}/{prefix}: notifies {queue_arn}")
    if added:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)
    return added


def missing_schedules(stage: dict[str, Any], events: Any, arn: str, function: str) -> list[str]:
    """Schedules of the settings with no EventBridge rule on the function (after `zappa unschedule`, say): the sweep
    that settles lost uploads is one of them. Counted by expression (Zappa hashes long rule names)."""
    wanted = [e for e in stage.get("events", []) if "expression" in e]
    if not wanted:
        return []
    pages = events.get_paginator("list_rule_names_by_target").paginate(TargetArn=arn)
    found = [events.describe_rule(Name=name).get("ScheduleExpression", "") for p in pages for name in p["RuleNames"]]
    problems = []
    for event in wanted:
        if event["expression"] in found:
            found.remove(event["expression"])
        else:
            problems.append(
                f"{event['function']} ({event['expression']}): no schedule rule on {function} "
                "(`python -m deploy schedule` puts it back)"
            )
    return problems


def wire(stage_name: str, stage: dict[str, Any], *, endpoint_url: str | None = None) -> tuple[list[str], list[str]]:
    """Wire the stage's function. Returns (what was done, problems)."""
    region = stage["aws_region"]
    lam = make_client("lambda", region, endpoint_url)
    sqs = make_client("sqs", region, endpoint_url)
    function = function_name(stage_name, stage)
    configuration = lam.get_function_configuration(FunctionName=function)
    timeout, arn = configuration["Timeout"], configuration["FunctionArn"]
    done: list[str] = []
    problems: list[str] = []
    bounds = sqs_bounds(stage)
    mappings = [m for m in _mappings(lam, function, arn) if m["EventSourceArn"].startswith("arn:aws:sqs:")]
    for mapping in mappings:
        queue_arn = mapping["EventSourceArn"]
        bound = bounds.get(queue_arn, registry.SQS_MIN_CONCURRENCY)
        wanted = {"FunctionResponseTypes": [REPORT_FAILURES], "ScalingConfig": {"MaximumConcurrency": bound}}
        stale = {k: v for k, v in wanted.items() if mapping.get(k) != v}
        if stale:
            lam.update_event_source_mapping(UUID=mapping["UUID"], **stale)
            done.append(f"{queue_arn}: {REPORT_FAILURES}, at most {bound} at once, set on mapping {mapping['UUID']}")
        else:
            done.append(f"{queue_arn}: {REPORT_FAILURES} and at most {bound} at once already set")
        _, _, _, _, account, queue = queue_arn.split(":")
        url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
        visibility = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"][
                "VisibilityTimeout"
            ]
        )
        if visibility < SQS_VISIBILITY_FACTOR * timeout:
            problems.append(
                f"{queue_arn}: visibility timeout {visibility} s is below {SQS_VISIBILITY_FACTOR} x the function's "
                f"timeout ({timeout} s); raise it in the template (offload/registry.py visibility_timeout)"
            )
    mapped = {m["EventSourceArn"] for m in mappings}
    for queue_arn in sorted(mapped - set(bounds)):
        problems.append(
            f"{queue_arn}: mapped to {function} but not an event of the settings (left behind when its job moved? "
            "it would run twice): delete the mapping, or `python -m deploy move` the job back"
        )
    for queue_arn in bounds:
        if queue_arn not in mapped:
            problems.append(
                f"{queue_arn}: no event source mapping on {function} (did `zappa deploy` log an error? "
                "`python -m deploy schedule` creates it)"
            )
    reserved = lam.get_function_concurrency(FunctionName=function).get("ReservedConcurrentExecutions")
    polled = sum(bounds.get(m["EventSourceArn"], registry.SQS_MIN_CONCURRENCY) for m in mappings)
    if reserved is not None and mappings and polled >= reserved:
        problems.append(
            f"{function}: its queues may take {polled} instances at once, its reserved concurrency is {reserved}: "
            "pages would be throttled; raise the concurrency (configure --concurrency)"
        )
    sources = s3_sources(stage)
    done += tidy_s3_permissions(lam, function, arn, sorted({s["arn"] for s in sources}))
    s3 = make_client("s3", region, endpoint_url)
    for source in sources:
        if not _notified(s3, source, arn):
            problems.append(
                f"{source['arn']}: no notification to {function} for prefix {source.get('prefix', '')!r} "
                "(Zappa logs 'Unable to add S3 event source'; `python -m deploy schedule` adds it)"
            )
    bucket = stage.get("environment_variables", {}).get("BOARDSITE_BUCKET", "")
    jobs = {job.handler: job for job in registry.JOBS.values()}
    via_queue = [  # (prefix, events, the queue's ARN from the settings' SQS event of the job)
        (job.trigger.notify_prefix, list(job.trigger.events), event["event_source"]["arn"])
        for event in stage.get("events", [])
        if (job := jobs.get(event.get("function", ""))) is not None
        and isinstance(job.trigger, registry.S3Trigger)
        and job.trigger.via_queue
        and "event_source" in event
    ]
    if bucket and via_queue:
        done += notify_queues(s3, bucket, via_queue)
    problems += missing_schedules(stage, make_client("events", region, endpoint_url), arn, function)
    if not rollback.stage_alias(stage):
        live = rollback.read_live(lam, function, None)
        recorded = rollback.record(lam, live)
        if recorded:
            done.append(recorded)
    return done, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy wire", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
