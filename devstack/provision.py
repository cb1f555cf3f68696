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
    Subscription,
    bucket_queue_policy,
    cors_rules,
    local_notifications,
    mail_identities,
    queue_notification,
    queue_specs,
    subscribed_queue_policy,
    subscriptions,
)
from offload import aws, config


def subscribe(sqs: Any, subscription: Subscription, queue: tuple[str, str]) -> str:
    """The topic, the queue's subscription to it (SNS's envelope kept: the job unwraps it, and its MessageId helps
    trace a message) and the queue policy that lets only that topic send. A topic SES publishes to also gets the
    sender identities' bounce and complaint notifications (``SetIdentityNotificationTopic``: CloudFormation cannot
    express it, so on AWS it is DEPLOY.md's CLI step; here the local SES gets the same call). Returns its ARN."""
    sns = aws.client("sns")
    queue_url, queue_arn = queue
    topic_arn = sns.create_topic(Name=subscription.topic.resolved())["TopicArn"]
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(subscribed_queue_policy(queue_arn, topic_arn))}
    )
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    if not any(sub["Endpoint"] == queue_arn for page in pages for sub in page["Subscriptions"]):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    if subscription.topic.publisher == "ses":
        ses = aws.client("ses")
        domain, address = mail_identities(config.mail_from())
        ses.verify_domain_identity(Domain=domain)
        for identity in (domain, address):
            for kind in FEEDBACK_NOTIFICATIONS:
                ses.set_identity_notification_topic(Identity=identity, NotificationType=kind, SnsTopic=topic_arn)
    return topic_arn


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


def provision(*, origins: list[str]) -> dict[str, str]:
    """Create (or bring in line) the bucket, its CORS, the queues, the topics and their subscriptions, and the
    S3 -> SQS notifications of the S3-triggered jobs. Returns the bucket, each queue's URL and each topic's ARN by
    name."""
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
    out = {"bucket": cfg.bucket} | {name: url for name, (url, _) in urls.items()}
    # The site's sender (the local SES verifies the address; production verifies its domain with DKIM records),
    # before a topic SES publishes to is pointed at its identities.
    aws.client("ses").verify_email_identity(EmailAddress=config.mail_from())
    for subscription in subscriptions():
        out[subscription.topic.resolved()] = subscribe(sqs, subscription, urls[subscription.queue.resolved()])
    # Each S3-triggered job's local queue is notified for what its trigger's ``notify_prefix`` covers: the objects
    # the site placed for Lambda (``jobs.place``). The others the site starts itself, once: a second run from S3's
    # event would hide a lost Celery message.
    configurations = []
    for prefix, job in local_notifications():
        queue_url, queue_arn = urls[job.trigger.local_queue.resolved()]  # type: ignore[union-attr]
        policy = bucket_queue_policy(queue_arn, cfg.bucket)
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        configurations.append(queue_notification(prefix, list(job.trigger.events), queue_arn))  # type: ignore[union-attr]
    s3.put_bucket_notification_configuration(
        Bucket=cfg.bucket,
        NotificationConfiguration={"QueueConfigurations": configurations} if configurations else {},
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--origin", action="append", default=[], help="a site origin allowed to upload (repeatable)")
    args = parser.parse_args(argv)
    out = provision(origins=args.origin or ["http://127.0.0.1:8000"])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
