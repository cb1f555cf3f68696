"""Least-privilege IAM policies for each stage's Lambda execution role, generated from the registry and resources.

Each stage gets exactly the bucket prefixes, queues, functions, SSM path and log group it uses; the CloudFormation
template (deploy/template.py) creates the roles with these documents, and the settings point Zappa at those roles
(``manage_roles: false``, ``role_arn``). tests/deploy/test_iam.py reads the AWS calls each stage's code makes and fails
if one lacks its permission here, or if a document grants ``*``.

    python -m deploy policy web [-s zappa_settings.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deploy.config import DeployConfig, jobs_of
from deploy.parse import config_from_settings
from offload import registry
from offload.config import ORIGINALS_PREFIX, UPLOAD_GRANTS_PREFIX, VARIANTS_PREFIX

# Lambda creates the network interfaces of a VPC-attached function with the function's role. These EC2 actions
# have no resource-level permissions AWS can evaluate for that call (AWS's own AWSLambdaVPCAccessExecutionRole uses
# "*"); they are the only actions allowed on "*", and only in a stage with a VPC.
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)

# The services Zappa 0.63 hands a stage's ``role_arn`` to (tests/deploy/test_iam.py reads zappa/core.py for every place
# it does, so a Zappa that hands it to a new service fails the suite):
# - Lambda runs the function as the role (``create_function``/``update_function_configuration`` ``Role``);
# - EventBridge: every schedule rule carries it (``put_rule(..., RoleArn=...)``);
# - API Gateway: every method's integration calls Lambda with it (``Integration.Credentials``, and a TOKEN
#   authorizer's ``AuthorizerCredentials``).
# A stage trusts only the services its settings make Zappa hand the role to (``stage_principals``).
LAMBDA = "lambda.amazonaws.com"
EVENTS = "events.amazonaws.com"
APIGATEWAY = "apigateway.amazonaws.com"


def stage_principals(stage: str) -> list[str]:
    """The service principals that assume ``stage``'s role once Zappa has deployed it.

    From the registry, not from the modes of one configuration: moving a scheduled job to Celery and back must not
    need a new template before ``zappa schedule``.
    """
    principals = [LAMBDA]
    if stage == "web":
        principals.append(APIGATEWAY)  # the web stage is the one with API Gateway (functions: apigateway_enabled off)
    if any(isinstance(job.trigger, registry.ScheduleTrigger) for job in jobs_of(stage)):
        principals.append(EVENTS)
    return principals


def trust_policy(cfg: DeployConfig, stage: str) -> dict[str, Any]:
    """Who may assume ``stage``'s role: the services Zappa hands it to, for this account only.

    ``aws:SourceAccount`` is compared with ``StringEqualsIfExists``: EventBridge documents sending it when it assumes
    a rule's role, but Lambda (the execution role) and API Gateway (integration credentials) do not document it for
    role assumption, and a plain ``StringEquals`` denies when a key is absent: every invocation would fail. Where a
    service sends the key, another account's resource cannot use the role (iam:PassRole is same-account anyway).
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEqualsIfExists": {"aws:SourceAccount": cfg.account}},
            }
            for principal in stage_principals(stage)
        ],
    }


def _statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources, **extra}


def _objects(cfg: DeployConfig, *prefixes: str) -> list[str]:
    return [f"arn:aws:s3:::{cfg.media_bucket}/{prefix}*" for prefix in prefixes]


def _logs(cfg: DeployConfig, stage: str) -> dict[str, Any]:
    group = f"arn:aws:logs:{cfg.region}:{cfg.account}:log-group:/aws/lambda/{cfg.function_name(stage)}"
    return _statement(
        "Logs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], [group, group + ":*"]
    )


def _bucket_listing(cfg: DeployConfig) -> dict[str, Any]:
    # Without ListBucket, S3 answers a HEAD/GET of a missing object with 403 instead of 404, and the code tells "the
    # photo was deleted" from "no permission" by that 404. Bucket-level only: it lists keys, never reads bytes.
    return _statement("ListBucket", ["s3:ListBucket"], [f"arn:aws:s3:::{cfg.media_bucket}"])


POLLER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def job_statements(cfg: DeployConfig, stage: str) -> list[dict[str, Any]]:
    """What the stage's jobs need, derived from the registry: Lambda's poller reads each SQS-triggered job's queue
    with the stage's role; a job that reports sends to the results channel; Lambda sends an asynchronous job's
    failed event to its dead-letter queue as the role; each ``Grant`` a job declares. Jobs moved to Celery keep
    theirs: moving back must not need a new template."""
    statements = []
    results = cfg.sqs_arn(cfg.queue(registry.RESULTS.setting))
    for job in jobs_of(stage):
        name = "".join(part.capitalize() for part in job.name.split("_"))
        if (polled := registry.polled(job)) is not None:
            queue = cfg.sqs_arn(cfg.queue(polled.setting))
            statements.append(_statement(f"{name}Poller", list(POLLER_ACTIONS), [queue]))
        if job.reports:
            statements.append(_statement(f"{name}Reports", ["sqs:SendMessage", "sqs:GetQueueUrl"], [results]))
        if job.dead_letter:
            dead_letter = cfg.sqs_arn(cfg.queue(job.dead_letter.setting))
            statements.append(_statement(f"{name}DeadLetter", ["sqs:SendMessage"], [dead_letter]))
        for n, grant in enumerate(job.grants, start=1):
            targets: list[str] = _objects(cfg, *grant.prefixes)
            if grant.on_trigger_queue and job.queue is not None:
                targets.append(cfg.sqs_arn(cfg.queue(job.queue.setting)))
            if grant.as_mail_sender:
                targets += cfg.ses_identity_arns()  # only from the site's identity
            statements.append(_statement(f"{name}Grant{n}", list(grant.actions), targets))
    return statements


def web_policy(cfg: DeployConfig) -> dict[str, Any]:
    prefix = cfg.ssm_prefix.rstrip("/")
    ssm = f"arn:aws:ssm:{cfg.region}:{cfg.account}:parameter{prefix}"
    # The site hands work to jobs as AWS would (boardsite.core.jobs): a queue no topic feeds gets the message
    # itself, a topic the site publishes to gets it published, and a lost S3 event is redelivered by invoking the
    # stage that runs the S3-triggered job.
    sent = sorted(
        {
            cfg.sqs_arn(cfg.queue(job.trigger.queue.setting))
            for job in registry.JOBS.values()
            if (isinstance(job.trigger, registry.SQSTrigger) and not job.trigger.topic)
            or (isinstance(job.trigger, registry.S3Trigger) and job.trigger.via_queue)  # a lost event, redelivered
        }
    )
    redelivered = sorted(
        {
            cfg.function_arn(registry.ZAPPA_STAGES[job.side])
            for job in registry.JOBS.values()
            if isinstance(job.trigger, registry.S3Trigger) and not job.trigger.via_queue
        }
    )
    # The control room's dead letters (boardsite/control/deadletters.py): read, hide while acting, delete; a retry on
    # Lambda sends the letter back to its job's own queue.
    trigger_queues = sorted({cfg.sqs_arn(cfg.queue(job.queue.setting)) for job in registry.JOBS.values() if job.queue})
    dead_letters = sorted(
        {
            cfg.sqs_arn(registry.redrive_queue(cfg.queue(job.queue.setting)))
            for job in registry.JOBS.values()
            if job.queue
        }
        | {cfg.sqs_arn(cfg.queue(job.dead_letter.setting)) for job in registry.JOBS.values() if job.dead_letter}
    )
    statements = [
        _logs(cfg, "web"),
        _bucket_listing(cfg),
        # Presigned GETs of originals and variants, HEADs of originals, the stored results beside the variants.
        _statement("ReadMedia", ["s3:GetObject"], _objects(cfg, ORIGINALS_PREFIX, VARIANTS_PREFIX)),
        # The upload form is a presigned POST signed by this role: it may only ever put tagged originals.
        _statement("UploadOriginals", ["s3:PutObject", "s3:PutObjectTagging"], _objects(cfg, ORIGINALS_PREFIX)),
        # Moving photos between boards (boardsite/images/bulk.py): their variants are copied under the new board's keys
        # (CopyObject: GetObject on the source, PutObject on the copy; originals are covered above).
        _statement("MoveVariants", ["s3:PutObject"], _objects(cfg, VARIANTS_PREFIX)),
        # Deleting a photo or a board, and the storage sweep.
        _statement("DeleteMedia", ["s3:DeleteObject"], _objects(cfg, ORIGINALS_PREFIX, VARIANTS_PREFIX)),
        # Ending a person's upload grants (boardsite/images/grants.py): the upload-ticket function reads the mark.
        _statement("RevokeUploadGrants", ["s3:PutObject"], _objects(cfg, f"{UPLOAD_GRANTS_PREFIX}revoked/")),
        _statement("SendToJobs", ["sqs:SendMessage", "sqs:GetQueueUrl"], sent),
        _statement("PublishToJobs", ["sns:Publish"], [cfg.topic_arn(t) for t in registry.site_topics()]),
        _statement("RedeliverToJobs", ["lambda:InvokeFunction"], redelivered),
        # Where the upload-ticket function answers (boardsite/core/jobs.py function_url): its stage's function URL.
        _statement("FindFunctionUrl", ["lambda:GetFunctionUrlConfig"], [cfg.function_arn("functions")]),
        _statement(
            "DeadLetters",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            ],
            dead_letters,
        ),
        _statement("RetryDeadLetters", ["sqs:SendMessage", "sqs:GetQueueUrl"], trigger_queues),
        # API Gateway calls the function with this role (Zappa sets it as the integration's credentials): the
        # unqualified function, and with SnapStart the alias Zappa points at the latest version (and versions).
        _statement(
            "InvokedByApiGateway",
            ["lambda:InvokeFunction"],
            [cfg.function_arn("web"), cfg.function_arn("web") + ":*"],
        ),
        # The secrets (SecureStrings with the AWS-managed aws/ssm key, whose key policy allows SSM callers of this
        # account; a customer-managed key would need kms:Decrypt on that key here).
        _statement("Secrets", ["ssm:GetParametersByPath"], [ssm, ssm + "/*"]),
        *job_statements(cfg, "web"),
    ]
    if cfg.cdn_domain:
        # Deleting a photo or a board invalidates its variants on the photo CDN: this distribution only (the template
        # creates both, so the role names it).
        distribution = {"Fn::Sub": "arn:aws:cloudfront::${AWS::AccountId}:distribution/${CdnDistribution}"}
        statements.append(_statement("InvalidateCdn", ["cloudfront:CreateInvalidation"], [distribution]))
    if cfg.subnets:
        statements.append(_statement("VpcNetworkInterfaces", list(VPC_ACTIONS), ["*"]))
    return {"Version": "2012-10-17", "Statement": [s for s in statements if s["Resource"]]}  # none for nothing


def functions_policy(cfg: DeployConfig) -> dict[str, Any]:
    prefix = cfg.ssm_prefix.rstrip("/")
    # The upload-ticket function's key for checking grants: that one SecureString, not the site's other secrets.
    grant_key = f"arn:aws:ssm:{cfg.region}:{cfg.account}:parameter{prefix}/UPLOAD_GRANT_KEY"
    statements = [
        _logs(cfg, "functions"),
        _bucket_listing(cfg),
        *job_statements(cfg, "functions"),
        _statement("UploadGrantKey", ["ssm:GetParameter"], [grant_key]),
    ]
    return {"Version": "2012-10-17", "Statement": statements}


POLICIES = {"web": web_policy, "functions": functions_policy}


def stage_policy(cfg: DeployConfig, stage: str) -> dict[str, Any]:
    assert set(POLICIES) == set(registry.ZAPPA_STAGES.values())
    return POLICIES[stage](cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy policy", description=__doc__)
    parser.add_argument("stage", choices=sorted(POLICIES))
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    args = parser.parse_args(argv)
    cfg = config_from_settings(json.loads(Path(args.settings).read_text()))
    print(json.dumps(stage_policy(cfg, args.stage), indent=2))
    return 0
