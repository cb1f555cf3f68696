"""The CloudFormation template of everything Zappa does not create: bucket, queues, roles, VPC endpoints.

Built from the one description of resources (``deploy/resources.py``: bucket settings, queue specs from the registry;
``devstack/provision.py`` applies the same locally) and the policies of ``deploy/iam.py``, for the account and region
in zappa_settings.json:

    python -m deploy template [-s zappa_settings.json] [--origin https://photos.example.com] -o template.json
    aws cloudformation deploy --stack-name boardsite --template-file template.json --capabilities CAPABILITY_NAMED_IAM \
        --parameter-overrides VpcId=vpc-... PrivateRouteTableIds=rtb-...

With a VPC configured (``configure --subnets --security-groups``) it adds VPC endpoints (S3 gateway; the interface
endpoints of ``INTERFACE_ENDPOINTS`` in the function's subnets) and takes ``VpcId`` and ``PrivateRouteTableIds``: the
web function runs in private subnets and reaches AWS through them, with no NAT gateway. ``configure --vpc-endpoints
existing`` leaves them out (another installation's stack made them in the same VPC).

With a CDN configured (``configure --cdn-domain --cdn-certificate-arn``) it adds a CloudFront distribution that
reads ``variants/`` of the media bucket (origin access control) and serves only requests signed with a key of its
key group, and takes the public key(s) as ``CdnPublicKey`` (and ``CdnPublicKey2`` while rotating: DEPLOY.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deploy import iam
from deploy import resources as described
from deploy.cdn_template import CDN_KEY_SLOTS, cdn_bucket_statement, cdn_parameters, cdn_resources, has_parameter
from deploy.config import PROJECT, STAGE_NAMES, DeployConfig
from deploy.lint import check_deployable
from deploy.parse import config_from_settings
from offload import registry

DKIM_RECORDS = (1, 2, 3)  # Easy DKIM: AWS::SES::EmailIdentity's DkimDNSTokenName1..3 / DkimDNSTokenValue1..3
INTERFACE_ENDPOINTS = ("sqs", "lambda", "ssm", "sns")  # what the web function calls besides S3


def _logical(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _resource_id(cfg: DeployConfig, name: str) -> str:
    """The logical id of a named resource: from its default name, so it stays the same under any name prefix."""
    return _logical(PROJECT + name.removeprefix(cfg.name_prefix) if name.startswith(cfg.name_prefix + "-") else name)


def bucket_properties(cfg: DeployConfig, origins: list[str]) -> dict[str, Any]:
    """The bucket settings of deploy/resources.py, in CloudFormation's spelling of them."""
    encryption = [
        {"ServerSideEncryptionByDefault": rule["ApplyServerSideEncryptionByDefault"]}
        for rule in described.ENCRYPTION["Rules"]
    ]
    cors = [
        {
            "AllowedOrigins": rule["AllowedOrigins"],
            "AllowedMethods": rule["AllowedMethods"],
            "AllowedHeaders": rule["AllowedHeaders"],
            "ExposedHeaders": rule["ExposeHeaders"],
            "MaxAge": rule["MaxAgeSeconds"],
        }
        for rule in described.cors_rules(origins)
    ]
    lifecycle = []
    for rule in described.LIFECYCLE["Rules"]:
        out: dict[str, Any] = {"Id": rule["ID"], "Status": rule["Status"]}
        filt = rule["Filter"]
        if "And" in filt:
            out["Prefix"] = filt["And"]["Prefix"]
            out["TagFilters"] = filt["And"]["Tags"]
        elif filt.get("Prefix"):
            out["Prefix"] = filt["Prefix"]
        if "Expiration" in rule:
            out["ExpirationInDays"] = rule["Expiration"]["Days"]
        if "AbortIncompleteMultipartUpload" in rule:
            out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        lifecycle.append(out)
    return {
        "BucketName": cfg.media_bucket,
        "BucketEncryption": {"ServerSideEncryptionConfiguration": encryption},
        "PublicAccessBlockConfiguration": described.PUBLIC_ACCESS_BLOCK,
        "CorsConfiguration": {"CorsRules": cors},
        "LifecycleConfiguration": {"Rules": lifecycle},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},  # no ACLs at all
    }


def queue_resources(cfg: DeployConfig) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for spec in described.queue_specs(cfg.queue_names):
        if spec.local_only:
            continue
        props: dict[str, Any] = {"QueueName": spec.name, "SqsManagedSseEnabled": True}
        if spec.visibility:
            props["VisibilityTimeout"] = spec.visibility
        if spec.dead_letter:
            dlq = _resource_id(cfg, spec.dlq_name)
            resources[dlq] = {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": spec.dlq_name,
                    "MessageRetentionPeriod": described.DLQ_RETENTION,
                    "SqsManagedSseEnabled": True,
                },
            }
            props["RedrivePolicy"] = {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": described.MAX_RECEIVES,
            }
        else:
            props["MessageRetentionPeriod"] = described.DLQ_RETENTION
        resources[_resource_id(cfg, spec.name)] = {"Type": "AWS::SQS::Queue", "Properties": props}
    return resources


def _topic_id(topic: registry.Topic) -> str:
    """``boardsite-mail-feedback`` -> ``MailFeedback``: the prefix of the logical ids of a topic's resources."""
    return _logical(topic.name.removeprefix(PROJECT + "-"))


def topic_resources(cfg: DeployConfig) -> dict[str, Any]:
    """For each job fed by a topic (deploy/resources.py ``subscriptions``): the topic, its queue's subscription, the
    queue policy that lets only that topic send and, for a topic SES publishes to, the topic policy that lets SES
    of this account publish (pointing the identity's notifications at it, ``SetIdentityNotificationTopic``, has no
    CloudFormation resource: DEPLOY.md's CLI step after this stack)."""
    resources: dict[str, Any] = {}
    for subscription in described.subscriptions():
        topic, name = subscription.topic, _topic_id(subscription.topic)
        queue = _resource_id(cfg, cfg.queue(subscription.queue.setting))
        queue_arn = {"Fn::GetAtt": [queue, "Arn"]}
        resources[f"{name}Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": cfg.topic_name(topic)}}
        resources[f"{name}Subscription"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": {"Ref": f"{name}Topic"}, "Protocol": "sqs", "Endpoint": queue_arn},
        }
        resources[f"{name}QueuePolicy"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": described.subscribed_queue_policy(queue_arn, {"Ref": f"{name}Topic"}),
            },
        }
        if topic.publisher == "ses":
            resources[f"{name}TopicPolicy"] = {
                "Type": "AWS::SNS::TopicPolicy",
                "Properties": {
                    "Topics": [{"Ref": f"{name}Topic"}],
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ses.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Resource": {"Ref": f"{name}Topic"},
                                "Condition": {
                                    "StringEquals": {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}},
                                    "ArnLike": {
                                        "AWS:SourceArn": {"Fn::Sub": "arn:aws:ses:*:${AWS::AccountId}:identity/*"}
                                    },
                                },
                            }
                        ],
                    },
                },
            }
    return resources


def mail_identity_resources(cfg: DeployConfig) -> dict[str, Any]:
    """The site's SES sender identity: the domain, so SES shows the DKIM records to put in DNS; mail is sent only
    once they verify."""
    return {"MailIdentity": {"Type": "AWS::SES::EmailIdentity", "Properties": {"EmailIdentity": cfg.mail_identity}}}


def role_resources(cfg: DeployConfig) -> dict[str, Any]:
    return {
        f"{_logical(stage)}Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": cfg.role_name(stage),
                "Description": f"boardsite {stage} stage: the Lambda execution role (deploy/iam.py)",
                "AssumeRolePolicyDocument": iam.trust_policy(cfg, stage),
                "Policies": [
                    {"PolicyName": f"{cfg.name_prefix}-{stage}", "PolicyDocument": iam.stage_policy(cfg, stage)}
                ],
            },
        }
        for stage in STAGE_NAMES
    }


def endpoint_resources(cfg: DeployConfig) -> dict[str, Any]:
    """A VPC-attached web function reaches AWS through these: its subnets have no route to the internet."""
    if not (cfg.subnets and cfg.vpc_endpoints):
        return {}  # no VPC, or another installation's stack made them in this VPC (configure --vpc-endpoints)
    resources: dict[str, Any] = {
        "EndpointSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "boardsite VPC endpoints: HTTPS from the web function",
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "SourceSecurityGroupId": group}
                    for group in cfg.security_groups
                ],
            },
        },
        "S3Endpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": {"Ref": "VpcId"},
                "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"},
                "VpcEndpointType": "Gateway",  # free, and S3 traffic needs no NAT
                "RouteTableIds": {"Ref": "PrivateRouteTableIds"},
            },
        },
    }
    for service in INTERFACE_ENDPOINTS:
        resources[f"{_logical(service)}Endpoint"] = {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": {"Ref": "VpcId"},
                "ServiceName": {"Fn::Sub": f"com.amazonaws.${{AWS::Region}}.{service}"},
                "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True,  # the SDK's default endpoint names resolve to the endpoint
                "SubnetIds": list(cfg.subnets),
                "SecurityGroupIds": [{"Fn::GetAtt": ["EndpointSecurityGroup", "GroupId"]}],
            },
        }
    return resources


def s3_queue_policies(cfg: DeployConfig) -> dict[str, Any]:
    """For each S3-triggered job that takes its events through its queue (``S3Trigger.via_queue``): a queue policy
    that lets this bucket (by name) send to it. The bucket's notification itself is not declared here (a stack
    update would replace the whole notification setting, Zappa's S3 -> Lambda one included): ``python -m deploy
    wire functions`` adds it, keeping the others."""
    resources: dict[str, Any] = {}
    for _, job in described.local_notifications():
        if not job.trigger.via_queue:  # type: ignore[union-attr]
            continue
        queue = _resource_id(cfg, cfg.queue(job.trigger.local_queue.setting))  # type: ignore[union-attr]
        resources[f"{queue}S3Policy"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": queue}],
                "PolicyDocument": described.bucket_queue_policy(
                    {"Fn::GetAtt": [queue, "Arn"]}, cfg.media_bucket, {"Ref": "AWS::AccountId"}
                ),
            },
        }
    return resources


def build_template(cfg: DeployConfig, origins: list[str]) -> dict[str, Any]:
    resources = {
        "MediaBucket": {
            "Type": "AWS::S3::Bucket",
            # The photos outlive a mistaken stack deletion; a first create that fails and rolls back removes the
            # (then empty) bucket, so running the deploy again is not refused with "bucket already exists".
            "DeletionPolicy": "RetainExceptOnCreate",
            "UpdateReplacePolicy": "Retain",
            "Properties": bucket_properties(cfg, origins),
        },
        # Only HTTPS reaches the bucket (presigned URLs and the functions use it; plain HTTP is refused outright).
        # Production only: the local AWS answers plain HTTP.
        "MediaBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "MediaBucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "HttpsOnly",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                {"Fn::GetAtt": ["MediaBucket", "Arn"]},
                                {"Fn::Sub": "${MediaBucket.Arn}/*"},
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            },
        },
        **queue_resources(cfg),
        **topic_resources(cfg),
        **mail_identity_resources(cfg),
        **role_resources(cfg),
        **endpoint_resources(cfg),
    }
    resources |= s3_queue_policies(cfg)
    if cfg.cdn_domain:
        resources |= cdn_resources(cfg)
        resources["MediaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].append(cdn_bucket_statement())
    outputs = {
        "MediaBucketName": {"Value": {"Ref": "MediaBucket"}},
        **{
            f"{_logical(stage)}RoleArn": {"Value": {"Fn::GetAtt": [f"{_logical(stage)}Role", "Arn"]}}
            for stage in STAGE_NAMES
        },
        **{
            f"{name}Arn": {"Value": {"Fn::GetAtt": [name, "Arn"]}}
            for name, r in resources.items()
            if r["Type"] == "AWS::SQS::Queue"
        },
        # DEPLOY.md's set-identity-notification-topic step takes it.
        # The topics SES publishes to: DEPLOY.md's SetIdentityNotificationTopic step names them.
        **{
            f"{_topic_id(sub.topic)}TopicArn": {"Value": {"Ref": f"{_topic_id(sub.topic)}Topic"}}
            for sub in described.subscriptions()
            if sub.topic.publisher == "ses"
        },
        # The sender domain's three DKIM CNAME records (name -> value): SES sends only once DNS has them (DEPLOY.md).
        **{
            f"MailDkim{part}{n}": {"Value": {"Fn::GetAtt": ["MailIdentity", f"DkimDNSToken{part}{n}"]}}
            for n in DKIM_RECORDS
            for part in ("Name", "Value")
        },
    }
    parameters = {}
    if cfg.subnets and cfg.vpc_endpoints:
        parameters = {
            "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "the VPC of the web function's subnets"},
            "PrivateRouteTableIds": {
                "Type": "CommaDelimitedList",
                "Description": "route tables of the web function's subnets (for the S3 gateway endpoint)",
            },
        }
        # A second installation in this VPC (configure --vpc-endpoints existing) lets its web function in with this.
        outputs["EndpointSecurityGroup"] = {"Value": {"Fn::GetAtt": ["EndpointSecurityGroup", "GroupId"]}}
    extra: dict[str, Any] = {}
    if cfg.cdn_domain:
        parameters |= cdn_parameters()
        keys = [parameter for parameter, _, _ in CDN_KEY_SLOTS]
        extra["Conditions"] = {has_parameter(p): {"Fn::Not": [{"Fn::Equals": [{"Ref": p}, ""]}]} for p in keys}
        extra["Rules"] = {
            "CdnNeedsAKey": {
                "Assertions": [
                    {
                        "Assert": {"Fn::Or": [{"Fn::Not": [{"Fn::Equals": [{"Ref": p}, ""]}]} for p in keys]},
                        "AssertDescription": "give CdnPublicKey (or CdnPublicKey2): the PEM of the CDN's public key",
                    }
                ]
            }
        }
        for parameter, resource, output in CDN_KEY_SLOTS:
            # The id goes into SSM as <prefix>BOARDSITE_CDN_KEY_ID with the matching private key.
            outputs[output] = {"Condition": has_parameter(parameter), "Value": {"Ref": resource}}
        outputs["CdnDistributionDomainName"] = {"Value": {"Fn::GetAtt": ["CdnDistribution", "DomainName"]}}
        outputs["CdnDistributionId"] = {"Value": {"Ref": "CdnDistribution"}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "boardsite: resources outside Zappa (generated by `python -m deploy template`; do not edit)",
        "Parameters": parameters,
        **extra,
        "Resources": resources,
        "Outputs": outputs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy template", description=__doc__)
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    parser.add_argument("--origin", action="append", default=[], help="site origin allowed to upload (repeatable)")
    parser.add_argument("-o", "--output", default="-")
    parser.add_argument("--allow-placeholders", action="store_true", help="write it anyway (to read or lint it)")
    args = parser.parse_args(argv)
    settings = json.loads(Path(args.settings).read_text())
    cfg = config_from_settings(settings)  # says in a line when a stage is missing
    if not args.allow_placeholders:
        problems = [
            p
            for stage in STAGE_NAMES
            for p in check_deployable(stage, settings[stage])
            if "aws_region" in p or "role_arn" in p
        ]
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
    origins = args.origin or ([f"https://{cfg.domain}"] if cfg.domain else [])
    if not origins:
        parser.error("give --origin (the site's https origin), or configure --domain")
    text = json.dumps(build_template(cfg, origins), indent=2) + "\n"
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    return 0
