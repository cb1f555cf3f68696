"""Each stage's IAM policy covers every AWS call its code can make, and grants nothing on "*".

The calls are read from the source (AST), not listed by hand: boto3 client method calls (``aws.client("s3").x()``,
a variable bound to a client, a parameter named after a service), paginators and presigned URLs. Which code a stage
runs is followed from its entry points through imports and references between top-level functions, so a module
imported for one helper does not drag its other functions' calls in (the web stage imports ``variants_prefix`` from
the image processor, not its S3 writes); that analysis is in tests/iam_analysis.py. Which objects each S3 call acts
on is read from the calls the site and the functions really make on the local S3: every key must be under a prefix its
stage's role grants that action on.
"""

from __future__ import annotations

import ast
import datetime as dt
import fnmatch
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import botocore.client
import botocore.signers
import pytest
import zappa.core
from django.test import Client
from django.utils import timezone

from boardsite.boards.services import board_create
from boardsite.images import bulk
from boardsite.images import grants as upload_grants
from boardsite.images.models import Image, Status
from boardsite.images.sweep import image_sweep_stale
from deploy import iam
from deploy.config import DeployConfig
from deploy.generate import build_settings
from offload import config, imaging, registry
from offload.config import ORIGINALS_PREFIX as ORIGINALS
from offload.events import sqs_event
from offload.functions import process_image, send_email, upload_ticket
from tests.helpers import send_original, upload
from tests.iam_analysis import (
    ACTIONS,
    NOT_API,
    PRESIGNED_POST,
    all_modules,
    granted,
    missing_permissions,
    model_client,
    parse_module,
    reachable_calls,
    stage_entry,
    units_of,
)

ROOT = Path(__file__).resolve().parents[2]
CFG = DeployConfig(
    account="111122223333",
    region="eu-west-1",
    subnets=("subnet-0a",),
    security_groups=("sg-0c",),
    database_url="postgres://boardsite@db.example:5432/boardsite",
)

CDN_CFG = DeployConfig(
    account="111122223333",
    region="eu-west-1",
    domain="photos.example.com",
    cdn_domain="media.photos.example.com",
    cdn_certificate_arn="arn:aws:acm:us-east-1:111122223333:certificate/1b2c3d4e-0000-0000-0000-000000000000",
)
# Calls made only in the CloudFront mode (boardsite/images/cdn.py): granted only with a CDN configured.
CDN_ONLY = {"cloudfront:CreateInvalidation"}


@pytest.mark.parametrize("stage", ["web", "functions"])
def test_every_aws_call_has_its_permission(stage):
    calls = reachable_calls(stage_entry(stage))
    assert missing_permissions(calls, iam.stage_policy(CDN_CFG, stage)) == []
    without_cdn = missing_permissions(calls, iam.stage_policy(CFG, stage))
    assert all(line.rsplit(" needs ", 1)[1] in CDN_ONLY for line in without_cdn), without_cdn


# --- Which objects: each S3 call's key must be under a prefix its role grants that action on --------------------

# Keys are built at run time (from an upload's board and id, an S3 event, a message id), so they are read from the
# calls the code really makes on the local S3, each told to its stage by the job handler it runs under.
FUNCTIONS_HANDLERS = {
    tuple(job.handler.rsplit(".", 1))
    for job in registry.JOBS.values()
    if registry.ZAPPA_STAGES[job.side] == "functions"
}
# Presigned only to learn the bucket's URL (for the Content-Security-Policy); never handed out or used.
ORIGIN_PROBES = {("boardsite.core.middleware", "_bucket_origins")}
PRESIGNED_POST_OPERATION = "PresignedPost"


@dataclass(frozen=True)
class ObjectCall:
    stage: str
    operation: str
    key: str
    where: str


def _caller() -> tuple[str, str, bool] | None:
    """(stage, module:function that called botocore, whether that is an origin probe); None when the caller is not
    site or offload code (the test's own calls)."""
    frame = sys._getframe(3)  # past this, record() and the spy
    while frame is not None and frame.f_globals.get("__name__", "").startswith("botocore."):
        frame = frame.f_back
    if frame is None or frame.f_globals.get("__name__", "").split(".")[0] not in ("boardsite", "offload"):
        return None
    where, probe = f"{frame.f_globals['__name__']}:{frame.f_code.co_name}", False
    stage = "web"
    while frame is not None:
        function = (frame.f_globals.get("__name__", ""), frame.f_code.co_name)
        stage = "functions" if function in FUNCTIONS_HANDLERS else stage
        probe = probe or function in ORIGIN_PROBES
        frame = frame.f_back
    return stage, where, probe


@pytest.fixture
def object_calls(monkeypatch) -> list[ObjectCall]:
    """Every S3 call on an object (and every presigned POST) made by site or function code from now on."""
    calls: list[ObjectCall] = []

    def record(operation: str, keys: Iterable[str]) -> None:
        if (found := _caller()) is not None and not found[2]:
            calls.extend(ObjectCall(found[0], operation, key, found[1]) for key in keys)

    real_call = botocore.client.BaseClient._make_api_call

    def make_api_call(client, operation, params):
        if client.meta.service_model.service_name == "s3":
            listed = params.get("Delete", {}).get("Objects", [])
            record(operation, [params["Key"]] if "Key" in params else [o["Key"] for o in listed])
        return real_call(client, operation, params)

    real_post = botocore.signers.S3PostPresigner.generate_presigned_post

    def generate_presigned_post(presigner, request_dict, fields=None, *args, **kwargs):
        record(PRESIGNED_POST_OPERATION, [fields["key"]])
        return real_post(presigner, request_dict, fields, *args, **kwargs)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    monkeypatch.setattr(botocore.signers.S3PostPresigner, "generate_presigned_post", generate_presigned_post)
    return calls


def object_actions(operation: str) -> list[str]:
    """The object-level IAM actions of an S3 operation (ListBucket is granted on the bucket, not on keys)."""
    actions = PRESIGNED_POST if operation == PRESIGNED_POST_OPERATION else ACTIONS.get(("s3", operation))
    return [a for a in actions or [f"s3:{operation}"] if a != "s3:ListBucket"]


def uncovered_keys(calls: Iterable[ObjectCall], cfg: DeployConfig) -> list[str]:
    """Each call whose key no statement of its stage's policy grants one of its actions on."""
    policies = {stage: iam.stage_policy(cfg, stage) for stage in ("web", "functions")}
    return sorted(
        {
            f"{call.where} ({call.stage}): {call.operation} {call.key} needs {action} on it"
            for call in calls
            for action in object_actions(call.operation)
            if not any(
                action in statement["Action"]
                and any(
                    isinstance(r, str) and fnmatch.fnmatchcase(f"arn:aws:s3:::{cfg.media_bucket}/{call.key}", r)
                    for r in statement["Resource"]
                )
                for statement in policies[call.stage]["Statement"]
            )
        }
    )


def static_object_operations(stage: str) -> set[str]:
    """The S3 operations on objects the scan finds in ``stage``'s code."""
    operations = set()
    for service, method, arg, _ in reachable_calls(stage_entry(stage)):
        if service != "s3" or method in NOT_API:
            continue
        if method == "generate_presigned_post":
            operations.add(PRESIGNED_POST_OPERATION)
            continue
        name = arg if method in ("generate_presigned_url", "get_paginator") else method
        operation = model_client("s3").meta.method_to_api_mapping[name]
        if object_actions(operation):
            operations.add(operation)
    return operations


@pytest.mark.django_db
def test_every_object_each_stage_touches_is_under_a_prefix_its_role_grants(
    local_aws, settings, people, board, jpeg, django_capture_on_commit_callbacks, object_calls, monkeypatch
):
    """The actions test above checks each call's action, not the keys it acts on: a role granting DeleteObject on
    variants/ only would pass it while deleting a photo's original is denied. Here the site and the functions run on
    the local S3 through every S3 operation the scan finds, and each key must be under a prefix (config's
    ORIGINALS_PREFIX, VARIANTS_PREFIX, MAIL_SENT_PREFIX, …) that its stage's policy grants the call's actions on."""
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    bucket, s3 = settings.BOARDSITE_BUCKET, process_image.aws.client("s3")
    uploader, owner = Client(), Client()
    uploader.force_login(people["contributor"])
    owner.force_login(people["owner"])
    # The site: an upload ticket, a completed upload (processed inline, by the functions' handler), its deletion.
    with django_capture_on_commit_callbacks(execute=True):
        done = upload(uploader, board.pk, jpeg())
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(f"/images/{done['image']['id']}/delete/").status_code == 302
    # A processed upload whose report was lost: the sweep applies the result the function stored beside the variants.
    lost, event = send_original(uploader, board.pk, jpeg(), s3, bucket)
    process_image.handler(event, None, report=[].append)
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    Image.objects.filter(pk=lost["image"]["id"]).update(status=Status.PROCESSING, attempt_started_at=an_hour_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert image_sweep_stale()["recovered"] == 1
    # Photos moved to another board (copied under its keys, the old ones deleted).
    other = board_create(user=people["owner"], title="Other")
    with django_capture_on_commit_callbacks(execute=True):
        bulk.photos_move(user=people["owner"], board_id=board.pk, image_ids=[lost["image"]["id"]], target_id=other.pk)
    # The functions: an original deleted while it is processed (its variants are deleted again).
    _, event = send_original(uploader, board.pk, jpeg(), s3, bucket)
    real_make_variants = imaging.make_variants

    def deleted_meanwhile(data, options):
        s3.delete_object(Bucket=bucket, Key=event["Records"][0]["s3"]["object"]["key"])
        return real_make_variants(data, options)

    monkeypatch.setattr(imaging, "make_variants", deleted_meanwhile)
    process_image.handler(event, None, report=[].append)
    # Upload grants: the function issues a ticket with a grant (its claim, the revocations it reads, the presigned
    # POST it signs), and the site revokes a person's grants.
    settings.UPLOAD_GRANT_KEY = "k" * 43
    settings.UPLOAD_TICKET_FUNCTION_URL = "http://functions.local"
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "issue_upload_ticket": "lambda"}
    monkeypatch.setenv("UPLOAD_GRANT_KEY", "k" * 43)
    grant = uploader.post(
        "/api/upload-grants", {"board": board.pk, "files": 1, "bytes": 10}, content_type="application/json"
    ).json()
    photo = {"filename": "a.jpg", "content_type": "image/jpeg", "size": 10}
    body = json.dumps({"grant": grant["grant"], "board": board.pk, **photo})
    request = {"rawPath": "/tickets", "requestContext": {"http": {"method": "POST"}}, "body": body}
    assert upload_ticket.handler(request, report=[].append)["statusCode"] == 201
    upload_grants.revoke(user_id=people["contributor"].pk)
    # Mail: sent, a duplicate delivery, and one SES is not ready for (its claim released).
    mail = {"message_id": "m-1", "to": ["ada@example.com"], "subject": "Hi", "text": "Hello"}
    unverified = {**mail, "message_id": "m-2", "from": "nobody@unverified.example"}
    for body in (mail, mail, unverified):
        send_email.handler(sqs_event([("sqs-1", json.dumps(body))]))

    seen = {(call.stage, call.operation) for call in object_calls}
    for stage in ("web", "functions"):
        assert {(stage, op) for op in static_object_operations(stage)} <= seen, "exercise every operation here"
    prefixes = {call.key.split("/", 1)[0] + "/" for call in object_calls}
    assert {config.ORIGINALS_PREFIX, config.VARIANTS_PREFIX, config.MAIL_SENT_PREFIX} <= prefixes
    uncovered = uncovered_keys(object_calls, CFG)
    assert not uncovered, "\n".join(uncovered)


def test_only_a_cdn_stage_may_invalidate_and_only_its_distribution():
    assert not CDN_ONLY & granted(iam.stage_policy(CFG, "web"))
    assert ("cloudfront", "create_invalidation") in {(s, m) for s, m, _, _ in reachable_calls(stage_entry("web"))}
    (statement,) = [s for s in iam.stage_policy(CDN_CFG, "web")["Statement"] if s["Sid"] == "InvalidateCdn"]
    assert statement["Resource"] == [
        {"Fn::Sub": "arn:aws:cloudfront::${AWS::AccountId}:distribution/${CdnDistribution}"}
    ]
    assert not CDN_ONLY & granted(iam.stage_policy(CDN_CFG, "functions"))


def test_the_scan_sees_what_each_stage_calls():
    web = {(s, m) for s, m, _, _ in reachable_calls(stage_entry("web"))}
    functions = {(s, m) for s, m, _, _ in reachable_calls(stage_entry("functions"))}
    assert {("s3", "generate_presigned_post"), ("s3", "head_object"), ("lambda", "invoke")} <= web
    assert {("s3", "put_object"), ("s3", "delete_object_tagging"), ("sqs", "send_message")} <= functions
    # Only through a reference: the web stage imports helpers from the processor, never its writes.
    assert ("s3", "delete_object_tagging") not in web
    # Local tools are not part of any stage.
    assert not any(s == "sqs" and m == "create_queue" for s, m in web | functions)
    # Receiving is the runners' (devstack), and the control room's reading of dead-letter queues only.
    receivers = {unit for s, m, _, unit in reachable_calls(stage_entry("web")) if (s, m) == ("sqs", "receive_message")}
    assert receivers, "the scan sees the control room's dead letters"
    assert all(unit.startswith("boardsite.control.deadletters") for unit in receivers), receivers
    assert ("sqs", "receive_message") not in functions


def test_a_new_call_without_its_permission_fails():
    source = 'from offload import aws\n\ndef handler(event, context):\n    aws.client("sns").publish(Message="x")\n'
    all_modules()["offload.fake_new_job"] = ROOT / "offload" / "fake_new_job.py"
    try:
        units_of.cache_clear()
        parsed = parse_module("offload.fake_new_job", source)
        calls = [(s, m, a, "offload.fake_new_job") for s, m, a, _ in parsed["handler"].calls]
        assert missing_permissions(calls, iam.stage_policy(CFG, "functions")) == [
            "offload.fake_new_job: sns.publish needs sns:Publish"
        ]
    finally:
        del all_modules()["offload.fake_new_job"]
        units_of.cache_clear()


@pytest.mark.parametrize("stage", ["web", "functions"])
def test_no_policy_grants_everything(stage):
    for cfg in (CFG, DeployConfig(account="111122223333", region="eu-west-1"), CDN_CFG):
        for statement in iam.stage_policy(cfg, stage)["Statement"]:
            assert statement["Effect"] == "Allow"
            assert not any("*" in action for action in statement["Action"]), statement
            for resource in statement["Resource"]:
                if resource == "*":
                    # Only the network interfaces Lambda manages for a VPC function, and only with a VPC.
                    assert set(statement["Action"]) <= set(iam.VPC_ACTIONS), statement
                    assert stage == "web"
                    assert cfg.subnets
                else:
                    if isinstance(resource, dict):  # a resource of the same template, e.g. the CDN's distribution
                        resource = resource["Fn::Sub"]
                    assert resource.startswith("arn:aws:"), resource
                    assert f"{cfg.media_bucket}/*" not in resource, "objects are granted by prefix, never all"


def test_each_stage_gets_only_its_own_resources():
    web, functions = (iam.stage_policy(CFG, s) for s in ("web", "functions"))
    assert "lambda:InvokeFunction" not in granted(functions)
    assert "ssm:GetParametersByPath" not in granted(functions)
    assert "s3:DeleteObjectTagging" not in granted(web)
    assert not any(a.startswith("ec2:") for a in granted(functions))
    put = [s["Resource"] for s in functions["Statement"] if "s3:PutObject" in s["Action"]]
    # Exactly the prefixes the offload jobs declare they write (variants, the mail markers...): never originals,
    # never the whole bucket.
    declared = [
        [f"arn:aws:s3:::{CFG.media_bucket}/{prefix}*" for prefix in grant.prefixes]
        for job in registry.JOBS.values()
        if job.side == "offload"
        for grant in job.grants
        if "s3:PutObject" in grant.actions
    ]
    assert put == declared
    assert [f"arn:aws:s3:::{CFG.media_bucket}/variants/*"] in put
    assert [f"arn:aws:s3:::{CFG.media_bucket}/mail-sent/*"] in put
    # Originals only for the upload-ticket function, whose presigned POSTs are authorised as this role (each one
    # pinned to one key, type and size); nothing else of the stage writes one.
    writing_originals = [
        job.name
        for job in registry.JOBS.values()
        if any(ORIGINALS in g.prefixes and "s3:PutObject" in g.actions for g in job.grants)
    ]
    assert writing_originals == ["issue_upload_ticket"]
    (send,) = [s["Resource"] for s in functions["Statement"] if "ses:SendRawEmail" in s["Action"]]
    assert send == CFG.ses_identity_arns()
    assert "ses:SendRawEmail" not in granted(web)
    assert "sns:Publish" not in granted(functions)
    (secrets,) = [s["Resource"] for s in web["Statement"] if s["Sid"] == "Secrets"]
    assert secrets == [
        "arn:aws:ssm:eu-west-1:111122223333:parameter/boardsite/prod",
        "arn:aws:ssm:eu-west-1:111122223333:parameter/boardsite/prod/*",
    ]


# --- Who may assume each role: every service Zappa hands `role_arn` to (read from Zappa's own source) -------------

ZAPPA_CORE = Path(zappa.core.__file__)
# Where Zappa 0.63 passes its credentials_arn (the stage's role_arn), by enclosing method and the name it is passed
# under, and the service that then assumes the role. A place not listed here fails the test below: read it, add it
# with its service, and make stage_principals trust that service.
ZAPPA_ROLE_SINKS = {
    ("create_lambda_function", "Role"): iam.LAMBDA,  # lambda_client.create_function(**kwargs)
    ("update_lambda_configuration", "Role"): iam.LAMBDA,  # lambda_client.update_function_configuration(**kwargs)
    ("schedule_events", "RoleArn"): iam.EVENTS,  # events_client.put_rule(..., RoleArn=...)
    ("create_and_setup_methods", "Credentials"): iam.APIGATEWAY,  # each method's Integration.Credentials
    ("create_authorizer", "AuthorizerCredentials"): iam.APIGATEWAY,  # a TOKEN authorizer's credentials
}
# What the role's service needs of a stage's settings for Zappa to reach that place at all.
SINK_NEEDS = {
    iam.LAMBDA: lambda stage: True,
    iam.EVENTS: lambda stage: any("expression" in e for e in stage.get("events", [])) or stage.get("keep_warm", True),
    iam.APIGATEWAY: lambda stage: stage.get("apigateway_enabled", True),
}


def zappa_role_sinks(source: str) -> list[tuple[str, str, int]]:
    """Every place ``source`` hands ``self.credentials_arn`` (or a local copy of it) to something: (enclosing
    method, the keyword, dict key or attribute it is passed as, line). Tests of it (``if not self.credentials_arn``)
    and its lookup (``return ...``) hand it to nobody."""
    found: list[tuple[str, str, int]] = []
    for method in ast.walk(ast.parse(source)):
        if not isinstance(method, ast.FunctionDef):
            continue
        parents = {child: node for node in ast.walk(method) for child in ast.iter_child_nodes(node)}
        own = [n for n in ast.walk(method) if isinstance(n, ast.Attribute) and n.attr == "credentials_arn"]
        own = [n for n in own if isinstance(n.ctx, ast.Load)]
        # Local copies (``credentials = self.credentials_arn``), then every use of the role or of a copy.
        aliases = {
            target.id
            for node in own
            if isinstance(parents.get(node), ast.Assign)
            for target in parents[node].targets
            if isinstance(target, ast.Name)
        }
        uses = own + [n for n in ast.walk(method) if isinstance(n, ast.Name) and n.id in aliases]
        for node in sorted(uses, key=lambda n: (n.lineno, n.col_offset)):
            parent = parents.get(node)
            if isinstance(parent, ast.keyword) and parent.arg:
                found.append((method.name, parent.arg, node.lineno))
            elif isinstance(parent, ast.Dict):
                key = parent.keys[parent.values.index(node)] if node in parent.values else None
                if isinstance(key, ast.Constant):
                    found.append((method.name, str(key.value), node.lineno))
            elif isinstance(parent, ast.Assign) and parent.value is node:
                for target in parent.targets:
                    if isinstance(target, ast.Attribute) and target.attr != "credentials_arn":
                        found.append((method.name, target.attr, node.lineno))
            elif isinstance(parent, ast.Call):
                found.append((method.name, f"argument of {ast.unparse(parent.func)}", node.lineno))
    return found


def test_every_service_zappa_hands_the_role_to_is_trusted():
    sinks = zappa_role_sinks(ZAPPA_CORE.read_text())
    unknown = [
        f"zappa/core.py:{line} {method}: {name}"
        for method, name, line in sinks
        if (method, name) not in ZAPPA_ROLE_SINKS
    ]
    assert not unknown, f"Zappa hands the execution role to something new; map it to its service: {unknown}"
    # Each known place is still there (a Zappa that moved one would otherwise leave the table silently stale).
    assert {(m, n) for m, n, _ in sinks} == set(ZAPPA_ROLE_SINKS)
    settings = build_settings(CFG)
    for stage_name, stage in settings.items():
        trusted = {s["Principal"]["Service"] for s in iam.trust_policy(CFG, stage_name)["Statement"]}
        needed = {service for service in ZAPPA_ROLE_SINKS.values() if SINK_NEEDS[service](stage)}
        assert needed <= trusted, f"{stage_name}: Zappa hands its role to {sorted(needed - trusted)}"
    # Zappa's own default trust (what it writes when it manages roles) names the same services.
    zappa_default = set(json.loads(zappa.core.ASSUME_POLICY)["Statement"][0]["Principal"]["Service"])
    assert zappa_default == set(ZAPPA_ROLE_SINKS.values())


def test_the_scan_finds_a_new_place_zappa_hands_the_role_to():
    source = (
        "class Zappa:\n"
        "    def schedule_events(self):\n"
        "        if not self.credentials_arn:\n"
        "            self.get_credentials_arn()\n"
        "        self.events_client.put_rule(Name='x', RoleArn=self.credentials_arn)\n"
        "    def new_feature(self):\n"
        "        role = self.credentials_arn\n"
        "        self.scheduler_client.create_schedule(Target={'RoleArn': role})\n"
    )
    assert zappa_role_sinks(source) == [("schedule_events", "RoleArn", 5), ("new_feature", "RoleArn", 8)]


def test_each_role_trusts_its_services_for_this_account_only():
    web, functions = (iam.trust_policy(CFG, s) for s in ("web", "functions"))
    assert {s["Principal"]["Service"] for s in web["Statement"]} == {iam.LAMBDA, iam.APIGATEWAY, iam.EVENTS}
    # The functions stage has no API Gateway and no schedule: Lambda alone runs as its role.
    assert {s["Principal"]["Service"] for s in functions["Statement"]} == {iam.LAMBDA}
    for statement in web["Statement"] + functions["Statement"]:
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"] == {"StringEqualsIfExists": {"aws:SourceAccount": CFG.account}}


def test_api_gateway_may_invoke_the_web_function_and_its_alias_with_the_role():
    (statement,) = [s for s in iam.stage_policy(CFG, "web")["Statement"] if s["Sid"] == "InvokedByApiGateway"]
    assert statement["Action"] == ["lambda:InvokeFunction"]
    function = "arn:aws:lambda:eu-west-1:111122223333:function:boardsite-web"
    assert statement["Resource"] == [function, function + ":*"]  # SnapStart: API Gateway invokes the alias
