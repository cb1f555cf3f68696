"""The one registry of jobs: each job declared once, everything about it derived from the declaration.

Read by the door (``boardsite/core/jobs.py``), Celery routing and beat, the local runners, the settings'
``OFFLOAD_MODES`` defaults, the system checks, local provisioning and the CloudFormation template
(``deploy/resources.py``), IAM (``deploy/iam.py``) and the Zappa settings and their checks (``deploy/generate.py``,
``deploy/lint.py``). Each job runs in one of ``MODES``, chosen per job by ``OFFLOAD_MODES``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from offload.config import MAIL_SENT_PREFIX, ORIGINALS_PREFIX, SHADOW_PREFIX, UPLOAD_GRANTS_PREFIX, VARIANTS_PREFIX

MODES = ("inline", "celery", "lambda")
Mode = Literal["inline", "celery", "lambda"]


@dataclass(frozen=True)
class Queue:
    """An SQS queue: its default name, and the environment variable that names it in a deployment (a name prefix)."""

    name: str
    setting: str

    def resolved(self) -> str:
        """This environment's name of the queue."""
        return os.environ.get(self.setting) or self.name


@dataclass(frozen=True)
class Topic:
    """An SNS topic a job's queue is subscribed to; ``publisher``: who publishes to it, the site (through
    ``boardsite.core.jobs.publish`` in lambda mode) or SES (bounce and complaint notifications)."""

    name: str
    setting: str
    publisher: Literal["site", "ses"]

    def resolved(self) -> str:
        return os.environ.get(self.setting) or self.name

    @property
    def arn_setting(self) -> str:
        """The environment variable holding the topic's ARN where the site publishes to it (the web stage's)."""
        return f"{self.setting}_ARN"


# Lambda's bounds for an SQS event source mapping's ScalingConfig.MaximumConcurrency.
SQS_MIN_CONCURRENCY, SQS_MAX_CONCURRENCY = 2, 1000


@dataclass(frozen=True)
class S3Trigger:
    """ObjectCreated events under ``prefix`` of the media bucket. Locally (moto cannot invoke Lambda code) S3 notifies
    ``local_queue`` instead, which the local runner polls; the sweep redelivers a lost event there too.

    ``via_queue``: in production too, S3 notifies the queue and Lambda polls it (S3 -> SQS -> Lambda): the job gets
    its own dead-letter queue (the queue's redrive), batches and a concurrency bound, where an asynchronous S3
    invoke shares its stage's one dead-letter target (``Job.dead_letter``)."""

    prefix: str
    local_queue: Queue
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    via_queue: bool = False
    max_concurrency: int = SQS_MIN_CONCURRENCY
    # The site itself learns of each object and hands it to the door (``jobs.object_created``), so the job can run
    # in inline or celery mode too; without it, S3's events are its only start, which reach it in lambda mode only.
    started_by_site: bool = False

    @property
    def queue(self) -> Queue:
        return self.local_queue

    @property
    def notify_prefix(self) -> str:
        """What S3 notifies (Lambda's trigger; locally the queue the runner polls). A job the site starts too has its
        objects placed under ``<prefix><runtime>/`` when their upload is signed (``pin``), so S3 notifies only for
        those the site routed to Lambda, and the route of each object is fixed before its bytes arrive."""
        return self.prefix + "lambda/" if self.started_by_site else self.prefix

    def pin(self, key: str, runtime: str) -> str:
        """``key`` (under ``prefix``) placed where ``runtime`` runs its job."""
        if not self.started_by_site:
            return key
        if runtime not in MODES:
            raise ValueError(f"unknown runtime {runtime!r}")
        return self.prefix + runtime + "/" + self.unit(key)[len(self.prefix) :]

    def pinned(self, key: str) -> str | None:
        """The runtime ``key`` was placed for (None: placed before routing, or for a job the site does not start)."""
        head = key[len(self.prefix) :].split("/", 1)[0]
        return head if self.started_by_site and head in MODES else None

    def unit(self, key: str) -> str:
        """``key`` without its runtime: the unit of work routing hashes, the same wherever the object was placed."""
        runtime = self.pinned(key)
        return key if runtime is None else self.prefix + key[len(self.prefix) + len(runtime) + 1 :]


@dataclass(frozen=True)
class SQSTrigger:
    """Messages on ``queue`` (subscribed to ``topic`` when one is given: whoever publishes there feeds the job).

    ``max_concurrency``: at most this many invocations at once from this queue (the deployed mapping's
    ``ScalingConfig.MaximumConcurrency``, set by ``python -m deploy wire``). Without it Lambda's pollers scale to
    hundreds of invocations; past the function's reserved concurrency they are throttled, and a throttled message
    comes back after the visibility timeout and counts a receive, so a burst could push good messages into the
    dead-letter queue. A bound below the reserved concurrency makes the pollers wait instead."""

    queue: Queue
    max_concurrency: int = SQS_MIN_CONCURRENCY
    topic: Topic | None = None

    def __post_init__(self) -> None:
        if not SQS_MIN_CONCURRENCY <= self.max_concurrency <= SQS_MAX_CONCURRENCY:
            raise ValueError(
                f"{self.queue.name}: max_concurrency must be {SQS_MIN_CONCURRENCY}-{SQS_MAX_CONCURRENCY} "
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


RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """``rate(5 minutes)`` -> 300: EventBridge's rate form (a positive whole number; the unit singular for 1)."""
    match = re.fullmatch(r"rate\((\d+) (minute|hour|day)(s?)\)", expression.strip())
    if not match or int(match.group(1)) < 1 or (match.group(3) == "s") != (int(match.group(1)) != 1):
        raise ValueError(f"{expression!r}: expected rate(1 minute|hour|day), rate(N minutes|hours|days) or cron(...)")
    return int(match.group(1)) * RATE_UNITS[match.group(2)]


@dataclass(frozen=True)
class ScheduleTrigger:
    """A schedule, declared once for every mode.

    ``rate(...)``: ``expression`` for EventBridge (Zappa); ``every_seconds`` (for Celery beat and the local runner)
    follows from it.
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
            return
        seconds = rate_seconds(self.expression)
        if self.every_seconds is None:
            object.__setattr__(self, "every_seconds", seconds)  # one declaration: beat and the runner read it
        elif self.every_seconds != seconds:
            raise ValueError(f"{self.expression!r} is every {seconds}s, not every_seconds={self.every_seconds}")

    @property
    def cron(self) -> Cron | None:
        return Cron.parse(self.expression) if self.expression.startswith("cron(") else None

    def describe(self) -> str:
        return f"at {self.expression}" if self.cron else f"every {self.every_seconds}s"


@dataclass(frozen=True)
class HTTPTrigger:
    """A request a client makes. ``inline``: the site's own view answers it (the URL named ``view``); ``lambda``: the
    functions stage's function URL at ``path`` (Zappa's ``function_url_enabled``: no API Gateway to pay for or to
    time out at 29 s, CORS answered by Lambda itself), where offload/entry.py hands its requests to the handler;
    locally devstack serves that path on ``BOARDSITE_FUNCTIONS_PORT``. Celery cannot answer a request: HTTP jobs run
    inline or on lambda. The door (``boardsite/core/jobs.py`` ``endpoint``) tells each client which to call."""

    path: str
    view: str


@dataclass(frozen=True)
class Grant:
    """AWS actions a job's handler calls beyond what its trigger, its reports and its dead-letter queue already
    imply: on keys under ``prefixes`` of the media bucket, on its own trigger queue, or as the site's SES sender.
    ``deploy/iam.py`` turns them into its stage's policy; tests/deploy/test_iam.py checks every call the code makes."""

    actions: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    on_trigger_queue: bool = False
    as_mail_sender: bool = False


@dataclass(frozen=True)
class Job:
    """One job, declared once: everything else (Celery routing and beat, the local runners, OFFLOAD_MODES' defaults,
    queues and topics, the local AWS and the CloudFormation template, IAM, S3 notifications, Zappa's events, the
    system checks, the devstack's processes) is derived from these fields."""

    name: str
    handler: str  # dotted path of ``handler(event, context)``; with ``reports``, also ``report=`` (a callable)
    trigger: S3Trigger | SQSTrigger | ScheduleTrigger | HTTPTrigger
    timeout: int  # seconds
    memory: int  # MB
    # "offload": a pure function under offload/ (the functions stage); "web": needs Django (the web stage's function).
    side: Literal["offload", "web"]
    description: str
    # Asynchronous (S3-invoked) jobs: the queue Lambda sends an event to once its retries are used up.
    dead_letter: Queue | None = None
    # The results it reports (on RESULTS), by type: the web-side function that applies each (``f(*, result)``).
    reports: dict[str, str] = field(default_factory=dict, hash=False)
    # Where it runs unless OFFLOAD_MODES says otherwise (the site's and `make run`'s default).
    default_mode: Mode = "lambda"
    grants: tuple[Grant, ...] = ()
    # Settings (seconds) that must stay above the job's timeout (system check E005), e.g. a retry delay.
    outlives: tuple[str, ...] = ()
    # Can run in shadow (its handler honours the event's "boardsite_shadow": outputs under SHADOW_PREFIX only, no row,
    # no mail, reported as SHADOW_RESULT): the dotted path of ``compare(pair, shadow_result)``, which says how a
    # shadow run's output agrees with the real run's (boardsite/control/shadow.py).
    shadow: str | None = None
    # Modules its handler imports that only the functions stage's package ships (an offload job the deployed web stage
    # cannot run inline: boardsite/core/routing.py ``deployed_problem``).
    packages: tuple[str, ...] = ()
    # A job whose runtimes do different work by design (the upload ticket: the site reads its database, the function
    # reads and writes S3) cannot be held to a multiple of the other runtime's p95: the watch and the verdict judge
    # its canary's p95 against this budget (milliseconds) instead. None: against the baseline's p95.
    p95_budget_ms: int | None = None

    def resolve(self) -> Callable[..., Any]:
        module, _, attr = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    @property
    def queue(self) -> Queue | None:
        """The queue its trigger delivers through (locally, for an S3 trigger); None for a schedule."""
        if isinstance(self.trigger, SQSTrigger):
            return self.trigger.queue
        if isinstance(self.trigger, S3Trigger):
            return self.trigger.local_queue
        return None


# --- Channels shared by the code that feeds or reports and the jobs bound to them --------------------------------

# Every result a job reports travels here (type-tagged JSON); apply_results applies it with the table below.
RESULTS = Queue("boardsite-image-results", "BOARDSITE_RESULTS_QUEUE")
# The result types (offload/results.py builds them; each job's ``reports`` names what applies them).
IMAGE_PROCESSED = "image.processed"
IMAGE_TICKETED = "image.ticketed"
AVATAR_PROCESSED = "avatar.processed"  # process_image's result for a profile picture (offload/results.py)
MAIL_DELIVERY = "mail.delivery"
# The record of one run of any job (offload/runs.py), reported like a result by the runs Lambda makes: the site keeps
# it for the control room. Not a job's own report, so no job declares it.
JOB_RUN = "job.run"
RUN_APPLIER = "boardsite.core.runs.run_apply"
# What a shadow run reports (its job's own result inside): compared, never applied (boardsite/control/shadow.py).
SHADOW_RESULT = "shadow.result"
SHADOW_APPLIER = "boardsite.control.shadow.shadow_apply"
# Every mail the site sends is published here (boardsite/mail): send_email's queue is subscribed to it.
MAIL = Topic("boardsite-mail", "BOARDSITE_MAIL_TOPIC", publisher="site")
# SES publishes bounces and complaints here: apply_mail_feedback's queue is subscribed to it.
MAIL_FEEDBACK = Topic("boardsite-mail-feedback", "BOARDSITE_MAIL_FEEDBACK_TOPIC", publisher="ses")

JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            name="process_image",
            handler="offload.functions.process_image.handler",
            # The upload's completion report starts it in inline and celery mode (boardsite/images/services.py).
            trigger=S3Trigger(
                ORIGINALS_PREFIX, Queue("boardsite-uploads", "BOARDSITE_UPLOADS_QUEUE"), started_by_site=True
            ),
            timeout=60,
            memory=1024,
            side="offload",
            description="verify an uploaded original, write its display variants, report the result",
            dead_letter=Queue("boardsite-process-image-dlq", "BOARDSITE_PROCESS_IMAGE_DLQ"),
            reports={
                IMAGE_PROCESSED: "boardsite.images.results.image_result_apply",
                AVATAR_PROCESSED: "boardsite.avatars.results.avatar_result_apply",
            },
            grants=(
                # the original it verifies, and the result it may have stored already (a redelivered event)
                Grant(("s3:GetObject",), (ORIGINALS_PREFIX, VARIANTS_PREFIX)),
                Grant(("s3:PutObject", "s3:DeleteObject"), (VARIANTS_PREFIX,)),
                # processed: the original loses the tag the lifecycle rule expires unconfirmed uploads by
                Grant(("s3:DeleteObjectTagging",), (ORIGINALS_PREFIX,)),
                Grant(("s3:PutObject",), (SHADOW_PREFIX,)),  # a shadow run's variants
            ),
            shadow="boardsite.control.shadow.compare_images",
            packages=("PIL", "pillow_heif"),
            # The sweep starts a lost upload again after this long: never while the first attempt may still run.
            outlives=("PROCESSING_RETRY_SECONDS",),
        ),
        Job(
            name="issue_upload_ticket",
            handler="offload.functions.upload_ticket.handler",
            # inline: POST /api/uploads (boardsite/images/views.py); lambda: POST <function URL>/tickets, with a
            # grant the site signed (POST /api/upload-grants) instead of a session.
            trigger=HTTPTrigger(path="/tickets", view="api-uploads"),
            # The functions stage's one Lambda function: its timeout and memory are process_image's (see send_email).
            timeout=60,
            memory=1024,
            side="offload",
            description="check an upload grant, claim one of its tickets, answer a presigned POST pinned to one key",
            reports={IMAGE_TICKETED: "boardsite.images.results.image_ticketed_apply"},
            default_mode="inline",
            shadow="boardsite.control.shadow.compare_tickets",  # a shadow run checks the request, issues nothing
            # The site answers from its database in a few ms; the function makes its S3 requests (the revocation
            # check, the ticket's create-only claim): a ticket within a second keeps uploads feeling immediate.
            p95_budget_ms=1000,
            grants=(
                # its claims on each grant's tickets (create-only), and the site's revocations
                Grant(("s3:PutObject", "s3:GetObject"), (UPLOAD_GRANTS_PREFIX,)),
                # the presigned POST it signs is authorised as this role: the upload itself, tagged unconfirmed
                Grant(("s3:PutObject", "s3:PutObjectTagging"), (ORIGINALS_PREFIX,)),
            ),
        ),
        Job(
            name="send_email",
            handler="offload.functions.send_email.handler",
            # Two batches at once already reach SES's default sending rate (14 mails/s); more would be throttled.
            trigger=SQSTrigger(queue=Queue("boardsite-mail", "BOARDSITE_MAIL_QUEUE"), max_concurrency=2, topic=MAIL),
            # It runs in the functions stage's one Lambda function, whose timeout and memory are process_image's:
            # its queue's visibility timeout must follow that timeout, not a shorter one of its own.
            timeout=60,
            memory=1024,
            side="offload",
            description="send one rendered mail through SES (idempotent by message id, throttling retried)",
            reports={MAIL_DELIVERY: "boardsite.notifications.mailer.notification_mail_result_apply"},
            shadow="boardsite.control.shadow.compare_mail",  # a shadow run renders the mail, never sends it
            grants=(
                Grant(("ses:SendRawEmail",), as_mail_sender=True),
                # its idempotency markers (claimed create-only, released on a transient failure)
                Grant(("s3:PutObject", "s3:GetObject", "s3:DeleteObject"), (MAIL_SENT_PREFIX,)),
                # a mail SES is not ready to send (a new installation) is hidden on its queue for a growing delay
                Grant(("sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"), on_trigger_queue=True),
            ),
        ),
        Job(
            name="mail_notifications",
            handler="boardsite.notifications.mailer.handler",
            trigger=ScheduleTrigger("rate(1 minute)"),
            timeout=30,
            memory=512,
            side="web",
            description="render the notifications whose mail is due and hand each to send_email once",
        ),
        Job(
            name="apply_results",
            handler="boardsite.core.results.handler",
            # Each invocation holds a database connection of the web function (DEPLOY.md §3): 5 batches of 10 at
            # once apply ~100 results/s, far more than uploads produce, and leave the rest to the pages.
            trigger=SQSTrigger(queue=RESULTS, max_concurrency=5),
            timeout=30,
            memory=512,
            side="web",
            description="apply each reported result with the web-side function its type names (RESULT_APPLIERS)",
        ),
        Job(
            name="apply_mail_feedback",
            handler="boardsite.mail.feedback.handler",
            trigger=SQSTrigger(
                queue=Queue("boardsite-mail-feedback", "BOARDSITE_MAIL_FEEDBACK_QUEUE"), topic=MAIL_FEEDBACK
            ),  # rare: the lowest concurrency
            timeout=30,
            memory=512,
            side="web",
            description="suppress addresses SES reports as bouncing permanently or complaining",
        ),
        Job(
            name="sweep_uploads",
            handler="boardsite.images.sweep.handler",
            trigger=ScheduleTrigger("rate(5 minutes)"),
            timeout=30,
            memory=512,
            side="web",
            description="start again uploads whose trigger was lost, end those that never arrived, retry deletions",
        ),
        Job(
            name="sweep_storage",
            handler="boardsite.images.cleanup.handler",
            trigger=ScheduleTrigger("rate(1 day)"),
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
        Job(
            name="watch_routes",
            handler="boardsite.control.watch.handler",
            trigger=ScheduleTrigger("rate(1 minute)"),
            timeout=30,
            memory=512,
            side="web",
            description="roll a failing canary back, move healthy routes to their next step, compare shadow runs, "
            "expire their outputs and old run records",
            grants=(
                # the shadow runs' outputs it compares and expires
                Grant(("s3:GetObject", "s3:DeleteObject"), (SHADOW_PREFIX,)),
                Grant(("s3:GetObject",), (MAIL_SENT_PREFIX,)),  # what a mail's real run sent (its digest)
            ),
        ),
    )
}

# What applies each result type, from the jobs that report it.
RESULT_APPLIERS: dict[str, str] = {
    JOB_RUN: RUN_APPLIER,
    SHADOW_RESULT: SHADOW_APPLIER,
    **{kind: path for job in JOBS.values() for kind, path in job.reports.items()},
}


def add(*jobs: Job) -> None:
    """Declare more jobs beside the ones above (checked as they are; nothing changes when a check fails).

    ``BOARDSITE_EXTRA_JOBS`` names modules (comma-separated) whose ``JOBS`` tuple is added when this module loads, in
    every process (the site, the Celery worker, the local runners): how a fork keeps its jobs in a package of its
    own, and how tests/jobs/test_adding_a_job.py adds two without editing this file. Unset in production."""
    before = dict(JOBS)
    for job in jobs:
        if job.name in JOBS:
            raise ValueError(f"a job named {job.name!r} is declared already")
        JOBS[job.name] = job
    try:
        _check_registry()
    except Exception:
        JOBS.clear()
        JOBS.update(before)
        raise
    _refresh_appliers()


def remove(*names: str) -> None:
    """Take jobs ``add`` declared away again (tests)."""
    for name in names:
        del JOBS[name]
    _refresh_appliers()


def _refresh_appliers() -> None:
    RESULT_APPLIERS.clear()
    RESULT_APPLIERS.update({JOB_RUN: RUN_APPLIER, SHADOW_RESULT: SHADOW_APPLIER})
    RESULT_APPLIERS.update({kind: path for job in JOBS.values() for kind, path in job.reports.items()})


def get(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise KeyError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


# Which zappa_settings.json stage deploys the jobs of each side.
ZAPPA_STAGES = {"offload": "functions", "web": "web"}

# The reserved concurrency of each side's one Lambda function (its Zappa stage's ``lambda_concurrency``): the most
# invocations of its jobs at once, taken from the account's pool and never more; past it Lambda throttles, and an SQS
# poller leaves its messages queued. None: no reservation (the account's unreserved pool). The local runners obey it
# too (devstack/runner.py). The web stage's ``configure --concurrency`` overrides the web side's: that bound follows
# the database's connections, a deployment's choice.
RESERVED_CONCURRENCY: dict[str, int | None] = {"offload": None, "web": None}

# AWS's guidance for an SQS event source: the queue's visibility timeout at least six times the function's timeout,
# so a message is not handed out again while the poller still retries a throttled or slow batch.
SQS_VISIBILITY_FACTOR = 6


# Lambda's defaults, the least a stage's function gets.
MIN_TIMEOUT, MIN_MEMORY = 30, 512


def function_timeout(side: str) -> int:
    """The timeout of the one Lambda function that runs every job of ``side`` (a Zappa stage): the longest."""
    return max([MIN_TIMEOUT, *(j.timeout for j in JOBS.values() if j.side == side)])


def function_memory(side: str) -> int:
    """The memory of that function: the largest any of its jobs declares (each job gets it)."""
    return max([MIN_MEMORY, *(j.memory for j in JOBS.values() if j.side == side)])


def reserved_concurrency(side: str) -> int | None:
    """The reserved concurrency of ``side``'s function (``RESERVED_CONCURRENCY``); None when it has none."""
    return RESERVED_CONCURRENCY.get(side)


def visibility_timeout(job: Job) -> int:
    """The visibility timeout the queue that triggers ``job`` needs: six times its function's timeout, which is the
    longest of its side's jobs (Lambda's poller times the whole batch by the function's, not the job's)."""
    return SQS_VISIBILITY_FACTOR * function_timeout(job.side)


def results_job() -> Job:
    """The job that applies what every reporting job reports: the one triggered by ``RESULTS``."""
    return job_for(RESULTS)


def job_for(channel: Queue | Topic) -> Job:
    """The job a queue or topic feeds (each feeds exactly one)."""
    fed = [
        j
        for j in JOBS.values()
        if j.queue == channel or (isinstance(j.trigger, SQSTrigger) and j.trigger.topic == channel)
    ]
    if len(fed) != 1:
        raise ValueError(f"{channel.name} feeds {len(fed)} jobs ({', '.join(j.name for j in fed)}): it must feed one")
    return fed[0]


def site_topics() -> list[Topic]:
    """The topics the site publishes to (each feeds a job's queue)."""
    topics = (j.trigger.topic for j in JOBS.values() if isinstance(j.trigger, SQSTrigger) and j.trigger.topic)
    return [t for t in topics if t.publisher == "site"]


def queues() -> dict[str, Queue]:
    """Every queue by the setting that names it: triggers, the local stand-ins of S3 triggers, dead letters."""
    out = {j.queue.setting: j.queue for j in JOBS.values() if j.queue}
    out |= {j.dead_letter.setting: j.dead_letter for j in JOBS.values() if j.dead_letter}
    return out


def polled(job: Job) -> Queue | None:
    """The queue Lambda's poller reads for ``job`` once deployed (an SQS trigger's, or an S3 trigger's via_queue);
    None when AWS invokes the function itself (S3's asynchronous invoke, a schedule)."""
    if isinstance(job.trigger, SQSTrigger):
        return job.trigger.queue
    if isinstance(job.trigger, S3Trigger) and job.trigger.via_queue:
        return job.trigger.local_queue
    return None


def max_concurrency(job: Job) -> int | None:
    """The bound on the invocations the poller runs at once for ``job`` (``ScalingConfig``); None when not polled."""
    trigger = job.trigger
    return trigger.max_concurrency if polled(job) and not isinstance(trigger, ScheduleTrigger) else None


def redrive_queue(queue_name: str) -> str:
    """The dead-letter queue of a trigger queue (its redrive policy's target)."""
    return f"{queue_name}-dlq"


def dead_letters() -> list[tuple[Job, str, str]]:
    """Every dead-letter queue and the job whose work lands there: (job, queue name, how). "redrive": messages its
    trigger queue gave up on (the message as it was); "async": events Lambda gave up on after invoking the function
    asynchronously (S3's invoke; the event with the error in the message's attributes)."""
    out = []
    for job in JOBS.values():
        if not isinstance(job.trigger, ScheduleTrigger) and job.queue is not None:
            out.append((job, redrive_queue(job.queue.resolved()), "redrive"))
        if job.dead_letter is not None:
            out.append((job, job.dead_letter.resolved(), "async"))
    return out


def job_by_handler(path: str) -> Job | None:
    """The job whose handler is the dotted ``path`` (what Zappa's event mapping names), if any."""
    return next((job for job in JOBS.values() if job.handler == path), None)


def unplaced(key: str) -> str:
    """``key`` without the runtime the site placed it for (``S3Trigger.pin``): what a job names its outputs after."""
    job = s3_job_for(key)
    return job.trigger.unit(key) if job is not None else key  # type: ignore[union-attr]  # an S3 trigger


def s3_job_for(key: str) -> Job | None:
    """The job S3 starts for a new object at ``key`` (None when no job watches its prefix)."""
    matches = [j for j in JOBS.values() if isinstance(j.trigger, S3Trigger) and key.startswith(j.trigger.prefix)]
    return matches[0] if matches else None


def modes_problem(modes: dict[str, str], default: str | None = None) -> str | None:
    """Why a set of modes cannot work (None when it can; a job not named runs in ``default``, else its
    ``default_mode``). One rule for configure, the prebuild's settings check, `deploy move` and the site's check
    E003: an S3-triggered job the site does not start itself runs in lambda mode only; and a job run as a Lambda
    function reports on ``RESULTS``, which only the results job in lambda mode reads: anything else loses those
    results (a photo pending until the sweep fails it, a refused mail never marked)."""

    def mode(job: Job) -> str:
        return modes.get(job.name, default or job.default_mode)

    unstarted = [
        j.name
        for j in JOBS.values()
        if isinstance(j.trigger, S3Trigger) and not j.trigger.started_by_site and mode(j) != "lambda"
    ]
    if unstarted:
        return (
            f"nothing would start {', '.join(unstarted)} outside lambda mode: S3's events are its only start "
            "(declare started_by_site=True once the site hands its objects to jobs.object_created)"
        )
    answering = [j.name for j in JOBS.values() if isinstance(j.trigger, HTTPTrigger) and mode(j) == "celery"]
    if answering:
        return (
            f"{', '.join(answering)} answer{'s' if len(answering) == 1 else ''} requests: inline (the site's view) "
            "or lambda (a function URL), never celery"
        )
    applier = results_job()
    if mode(applier) == "lambda":
        return None
    reporters = [j.name for j in JOBS.values() if j.reports and mode(j) == "lambda"]
    if reporters:
        verb = "runs" if len(reporters) == 1 else "run"
        return (
            f"{applier.name} must stay on lambda while {', '.join(reporters)} {verb} there (results arrive on SQS): "
            f"set {applier.name}=lambda, or move {'it' if len(reporters) == 1 else 'them'} off Lambda too"
        )
    return None


def _check_registry() -> None:
    """What the derivations rely on, checked when the registry is imported."""
    results_job()  # exactly one job reads RESULTS
    for channel in {j.queue for j in JOBS.values() if j.queue} | {
        j.trigger.topic for j in JOBS.values() if isinstance(j.trigger, SQSTrigger) and j.trigger.topic
    }:
        job_for(channel)  # each queue and topic feeds exactly one job
    prefixes = [j.trigger.prefix for j in JOBS.values() if isinstance(j.trigger, S3Trigger)]
    for a in prefixes:
        if sum(b.startswith(a) or a.startswith(b) for b in prefixes) > 1:
            raise ValueError(f"S3 prefix {a!r} overlaps another job's: one object must start one job")
    for job in JOBS.values():
        if job.dead_letter and polled(job):
            raise ValueError(
                f"{job.name}: a polled queue's dead-letter queue is its own redrive; declare no dead_letter"
            )
    for side in ZAPPA_STAGES:
        dead_letters = {j.dead_letter for j in JOBS.values() if j.side == side and j.dead_letter}
        if len(dead_letters) > 1:
            # A stage is one Lambda function, and a function has one dead-letter target.
            raise ValueError(f"the {side} jobs declare {len(dead_letters)} dead-letter queues; they share one function")
    for side, reserved in RESERVED_CONCURRENCY.items():
        if side not in ZAPPA_STAGES:
            raise ValueError(f"RESERVED_CONCURRENCY: no side {side!r} (sides: {', '.join(ZAPPA_STAGES)})")
        if reserved is None:
            continue
        # A reservation below what its queues' pollers may run at once would throttle them, and a throttled message
        # counts a receive towards its dead-letter queue (see SQSTrigger). The web function serves pages besides.
        polled_at_once = sum(max_concurrency(j) or 0 for j in JOBS.values() if j.side == side)
        least = max(1, polled_at_once + (side == "web"))
        if reserved < least:
            raise ValueError(
                f"RESERVED_CONCURRENCY[{side!r}] = {reserved}: its queues may run {polled_at_once} invocations at "
                f"once (their max_concurrency){' and it serves pages' if side == 'web' else ''}; reserve at least "
                f"{least}"
            )
    for job in JOBS.values():
        if job.reports and job.side != "offload":
            raise ValueError(f"{job.name}: only offload jobs report results (web jobs apply theirs directly)")


_check_registry()
for _module in filter(None, (m.strip() for m in os.environ.get("BOARDSITE_EXTRA_JOBS", "").split(","))):
    add(*importlib.import_module(_module).JOBS)


def parse_modes(raw: str) -> dict[str, str]:
    """``OFFLOAD_MODES``' ``job=mode,...`` as a dict."""
    pairs = (item.partition("=") for item in raw.split(",") if item.strip())
    return {job.strip(): mode.strip() for job, _, mode in pairs}
