"""The one registry of jobs: for each, its handler, its trigger, its timeout and memory.

Celery task routing, the local function runner, and the check of ``zappa_settings.json`` all read this, so they
cannot drift apart. Each job runs in one of ``MODES``, chosen per job by the site's ``OFFLOAD_MODES`` setting.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from offload.config import ORIGINALS_PREFIX, QUEUE_DEFAULTS

MODES = ("inline", "celery", "lambda")
Mode = Literal["inline", "celery", "lambda"]


@dataclass(frozen=True)
class S3Trigger:
    """ObjectCreated events under ``prefix`` of the media bucket (locally delivered through ``queue``)."""

    prefix: str
    local_queue_setting: str = "BOARDSITE_UPLOADS_QUEUE"
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)


@dataclass(frozen=True)
class SQSTrigger:
    """Messages on the queue named by the environment variable ``queue_setting``."""

    queue_setting: str


@dataclass(frozen=True)
class ScheduleTrigger:
    """A schedule: ``expression`` for EventBridge (Zappa), ``every_seconds`` for Celery beat and the local runner."""

    expression: str
    every_seconds: int


@dataclass(frozen=True)
class Job:
    name: str
    handler: str  # dotted path of ``handler(event, context)``
    trigger: S3Trigger | SQSTrigger | ScheduleTrigger
    timeout: int  # seconds
    memory: int  # MB
    # "offload": a pure function under offload/ (its own Lambda); "web": needs Django (runs in the web app's Lambda).
    side: Literal["offload", "web"]
    description: str
    # Asynchronous (S3-invoked) jobs: the SQS queue Lambda sends an event to once its retries are used up.
    failure_queue: str | None = None

    def resolve(self) -> Callable[..., Any]:
        module, _, attr = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), attr)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            name="process_image",
            handler="offload.functions.process_image.handler",
            trigger=S3Trigger(prefix=ORIGINALS_PREFIX),
            timeout=60,
            memory=1024,
            side="offload",
            description="verify an uploaded original, write its display variants, report the result",
            failure_queue="boardsite-process-image-dlq",
        ),
        Job(
            name="send_email",
            handler="offload.functions.send_email.handler",
            # The mail queue is subscribed to the mail SNS topic the site publishes to (offload/provision.py).
            trigger=SQSTrigger(queue_setting="BOARDSITE_MAIL_QUEUE"),
            # It runs in the functions stage's one Lambda function, whose timeout and memory are process_image's:
            # its queue's visibility timeout must follow that timeout, not a shorter one of its own.
            timeout=60,
            memory=1024,
            side="offload",
            description="send one rendered mail through SES (idempotent by message id, throttling retried)",
        ),
        Job(
            name="mail_notifications",
            handler="boardsite.notifications.mailer.handler",
            trigger=ScheduleTrigger(expression="rate(1 minute)", every_seconds=60),
            timeout=30,
            memory=512,
            side="web",
            description="render the notifications whose mail is due and hand each to send_email once",
        ),
        Job(
            name="apply_image_result",
            handler="boardsite.images.results.handler",
            trigger=SQSTrigger(queue_setting="BOARDSITE_RESULTS_QUEUE"),
            timeout=30,
            memory=512,
            side="web",
            description="apply a processing result to the image's database row",
        ),
        Job(
            name="apply_mail_feedback",
            handler="boardsite.notifications.feedback.handler",
            # The feedback queue is subscribed to the SNS topic SES publishes bounces and complaints to.
            trigger=SQSTrigger(queue_setting="BOARDSITE_MAIL_FEEDBACK_QUEUE"),
            timeout=30,
            memory=512,
            side="web",
            description="suppress addresses SES reports as bouncing permanently or complaining",
        ),
        Job(
            name="sweep_uploads",
            handler="boardsite.images.sweep.handler",
            trigger=ScheduleTrigger(expression="rate(5 minutes)", every_seconds=300),
            timeout=30,
            memory=512,
            side="web",
            description="start again uploads whose trigger was lost, end those that never arrived, retry deletions",
        ),
        Job(
            name="sweep_storage",
            handler="boardsite.images.cleanup.handler",
            trigger=ScheduleTrigger(expression="rate(1 day)", every_seconds=86400),
            timeout=30,
            memory=512,
            side="web",
            description="delete objects under originals/ and variants/ that no live photo owns (older than a day)",
        ),
    )
}


def get(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


# Which zappa_settings.json stage deploys the jobs of each side.
ZAPPA_STAGES = {"offload": "functions", "web": "web"}

# AWS's guidance for an SQS event source: the queue's visibility timeout at least six times the function's timeout,
# so a message is not handed out again while the poller still retries a throttled or slow batch.
SQS_VISIBILITY_FACTOR = 6


def visibility_timeout(job: Job) -> int:
    """The visibility timeout the queue that triggers ``job`` needs."""
    return SQS_VISIBILITY_FACTOR * job.timeout


def sqs_arn(region: str, account: str, queue: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{queue}"


def stage_account(stage: dict[str, Any]) -> str:
    """The account a stage deploys to, read from its execution role's ARN (``arn:aws:iam::<account>:role/...``)."""
    parts = str(stage.get("role_arn", "")).split(":")
    return parts[4] if len(parts) > 5 and parts[:3] == ["arn", "aws", "iam"] else ""


def check_zappa_settings(zappa: dict[str, Any], *, queue_names: dict[str, str] | None = None) -> list[str]:
    """Problems that would make the deployed triggers differ from this registry (empty when they agree).

    Queue ARNs are compared in full, built from the stage's own region and account (its role's): Zappa routes SQS
    events by exact ARN, and one with another account or region is never created and drops real messages.
    """
    queue_names = queue_names or QUEUE_DEFAULTS
    problems = []
    modes = deployed_modes(zappa)
    for job in JOBS.values():
        stage_name = ZAPPA_STAGES[job.side]
        stage = zappa.get(stage_name)
        if stage is None:
            problems.append(f"{job.name}: zappa_settings.json has no {stage_name!r} stage")
            continue
        events = [e for e in stage.get("events", []) if e.get("function") == job.handler]
        if modes.get(job.name, "lambda") != "lambda":
            # Run by a Celery worker (and beat): an AWS trigger as well would run it twice.
            if events:
                problems.append(
                    f"{job.name} runs in {modes[job.name]} mode, so stage {stage_name!r} must not trigger it"
                )
            continue
        if len(events) != 1:
            problems.append(
                f"{job.name}: expected one event for {job.handler} in stage {stage_name!r}, found {len(events)}"
            )
            continue
        source = events[0].get("event_source", {})
        arn = source.get("arn", "")
        region, account = stage.get("aws_region", ""), stage_account(stage)
        if isinstance(job.trigger, ScheduleTrigger):
            if events[0].get("expression") != job.trigger.expression:
                problems.append(f"{job.name}: expression must be {job.trigger.expression!r}")
            if "-" in job.handler:
                # Zappa routes scheduled events by the function path at the end of the rule name.
                problems.append(f"{job.name}: a scheduled function path must not contain '-'")
        elif isinstance(job.trigger, S3Trigger):
            if not arn.startswith("arn:aws:s3:::"):
                problems.append(f"{job.name}: the trigger must be an S3 bucket, got {arn!r}")
            if source.get("prefix") != job.trigger.prefix:
                # Zappa reads only "prefix"/"suffix" (key_filters is silently ignored): a missing prefix would make
                # the function trigger on its own variants.
                problems.append(f"{job.name}: event_source.prefix must be {job.trigger.prefix!r}")
            if sorted(source.get("events", [])) != sorted(job.trigger.events):
                problems.append(f"{job.name}: S3 events must be {list(job.trigger.events)}")
        else:
            expected = sqs_arn(region, account, queue_names.get(job.trigger.queue_setting, ""))
            if arn != expected:
                problems.append(f"{job.name}: the trigger must be the SQS queue {expected!r}, got {arn!r}")
        if job.failure_queue:
            expected = sqs_arn(region, account, job.failure_queue)
            if stage.get("dead_letter_arn") != expected:
                problems.append(f"{job.name}: stage {stage_name!r} dead_letter_arn must be {expected!r}")
        if stage.get("timeout_seconds", 30) < job.timeout:
            problems.append(f"{job.name}: stage {stage_name!r} timeout_seconds is below the job's {job.timeout}")
        if stage.get("memory_size", 512) < job.memory:
            problems.append(f"{job.name}: stage {stage_name!r} memory_size is below the job's {job.memory}")
    functions = zappa.get(ZAPPA_STAGES["offload"], {})
    if functions and "django" not in functions.get("exclude", []):
        problems.append("the offload stage must exclude django (offload functions never import it)")
    problems += _check_shared_environment(zappa)
    return problems


def parse_modes(raw: str) -> dict[str, str]:
    """``OFFLOAD_MODES``' ``job=mode,...`` as a dict."""
    pairs = (item.partition("=") for item in raw.split(",") if item.strip())
    return {job.strip(): mode.strip() for job, _, mode in pairs}


def deployed_modes(zappa: dict[str, Any]) -> dict[str, str]:
    """Each job's mode as the deployed stages set it (both carry the same OFFLOAD_MODES; the check below)."""
    for name in dict.fromkeys(ZAPPA_STAGES.values()):
        raw = zappa.get(name, {}).get("environment_variables", {}).get("OFFLOAD_MODES")
        if raw:
            return parse_modes(raw)
    return {}


# Settings both stages read: they must be equal in both, or the site and the functions disagree (a limit, a queue).
SHARED_ENVIRONMENT = (
    "BOARDSITE_BUCKET",
    "BOARDSITE_RESULTS_QUEUE",
    "UPLOAD_MAX_BYTES",
    "MAX_IMAGE_PIXELS",
    "BOARDSITE_VARIANTS",
    "BOARDSITE_IMAGE_FORMATS",
    "OFFLOAD_MODES",
    "BOARDSITE_MAIL_FROM",
    "BOARDSITE_SITE_URL",  # only when known (a custom domain or --site-url)
)


def _check_shared_environment(zappa: dict[str, Any]) -> list[str]:
    stages = [zappa.get(name) for name in dict.fromkeys(ZAPPA_STAGES.values())]
    envs = [s.get("environment_variables", {}) for s in stages if s is not None]
    if len(envs) < 2:
        return []
    return [
        f"stages disagree on {name}: {[env.get(name) for env in envs]}"
        for name in SHARED_ENVIRONMENT
        if len({env.get(name) for env in envs}) > 1
    ]
