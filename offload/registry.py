"""The one registry of jobs: for each, its handler, its trigger, its timeout and memory.

Celery task routing, the local function runner, and the check of ``zappa_settings.json`` all read this, so they
cannot drift apart. Each job runs in one of ``MODES``, chosen per job by the site's ``OFFLOAD_MODES`` setting.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from offload.config import ORIGINALS_PREFIX

MODES = ("inline", "celery", "lambda")
Mode = Literal["inline", "celery", "lambda"]


@dataclass(frozen=True)
class S3Trigger:
    """ObjectCreated events under ``prefix`` of the media bucket (locally delivered through ``queue``)."""

    prefix: str
    local_queue_setting: str = "BOARDSITE_UPLOADS_QUEUE"
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)


# Lambda's bounds for an SQS event source mapping's ScalingConfig.MaximumConcurrency.
SQS_MIN_CONCURRENCY, SQS_MAX_CONCURRENCY = 2, 1000


@dataclass(frozen=True)
class SQSTrigger:
    """Messages on the queue named by the environment variable ``queue_setting``.

    ``max_concurrency``: at most this many invocations at once from this queue (the deployed mapping's
    ``ScalingConfig.MaximumConcurrency``, set by ``python -m deploy wire``). Without it Lambda's pollers scale to
    hundreds of invocations; past the function's reserved concurrency they are throttled, and a throttled message
    comes back after the visibility timeout and counts a receive, so a burst could push good messages into the
    dead-letter queue. A bound below the reserved concurrency makes the pollers wait instead."""

    queue_setting: str
    max_concurrency: int = SQS_MIN_CONCURRENCY

    def __post_init__(self) -> None:
        if not SQS_MIN_CONCURRENCY <= self.max_concurrency <= SQS_MAX_CONCURRENCY:
            raise ValueError(
                f"{self.queue_setting}: max_concurrency must be {SQS_MIN_CONCURRENCY}-{SQS_MAX_CONCURRENCY} "
                f"(Lambda's bounds), got {self.max_concurrency}"
            )


# EventBridge's day-of-week names, in Python's weekday() order (Monday 0). Numbers are refused: EventBridge counts
# SUN=1, Celery SUN=0, Python MON=0, and a wrong guess would silently move a schedule by a day.
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


@dataclass(frozen=True)
class Cron:
    """The part of an EventBridge ``cron(minutes hours day-of-month month day-of-week year)`` expression this site
    supports: one minute, one hour, and every day or one or more named week days, in UTC (EventBridge's only zone)."""

    minute: int
    hour: int
    weekdays: tuple[int, ...]  # Python weekday() numbers (Monday 0); empty: every day

    @classmethod
    def parse(cls, expression: str) -> Cron:
        match = re.fullmatch(r"cron\((.*)\)", expression.strip())
        fields = match.group(1).split() if match else []
        if len(fields) != 6:
            raise ValueError(f"{expression!r}: expected cron(minutes hours day-of-month month day-of-week year)")
        minute, hour, day, month, weekday, year = fields
        unsupported = f"{expression!r}: only a fixed minute and hour, every day or named week days are supported"
        if not (minute.isdigit() and hour.isdigit() and int(minute) < 60 and int(hour) < 24):
            raise ValueError(f"{unsupported} (minutes 0-59, hours 0-23)")
        if month != "*" or year != "*":
            raise ValueError(f"{unsupported} (month and year must be '*')")
        if weekday in ("*", "?"):
            # EventBridge wants exactly one of day-of-month and day-of-week to be '?'.
            if day != "*" or weekday != "?":
                raise ValueError(f"{unsupported} (every day is 'cron(M H * * ? *)')")
            return cls(int(minute), int(hour), ())
        if day != "?":
            raise ValueError(f"{unsupported} (with week days, day-of-month must be '?')")
        names = weekday.upper().split(",")
        if any(name not in WEEKDAYS for name in names):
            raise ValueError(f"{unsupported} (week days by name: {','.join(WEEKDAYS)})")
        return cls(int(minute), int(hour), tuple(sorted({WEEKDAYS.index(name) for name in names})))

    def _matches(self, day: dt.date) -> bool:
        return not self.weekdays or day.weekday() in self.weekdays

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first time strictly after ``moment`` (aware) that the schedule fires, in UTC."""
        moment = moment.astimezone(dt.UTC)
        for days in range(8):
            day = moment.date() + dt.timedelta(days=days)
            fire = dt.datetime.combine(day, dt.time(self.hour, self.minute), tzinfo=dt.UTC)
            if fire > moment and self._matches(day):
                return fire
        raise AssertionError("unreachable: every schedule fires within a week")

    def latest_at_or_before(self, moment: dt.datetime) -> dt.datetime:
        """The last time at or before ``moment`` (aware) that the schedule fired, in UTC."""
        moment = moment.astimezone(dt.UTC)
        for days in range(8):
            day = moment.date() - dt.timedelta(days=days)
            fire = dt.datetime.combine(day, dt.time(self.hour, self.minute), tzinfo=dt.UTC)
            if fire <= moment and self._matches(day):
                return fire
        raise AssertionError("unreachable: every schedule fires within a week")

    def celery_fields(self) -> dict[str, str]:
        """``celery.schedules.crontab``'s arguments (Celery's day_of_week names are EventBridge's, lower case)."""
        days = ",".join(WEEKDAYS[d].lower() for d in self.weekdays) or "*"
        return {"minute": str(self.minute), "hour": str(self.hour), "day_of_week": days}


@dataclass(frozen=True)
class ScheduleTrigger:
    """A schedule, declared once for every mode.

    ``rate(...)``: ``expression`` for EventBridge (Zappa) and ``every_seconds`` for Celery beat and the local runner.
    ``cron(...)``: the expression alone; ``cron`` parses it for Celery beat (a crontab) and the local runner (the next
    due time). A form ``Cron`` does not support is refused here, when the registry is imported.
    """

    expression: str
    every_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.expression.startswith("cron("):
            Cron.parse(self.expression)  # ValueError on a form the runner and beat could not follow
            if self.every_seconds is not None:
                raise ValueError(f"{self.expression!r}: a cron schedule takes no every_seconds")
        elif not self.expression.startswith("rate(") or not self.every_seconds or self.every_seconds <= 0:
            raise ValueError(f"{self.expression!r}: expected rate(...) with every_seconds > 0, or cron(...)")

    @property
    def cron(self) -> Cron | None:
        return Cron.parse(self.expression) if self.expression.startswith("cron(") else None

    def describe(self) -> str:
        return f"at {self.expression}" if self.cron else f"every {self.every_seconds}s"


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
            # Two batches at once already reach SES's default sending rate (14 mails/s); more would be throttled.
            trigger=SQSTrigger(queue_setting="BOARDSITE_MAIL_QUEUE", max_concurrency=2),
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
            # Each invocation holds a database connection of the web function (DEPLOY.md §3): 5 batches of 10 at
            # once apply ~100 results/s, far more than uploads produce, and leave the rest to the pages.
            trigger=SQSTrigger(queue_setting="BOARDSITE_RESULTS_QUEUE", max_concurrency=5),
            timeout=30,
            memory=512,
            side="web",
            description="apply a processing result to the image's database row",
        ),
        Job(
            name="apply_mail_feedback",
            handler="boardsite.mail.feedback.handler",
            # The feedback queue is subscribed to the SNS topic SES publishes bounces and complaints to.
            trigger=SQSTrigger(queue_setting="BOARDSITE_MAIL_FEEDBACK_QUEUE", max_concurrency=2),  # rare
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
        Job(
            name="weekly_digest",
            handler="boardsite.notifications.digest.handler",
            trigger=ScheduleTrigger(expression="cron(0 23 ? * MON *)"),
            timeout=30,
            memory=512,
            side="web",
            description="mail each board owner the week's photos and missing uploads (once per week, resumable)",
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


def modes_problem(modes: dict[str, str], default: str = "lambda") -> str | None:
    """Why a set of modes cannot work (None when it can; a job not named runs in ``default``). One rule for
    configure, the prebuild's settings check, `deploy move` and the site's check E003: a Lambda-run process_image
    reports on the results queue, which only apply_image_result in lambda mode reads; anything else leaves every
    photo pending until the sweep fails it."""
    process, apply = modes.get("process_image", default), modes.get("apply_image_result", default)
    if process == "lambda" and apply != "lambda":
        return "apply_image_result must stay on lambda while process_image runs there (its results arrive on SQS)"
    return None


def parse_modes(raw: str) -> dict[str, str]:
    """``OFFLOAD_MODES``' ``job=mode,...`` as a dict."""
    pairs = (item.partition("=") for item in raw.split(",") if item.strip())
    return {job.strip(): mode.strip() for job, _, mode in pairs}
