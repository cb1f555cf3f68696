"""Idempotent provisioning of the AWS resources boardsite needs.

Locally it builds the whole picture on moto's server; against real AWS the same calls document what production
needs (there Zappa wires S3 to the Lambda function instead of to the local uploads queue).

    python -m offload.provision --origin http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from botocore.exceptions import ClientError

from offload import aws, config
from offload.config import ORIGINALS_PREFIX

MAX_RECEIVES = 5  # a message failing this often goes to the dead-letter queue instead of looping forever

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
    ]
}


def _queue(sqs: Any, name: str, *, visibility: int) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
    }
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:  # exists with other attributes: bring it in line
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


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
    # Private: nothing is ever public; the site hands out short-lived presigned URLs.
    s3.put_public_access_block(
        Bucket=cfg.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=cfg.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_cors(
        Bucket=cfg.bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": origins,
                    "AllowedMethods": ["GET", "POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )
    # Backs up the site's own cleanup: an original never processed keeps the tag its upload form set (the processor
    # removes it), and S3 expires it after two days; unfinished multipart uploads go after one.
    s3.put_bucket_lifecycle_configuration(Bucket=cfg.bucket, LifecycleConfiguration=LIFECYCLE)
    results_url, _ = _queue(sqs, cfg.results_queue, visibility=60)
    out = {"bucket": cfg.bucket, "results_queue": results_url}
    # The uploads queue always exists locally (the runner polls it; the sweep redelivers lost events to it), but S3
    # notifies it only when process_image runs in lambda mode: in celery or inline mode the site starts the job, and
    # a second run from S3's event would hide a lost Celery message.
    uploads_url, uploads_arn = _queue(sqs, cfg.uploads_queue, visibility=120)
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
