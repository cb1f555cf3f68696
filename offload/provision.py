"""Idempotent provisioning of the AWS resources boardsite needs.

Locally it builds the whole picture on moto's server; against real AWS the same calls document what production
needs (there Zappa wires S3 to the Lambda function instead of to the local uploads queue).

    python -m offload.provision --origin http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, config, registry
from offload.config import MAIL_SENT_PREFIX, ORIGINALS_PREFIX

MAX_RECEIVES = 5  # a message failing this often goes to the dead-letter queue instead of looping forever
DLQ_RETENTION = 1209600  # 14 days, SQS's longest: time to look at a failure and redrive it

# --- The resource definitions: read by provision() below and by deploy/template.py (the CloudFormation template),
# so the local AWS and production are built from one description.

# The tag the upload form puts on every original (its XML: UNCONFIRMED_TAGGING in boardsite/images/services.py).
UNCONFIRMED_TAG = {"Key": "boardsite-state", "Value": "unconfirmed"}
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
            # send_email's idempotency markers: a duplicate delivery can only come while the message can still be
            # on the mail queue or its dead-letter queue (14 days at most), so they are needed no longer.
            "ID": "expire-mail-markers",
            "Status": "Enabled",
            "Filter": {"Prefix": MAIL_SENT_PREFIX},
            "Expiration": {"Days": 15},
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
        return f"{self.name}-dlq"


def queue_specs(names: dict[str, str] | None = None, rename: Callable[[str], str] | None = None) -> list[QueueSpec]:
    """Every queue, derived from the registry: a job's trigger queue, the local uploads queue, failure queues.

    ``names``: queue names by setting (default: this environment's, ``config.queue_name``); ``rename``: a deployment's
    name for a failure queue (its name prefix, deploy/stages.py).
    """

    def name(setting: str) -> str:
        return (names or {}).get(setting) or config.queue_name(setting)

    specs: list[QueueSpec] = []
    for job in registry.JOBS.values():
        if isinstance(job.trigger, registry.SQSTrigger):
            specs.append(QueueSpec(name(job.trigger.queue_setting), registry.visibility_timeout(job), True))
        elif isinstance(job.trigger, registry.S3Trigger):
            # The local runner polls it as Lambda's poller would; twice the timeout so a slow run is not redelivered.
            specs.append(QueueSpec(name(job.trigger.local_queue_setting), 2 * job.timeout, True, local_only=True))
        if job.failure_queue:
            specs.append(QueueSpec(rename(job.failure_queue) if rename else job.failure_queue, 0, False))
    return specs


def mail_queue_policy(queue_arn: Any, topic_arn: Any) -> dict[str, Any]:
    """A queue subscribed to a topic (mail, mail feedback) accepts messages from that topic only."""
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


def provision_mail(sqs: Any, queue: tuple[str, str]) -> dict[str, str]:
    """The mail topic, the mail queue's subscription to it, and (the local SES) the verified sender identity.

    The subscription keeps SNS's envelope (no raw delivery): send_email unwraps it, and the envelope's MessageId
    helps trace a mail. On real AWS the sender's domain is verified with DNS records (DKIM), not here.
    """
    sns = aws.client("sns")
    queue_url, queue_arn = queue
    topic_arn = sns.create_topic(Name=config.mail_topic())["TopicArn"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(mail_queue_policy(queue_arn, topic_arn))}
    )
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    if not any(sub["Endpoint"] == queue_arn for page in pages for sub in page["Subscriptions"]):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    aws.client("ses").verify_email_identity(EmailAddress=config.mail_from())
    return {"mail_topic": topic_arn, "mail_queue": queue_url}


# SES's notification types that the feedback topic receives (apply_mail_feedback records them; DEPLOY.md wires them).
FEEDBACK_NOTIFICATIONS = ("Bounce", "Complaint")


def mail_identities(mail_from: str) -> list[str]:
    """The SES identities mail from ``mail_from`` is sent under: its domain (production verifies the domain) and the
    address itself (the local SES verifies it; SES uses an address identity's settings over its domain's)."""
    return [mail_from.rpartition("@")[2], mail_from]


def provision_mail_feedback(sqs: Any, queue: tuple[str, str]) -> dict[str, str]:
    """The feedback topic, the feedback queue's subscription to it, and SES's bounce and complaint notifications of
    the sender's identities pointed at it (``SetIdentityNotificationTopic``: CloudFormation cannot express it, so on
    AWS it is DEPLOY.md's CLI step; here the local SES gets the same call).

    SNS's envelope is kept (as for the mail queue): apply_mail_feedback unwraps it.
    """
    sns, ses = aws.client("sns"), aws.client("ses")
    queue_url, queue_arn = queue
    topic_arn = sns.create_topic(Name=config.mail_feedback_topic())["TopicArn"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(mail_queue_policy(queue_arn, topic_arn))}
    )
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    if not any(sub["Endpoint"] == queue_arn for page in pages for sub in page["Subscriptions"]):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    domain, address = mail_identities(config.mail_from())
    ses.verify_domain_identity(Domain=domain)
    for identity in (domain, address):
        for kind in FEEDBACK_NOTIFICATIONS:
            ses.set_identity_notification_topic(Identity=identity, NotificationType=kind, SnsTopic=topic_arn)
    return {"mail_feedback_topic": topic_arn, "mail_feedback_queue": queue_url}


def _create_queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:  # exists with other attributes: bring it in line
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _queue(sqs: Any, spec: QueueSpec) -> tuple[str, str]:
    attributes = {"MessageRetentionPeriod": str(DLQ_RETENTION)} if not spec.dead_letter else {}
    if spec.visibility:
        attributes["VisibilityTimeout"] = str(spec.visibility)
    if spec.dead_letter:
        _, dlq_arn = _create_queue(sqs, spec.dlq_name, {"MessageRetentionPeriod": str(DLQ_RETENTION)})
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    return _create_queue(sqs, spec.name, attributes)


def provision(*, origins: list[str], local_events: bool = True) -> dict[str, str]:
    """Create (or bring in line) the bucket, its CORS, the queues and, locally, the S3 -> SQS notification."""
    cfg = config.load()
    s3 = aws.client("s3")
    sqs = aws.client("sqs")
    try:
        if cfg.region == "us-east-1":
            s3.create_bucket(Bucket=cfg.bucket)
        else:
            s3.create_bucket(Bucket=cfg.bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region})
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_public_access_block(Bucket=cfg.bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    s3.put_bucket_encryption(Bucket=cfg.bucket, ServerSideEncryptionConfiguration=ENCRYPTION)
    s3.put_bucket_cors(Bucket=cfg.bucket, CORSConfiguration={"CORSRules": cors_rules(origins)})
    # Backs up the site's own cleanup: an original never processed keeps the tag its upload form set (the processor
    # removes it), and S3 expires it after two days; unfinished multipart uploads go after one.
    s3.put_bucket_lifecycle_configuration(Bucket=cfg.bucket, LifecycleConfiguration=LIFECYCLE)
    urls = {spec.name: _queue(sqs, spec) for spec in queue_specs()}
    out = {"bucket": cfg.bucket, "results_queue": urls[cfg.results_queue][0]}
    out |= provision_mail(sqs, urls[config.queue_name("BOARDSITE_MAIL_QUEUE")])
    out |= provision_mail_feedback(sqs, urls[config.queue_name("BOARDSITE_MAIL_FEEDBACK_QUEUE")])
    # The uploads queue always exists locally (the runner polls it; the sweep redelivers lost events to it), but S3
    # notifies it only when process_image runs in lambda mode: in celery or inline mode the site starts the job, and
    # a second run from S3's event would hide a lost Celery message.
    uploads_url, uploads_arn = urls[cfg.uploads_queue]
    out["uploads_queue"] = uploads_url
    if not local_events:
        s3.put_bucket_notification_configuration(Bucket=cfg.bucket, NotificationConfiguration={})
    else:
        sqs.set_queue_attributes(
            QueueUrl=uploads_url,
            Attributes={
                "Policy": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": uploads_arn,
                                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{cfg.bucket}"}},
                            }
                        ],
                    }
                )
            },
        )
        s3.put_bucket_notification_configuration(
            Bucket=cfg.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "boardsite-originals",
                        "QueueArn": uploads_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        # Only originals: variants are written elsewhere, or the function would trigger itself.
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": ORIGINALS_PREFIX}]}},
                    }
                ]
            },
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origin", action="append", default=[], help="a site origin allowed to upload (repeatable)")
    parser.add_argument(
        "--no-local-events", action="store_true", help="no S3 -> SQS notification (process_image not in lambda mode)"
    )
    args = parser.parse_args(argv)
    out = provision(origins=args.origin or ["http://127.0.0.1:8000"], local_events=not args.no_local_events)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
