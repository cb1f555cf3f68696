"""Idempotent provisioning of the AWS resources boardsite needs.

It applies the one description of resources (``deploy/resources.py``, which ``deploy/template.py`` renders for
production) to moto's server, plus what only the local stack needs: the S3 -> SQS notification that stands in for
S3 invoking the function.

    python -m devstack.provision --origin http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from botocore.exceptions import ClientError

from deploy.resources import (
    DLQ_RETENTION,
    ENCRYPTION,
    FEEDBACK_NOTIFICATIONS,
    LIFECYCLE,
    MAX_RECEIVES,
    PUBLIC_ACCESS_BLOCK,
    QueueSpec,
    cors_rules,
    mail_identities,
    mail_queue_policy,
    queue_specs,
)
from offload import aws, config
from offload.config import ORIGINALS_PREFIX


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
