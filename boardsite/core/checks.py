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
    for job in sorted(set(settings.OFFLOAD_PINNED) - set(registry.JOBS)):
        errors.append(
            Error(
                f"OFFLOAD_PINNED names an unknown job {job!r}",
                hint=f"known: {', '.join(registry.JOBS)}",
                id="boardsite.E008",
            )
        )
    for job, runtime in settings.OFFLOAD_FALLBACKS.items():
        if job not in registry.JOBS or runtime not in ("inline", "celery"):
            errors.append(
                Error(
                    f"OFFLOAD_FALLBACKS[{job!r}] is {runtime!r}",
                    hint="name a job, and inline or celery: where its work goes when Lambda keeps throttling",
                    id="boardsite.E009",
                )
            )
    if problem := registry.modes_problem(settings.OFFLOAD_MODES):
        errors.append(
            Error(problem, hint="change OFFLOAD_MODES as it says (or the job's registry entry)", id="boardsite.E003")
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
    for job in registry.JOBS.values():
        for name in job.outlives:  # each job's own constraints, declared with it
            if getattr(settings, name) <= job.timeout:
                errors.append(
                    Error(
                        f"{name} ({getattr(settings, name)}) must be longer than {job.name}'s timeout "
                        f"({job.timeout} s), or a second attempt starts while the first still runs",
                        hint=f"set it above {job.timeout}",
                        id="boardsite.E005",
                    )
                )
    for name in ("PROCESSING_MAX_ATTEMPTS", "UPLOAD_MAX_OUTSTANDING", "UPLOAD_DAILY_BYTES", "BOARD_MAX_PHOTOS"):
        if getattr(settings, name) < 1:
            errors.append(Error(f"{name} must be at least 1", id="boardsite.E006"))
    if settings.UPLOAD_DAILY_BYTES < settings.UPLOAD_MAX_BYTES:
        errors.append(
            Error(
                "UPLOAD_DAILY_BYTES is below UPLOAD_MAX_BYTES: the largest accepted photo could never be uploaded",
                id="boardsite.E007",
            )
        )
    return errors
