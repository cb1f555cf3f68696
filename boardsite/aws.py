"""The one door to AWS for the web side: the boto3 clients the site uses, configured from settings."""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config
from django.conf import settings

_CONFIG = Config(signature_version="s3v4", retries={"max_attempts": 4, "mode": "standard"})


@functools.lru_cache(maxsize=16)
def _client(service: str, region: str, endpoint_url: str | None) -> Any:
    kwargs: dict[str, Any] = {}
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=endpoint_url, config=_CONFIG, **kwargs
    )


def client(service: str) -> Any:
    return _client(service, settings.AWS_REGION, settings.AWS_ENDPOINT_URL)


def offload_environment() -> dict[str, str]:
    """The environment the offload functions need to see the same AWS as the site (inline runs, subprocesses)."""
    env = {
        "AWS_REGION": settings.AWS_REGION,
        "BOARDSITE_BUCKET": settings.BOARDSITE_BUCKET,
        "BOARDSITE_RESULTS_QUEUE": settings.BOARDSITE_RESULTS_QUEUE,
        "UPLOAD_MAX_BYTES": str(settings.UPLOAD_MAX_BYTES),
    }
    if settings.AWS_ENDPOINT_URL:
        env["AWS_ENDPOINT_URL"] = settings.AWS_ENDPOINT_URL
    return env
