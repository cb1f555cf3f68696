"""Results of offload jobs travel as events: JSON messages on the results queue, applied by the web side."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, registry
from offload.config import ORIGINALS_PREFIX, VARIANTS_PREFIX

Report = Callable[[dict[str, Any]], None]

# The shape of a processing result, shared by the processor and the web side that applies it. Kept here, not in the
# processor's module, so the web stage reads it without importing the processor (and Pillow).
RESULT_TYPE = registry.IMAGE_PROCESSED
# The mail job's report of a mail SES refused for good (``message_id``, ``status`` "rejected", ``error``): the site
# marks the notification it came from (message id ``notification-<id>``) rejected.
MAIL_RESULT_TYPE = registry.MAIL_DELIVERY

# Each reported result is also stored beside the variants: a redelivered event finds it and reports nothing again,
# and the site's sweep applies it when the report itself was lost.
MANIFEST = "result.json"


def parse_key(key: str) -> tuple[str, str]:
    """``originals/[<runtime>/]<board>/<image id>.<ext>`` -> (board id, image id). The runtime is where the upload was
    routed when it was signed (``registry.S3Trigger.pin``); keys signed before routing have none."""
    parts = PurePosixPath(key).parts
    if len(parts) == 4 and parts[1] in registry.MODES:
        parts = (parts[0], *parts[2:])
    if len(parts) != 3 or parts[0] + "/" != ORIGINALS_PREFIX:
        raise ValueError(f"not an original's key: {key!r}")
    return parts[1], PurePosixPath(parts[2]).stem


def variants_prefix(key: str) -> str:
    """Where the variants (and the stored result) of the original ``key`` go."""
    board_id, image_id = parse_key(key)
    return f"{VARIANTS_PREFIX}{board_id}/{image_id}/"


def publish(result: dict[str, Any]) -> None:
    """Send a result to the results queue (the default report of a function running as a Lambda)."""
    queue = aws.queue_url(registry.RESULTS.resolved())
    aws.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(result))


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
