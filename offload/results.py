"""Results of offload jobs travel as events: JSON messages on the results queue, applied by the web side."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, registry
from offload.config import AVATARS_SEGMENT, ORIGINALS_PREFIX, VARIANTS_PREFIX

Report = Callable[[dict[str, Any]], None]

# The shape of a processing result, shared by the processor and the web side that applies it. Kept here, not in the
# processor's module, so the web stage reads it without importing the processor (and Pillow).
RESULT_TYPE = registry.IMAGE_PROCESSED
# The mail job's report of a mail SES refused for good (``message_id``, ``status`` "rejected", ``error``): the site
# marks the notification it came from (message id ``notification-<id>``) rejected.
MAIL_RESULT_TYPE = registry.MAIL_DELIVERY
# The processor's result for a profile picture (``user_id``, ``avatar_id`` instead of a board and an image): applied
# to the person's profile, never to a board.
AVATAR_RESULT_TYPE = registry.AVATAR_PROCESSED

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


def parse_avatar_key(key: str) -> tuple[str, str] | None:
    """``originals/[<runtime>/]avatars/<user>/<avatar id>.<ext>`` -> (user id, avatar id); None for any other key
    (a photo's included: ``parse_key`` refuses avatar keys, so code written for photos never mistakes one)."""
    parts = PurePosixPath(key).parts
    if len(parts) == 5 and parts[1] in registry.MODES:
        parts = (parts[0], *parts[2:])
    if len(parts) != 4 or parts[0] + "/" != ORIGINALS_PREFIX or parts[1] != AVATARS_SEGMENT:
        return None
    user_id, avatar_id = parts[2], PurePosixPath(parts[3]).stem
    if not (user_id.isascii() and user_id.isdigit()) or not avatar_id:
        return None
    return user_id, avatar_id


def avatar_variants_prefix(user_id: object, avatar_id: object) -> str:
    return f"{VARIANTS_PREFIX}{AVATARS_SEGMENT}/{user_id}/{avatar_id}/"


def variants_prefix(key: str) -> str:
    """Where the variants (and the stored result) of the original ``key`` (a photo's or an avatar's) go."""
    if (avatar := parse_avatar_key(key)) is not None:
        return avatar_variants_prefix(*avatar)
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
