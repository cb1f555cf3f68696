"""The one door to AWS for the web side: the same client factory as the functions, configured from settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from offload.aws import make_client


def client(service: str, *, quick: bool = False) -> Any:
    """``quick``: one attempt with short timeouts, for a request that must not wait while AWS is slow."""
    return make_client(service, settings.AWS_REGION, settings.AWS_ENDPOINT_URL, quick)


def offload_environment() -> dict[str, str]:
    """The environment the offload functions need to see the same AWS as the site (inline runs, subprocesses)."""
    env = {
        "AWS_REGION": settings.AWS_REGION,
        "BOARDSITE_BUCKET": settings.BOARDSITE_BUCKET,
        "UPLOAD_MAX_BYTES": str(settings.UPLOAD_MAX_BYTES),
    }
    if settings.AWS_ENDPOINT_URL:
        env["AWS_ENDPOINT_URL"] = settings.AWS_ENDPOINT_URL
    return env
