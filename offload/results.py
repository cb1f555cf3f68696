"""Results of offload jobs travel as events: JSON messages on the results queue, applied by the web side."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, config

Report = Callable[[dict[str, Any]], None]

# Each reported result is also stored beside the variants: a redelivered event finds it and reports nothing again,
# and the site's sweep applies it when the report itself was lost.
MANIFEST = "result.json"


def publish(result: dict[str, Any]) -> None:
    """Send a result to the results queue (the default report of a function running as a Lambda)."""
    cfg = config.load()
    aws.client("sqs").send_message(QueueUrl=aws.queue_url(cfg.results_queue), MessageBody=json.dumps(result))


def read_manifest(s3: Any, bucket: str, variants_prefix: str) -> dict[str, Any] | None:
    """The result stored for an image (None when none was reported yet)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=variants_prefix + MANIFEST)["Body"].read()
    except ClientError as exc:
        if aws.is_missing(exc):
            return None
        raise
    try:
        result = json.loads(body)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None
