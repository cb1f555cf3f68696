"""Results of offload jobs travel as events: JSON messages on the results queue, applied by the web side."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from offload import aws, config

Report = Callable[[dict[str, Any]], None]


def publish(result: dict[str, Any]) -> None:
    """Send a result to the results queue (the default report of a function running as a Lambda)."""
    cfg = config.load()
    aws.client("sqs").send_message(QueueUrl=aws.queue_url(cfg.results_queue), MessageBody=json.dumps(result))
