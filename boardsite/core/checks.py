"""System checks for the per-job switch: a wrong OFFLOAD_MODES fails at start-up with a clear message."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from offload import registry


@register()
def check_offload_modes(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    for job, mode in settings.OFFLOAD_MODES.items():
        if job not in registry.JOBS:
            errors.append(
                Error(
                    f"OFFLOAD_MODES names an unknown job {job!r}",
                    hint=f"known: {', '.join(registry.JOBS)}",
                    id="boardsite.E001",
                )
            )
        elif mode not in registry.MODES:
            errors.append(
                Error(
                    f"OFFLOAD_MODES[{job!r}] is {mode!r}",
                    hint=f"use one of {', '.join(registry.MODES)}",
                    id="boardsite.E002",
                )
            )
    if (
        settings.OFFLOAD_MODES.get("process_image") == "lambda"
        and settings.OFFLOAD_MODES.get("apply_image_result", "inline") != "lambda"
    ):
        errors.append(
            Error(
                "process_image runs as a Lambda function, so its results arrive on the results queue, "
                "which only apply_image_result in lambda mode consumes",
                hint="set OFFLOAD_MODES apply_image_result=lambda",
                id="boardsite.E003",
            )
        )
    for job in registry.JOBS.values():
        if isinstance(job.trigger, registry.ScheduleTrigger) and settings.OFFLOAD_MODES.get(job.name) == "inline":
            errors.append(
                Error(
                    f"{job.name} runs on a schedule; nothing would call it inline",
                    hint="use celery (beat) or lambda (a Zappa schedule; locally `manage.py runjobs`)",
                    id="boardsite.E004",
                )
            )
    from boardsite.images.sweep import GRACE_SECONDS

    if settings.PROCESSING_GIVE_UP_SECONDS <= settings.UPLOAD_TICKET_SECONDS + GRACE_SECONDS:
        errors.append(
            Error(
                "PROCESSING_GIVE_UP_SECONDS must be longer than UPLOAD_TICKET_SECONDS plus "
                f"{GRACE_SECONDS} s, or uploads fail before the sweep can start them",
                hint=f"set it above {settings.UPLOAD_TICKET_SECONDS + GRACE_SECONDS}",
                id="boardsite.E005",
            )
        )
    return errors
