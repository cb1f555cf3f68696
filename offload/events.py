"""Typed views of the AWS events the functions receive, parsed at the edge (as aws-lambda-powertools does).

Handlers turn the raw event into these small objects first; the work itself takes plain values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

# The field that makes an event a shadow run's (boardsite/core/jobs.py ``shadow`` sets it; a job whose registry entry
# declares ``shadow`` honours it; offload/runs.py records such runs as shadow runs). A queue carries only message
# bodies, so an SQS event's mark is in each record's body (``mark_shadow``).
SHADOW_MARK = "boardsite_shadow"


def mark_shadow(event: dict[str, Any], mark: dict[str, Any]) -> dict[str, Any]:
    """``event`` marked as a shadow run's: on the event, and in each SQS record's JSON object body."""
    records = []
    for record in event.get("Records") or []:
        if isinstance(record, dict) and record.get("eventSource") == "aws:sqs":
            try:
                body = json.loads(record.get("body", ""))
            except ValueError:
                body = None
            if isinstance(body, dict):
                record = {**record, "body": json.dumps({**body, SHADOW_MARK: mark})}
        records.append(record)
    return {**event, **({"Records": records} if records else {}), SHADOW_MARK: mark}


def shadow_mark(event: Any) -> dict[str, Any] | None:
    """The shadow mark of an event (or of the body of its first SQS record), None for a real run's."""
    if not isinstance(event, dict):
        return None
    if isinstance(mark := event.get(SHADOW_MARK), dict):
        return mark
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        body = records[0].get("body")
        if isinstance(body, str) and SHADOW_MARK in body:  # parsed only when it may be there
            try:
                mark = json.loads(body).get(SHADOW_MARK)
            except (ValueError, AttributeError):
                return None
            return mark if isinstance(mark, dict) else None
    return None


@dataclass(frozen=True)
class S3ObjectCreated:
    bucket: str
    key: str
    size: int | None
    etag: str | None
    event_name: str


def _s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    records = []
    for record in event.get("Records") or []:
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:s3":
            records.append(record)
        elif source == "aws:sqs":  # S3 -> SQS -> Lambda: the S3 event is the message body
            records.extend(_s3_records(json.loads(record["body"])))
        elif source == "aws:sns":  # S3 -> SNS -> Lambda
            records.extend(_s3_records(json.loads(record["Sns"]["Message"])))
    return records


def parse_s3_event(event: dict[str, Any]) -> list[S3ObjectCreated]:
    """The ObjectCreated records of an S3 event (also when wrapped in SQS or SNS); test events yield nothing."""
    if event.get("Event") == "s3:TestEvent":
        return []
    created = []
    for record in _s3_records(event):
        name = record.get("eventName", "")
        if not name.startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        created.append(
            S3ObjectCreated(
                bucket=s3["bucket"]["name"],
                # Keys arrive URL-encoded (moto even encodes "/" as %2F).
                key=unquote_plus(obj["key"]),
                size=obj.get("size"),
                etag=obj.get("eTag") or obj.get("etag"),
                event_name=name,
            )
        )
    return created


def s3_object_created_event(*, bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """An S3 ``ObjectCreated:Post`` event for one object, as S3 would deliver it.

    The site builds this from a HEAD of the object when it runs the job itself (inline or Celery), so the function
    body sees the same shape in every mode.
    """
    import time
    from urllib.parse import quote_plus

    now = time.time()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "boardsite-originals",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"')},
                },
            }
        ]
    }


def sqs_event(
    bodies: list[tuple[str, str]], *, queue_arn: str = "", attributes: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Lambda SQS event from ``(message_id, body)`` pairs; ``attributes`` as SQS gave them (default: sent now,
    first receive), which the run records read (offload/runs.py)."""
    import time

    attributes = attributes or {"SentTimestamp": str(int(time.time() * 1000)), "ApproximateReceiveCount": "1"}
    return {
        "Records": [
            {
                "messageId": mid,
                "body": body,
                "attributes": dict(attributes),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
            }
            for mid, body in bodies
        ]
    }


def sqs_bodies(event: dict[str, Any]) -> list[str]:
    """The message bodies of a Lambda SQS event."""
    return [r["body"] for r in event.get("Records") or [] if r.get("eventSource") == "aws:sqs"]
