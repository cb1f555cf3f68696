"""What AWS resources boardsite needs besides what Zappa makes: one description, derived from the registry.

``deploy/template.py`` renders it as CloudFormation (production); ``devstack/provision.py`` applies it to the local
AWS (moto), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offload import registry
from offload.config import MAIL_SENT_PREFIX, ORIGINALS_PREFIX, SHADOW_PREFIX, UNCONFIRMED_TAG

MAX_RECEIVES = 5  # a message failing this often goes to the dead-letter queue instead of looping forever
DLQ_RETENTION = 1209600  # 14 days, SQS's longest: time to look at a failure and redrive it

LIFECYCLE = {
    "Rules": [
        {
            "ID": "expire-unprocessed-originals",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": ORIGINALS_PREFIX, "Tags": [UNCONFIRMED_TAG]}},
            "Expiration": {"Days": 2},
        },
        {
            "ID": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {
            # the mail job's idempotency markers: a duplicate delivery can only come while the message can still be
            # on the mail queue or its dead-letter queue (14 days at most), so they are needed no longer.
            "ID": "expire-mail-markers",
            "Status": "Enabled",
            "Filter": {"Prefix": MAIL_SENT_PREFIX},
            "Expiration": {"Days": 15},
        },
        {
            # shadow runs' outputs (boardsite/control/shadow.py): the watch deletes them after a day; this backs it up
            "ID": "expire-shadow-outputs",
            "Status": "Enabled",
            "Filter": {"Prefix": SHADOW_PREFIX},
            "Expiration": {"Days": 2},
        },
    ]
}
# Private: nothing is ever public; the site hands out short-lived presigned URLs.
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


def cors_rules(origins: list[str]) -> list[dict[str, Any]]:
    """Browsers upload straight to the bucket (presigned POST) and read variants from it."""
    return [
        {
            "AllowedOrigins": origins,
            "AllowedMethods": ["GET", "POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
    ]


@dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility: int  # seconds; 0 for a dead-letter queue nobody polls (the default then applies)
    dead_letter: bool  # has its own "<name>-dlq" after MAX_RECEIVES receives
    local_only: bool = False  # only the local stack needs it (on AWS, S3 invokes the function directly)

    @property
    def dlq_name(self) -> str:
        return registry.redrive_queue(self.name)


def queue_specs(names: dict[str, str] | None = None) -> list[QueueSpec]:
    """Every queue, derived from the registry: each job's trigger queue (with its own dead-letter queue), the local
    stand-in of each S3 trigger, each asynchronous job's dead-letter queue.

    ``names``: queue names by setting (a deployment's, ``DeployConfig.queue_names``); default: this environment's.
    """

    def name(queue: registry.Queue) -> str:
        return names[queue.setting] if names else queue.resolved()

    specs: list[QueueSpec] = []
    for job in registry.JOBS.values():
        if isinstance(job.trigger, registry.SQSTrigger):
            specs.append(QueueSpec(name(job.trigger.queue), registry.visibility_timeout(job), True))
        elif isinstance(job.trigger, registry.S3Trigger) and job.trigger.via_queue:  # S3 -> SQS -> Lambda everywhere
            specs.append(QueueSpec(name(job.trigger.local_queue), registry.visibility_timeout(job), True))
        elif isinstance(job.trigger, registry.S3Trigger):
            # The local runner polls it as Lambda's poller would; twice the timeout so a slow run is not redelivered.
            specs.append(QueueSpec(name(job.trigger.local_queue), 2 * job.timeout, True, local_only=True))
        if job.dead_letter and all(spec.name != name(job.dead_letter) for spec in specs):
            specs.append(QueueSpec(name(job.dead_letter), 0, False))
    return specs


@dataclass(frozen=True)
class Subscription:
    """A job's queue subscribed to the topic that feeds it (SNS's envelope kept: the jobs unwrap it)."""

    topic: registry.Topic
    queue: registry.Queue


def subscriptions() -> list[Subscription]:
    return [
        Subscription(job.trigger.topic, job.trigger.queue)
        for job in registry.JOBS.values()
        if isinstance(job.trigger, registry.SQSTrigger) and job.trigger.topic
    ]


def local_notifications() -> list[tuple[str, registry.Job]]:
    """The S3 -> SQS notifications that stand in locally for S3 invoking each S3-triggered job: (prefix, job)."""
    return [
        (job.trigger.notify_prefix, job)
        for job in registry.JOBS.values()
        if isinstance(job.trigger, registry.S3Trigger)
    ]


def subscribed_queue_policy(queue_arn: Any, topic_arn: Any) -> dict[str, Any]:
    """A queue subscribed to a topic accepts messages from that topic only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }


# SES's notification types a topic SES publishes to receives (the job it feeds records them; DEPLOY.md wires them).
FEEDBACK_NOTIFICATIONS = ("Bounce", "Complaint")


def mail_identities(mail_from: str) -> list[str]:
    """The SES identities mail from ``mail_from`` is sent under: its domain (production verifies the domain) and the
    address itself (the local SES verifies it; SES uses an address identity's settings over its domain's)."""
    return [mail_from.rpartition("@")[2], mail_from]


def bucket_queue_policy(queue_arn: Any, bucket: str, account: Any = None) -> dict[str, Any]:
    """A queue the media bucket notifies accepts messages from that bucket only (and, given ``account``, from this
    account's bucket of that name)."""
    condition: dict[str, Any] = {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}
    if account is not None:
        condition["StringEquals"] = {"aws:SourceAccount": account}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": condition,
            }
        ],
    }


def queue_notification(prefix: str, events: list[str], queue_arn: str) -> dict[str, Any]:
    """The bucket's notification of a queue for new objects under ``prefix`` (only there: what a job writes elsewhere
    must not start it again)."""
    return {
        "Id": "boardsite-" + prefix.strip("/").replace("/", "-"),
        "QueueArn": queue_arn,
        "Events": events,
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
    }
