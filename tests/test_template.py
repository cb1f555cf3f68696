"""The CloudFormation template: lints clean, and creates on the local AWS the resources provision.py describes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy import iam, template
from deploy.stages import DeployConfig, build_settings
from offload import aws, provision

ROOT = Path(__file__).resolve().parent.parent
ORIGINS = ["https://photos.example.com"]
MOTO_ACCOUNT = "123456789012"  # moto's account; the template is written for the account it is created in


def lint(tmp_path: Path, tpl: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(tpl))
    return subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("vpc", [False, True])
def test_cfn_lint_passes(tmp_path, vpc):
    extra = {"subnets": ("subnet-0123456789abcdef0",), "security_groups": ("sg-0123456789abcdef0",)} if vpc else {}
    cfg = DeployConfig(account="111122223333", region="eu-west-1", **extra)
    done = lint(tmp_path, template.build_template(cfg, ORIGINS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path):
    tpl = template.build_template(DeployConfig(account="111122223333", region="eu-west-1"), ORIGINS)
    tpl["Resources"]["MediaBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] = "two"
    assert lint(tmp_path, tpl).returncode != 0


def _api_lifecycle(rules: list[dict]) -> list[dict]:
    """The template's lifecycle rules read back into the S3 API's shape (what provision.py applies)."""
    out = []
    for r in rules:
        rule = {"ID": r["Id"], "Status": r["Status"]}
        if "TagFilters" in r:
            rule["Filter"] = {"And": {"Prefix": r["Prefix"], "Tags": r["TagFilters"]}}
        else:
            rule["Filter"] = {"Prefix": r.get("Prefix", "")}
        if "ExpirationInDays" in r:
            rule["Expiration"] = {"Days": r["ExpirationInDays"]}
        if "AbortIncompleteMultipartUpload" in r:
            rule["AbortIncompleteMultipartUpload"] = r["AbortIncompleteMultipartUpload"]
        out.append(rule)
    return out


def test_the_bucket_is_provisions_bucket():
    props = template.bucket_properties(DeployConfig(account="111122223333", region="eu-west-1"), ORIGINS)
    assert _api_lifecycle(props["LifecycleConfiguration"]["Rules"]) == provision.LIFECYCLE["Rules"]
    assert props["PublicAccessBlockConfiguration"] == provision.PUBLIC_ACCESS_BLOCK
    (cors,) = props["CorsConfiguration"]["CorsRules"]
    (expected,) = provision.cors_rules(ORIGINS)
    assert (cors["AllowedOrigins"], cors["AllowedMethods"], cors["ExposedHeaders"], cors["MaxAge"]) == (
        expected["AllowedOrigins"],
        expected["AllowedMethods"],
        expected["ExposeHeaders"],
        expected["MaxAgeSeconds"],
    )


def test_the_command_refuses_placeholders_and_writes_for_a_real_account(tmp_path):
    run = [sys.executable, "-m", "deploy", "template", "--origin", ORIGINS[0]]
    placeholder = tmp_path / "placeholder.json"
    placeholder.write_text(json.dumps(build_settings(DeployConfig())))
    refused = subprocess.run([*run, "-s", str(placeholder)], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "placeholder" in refused.stderr
    settings = tmp_path / "zappa_settings.json"
    settings.write_text(json.dumps(build_settings(DeployConfig(account="111122223333", region="eu-west-1"))))
    out = tmp_path / "template.json"
    done = subprocess.run([*run, "-s", str(settings), "-o", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tpl = json.loads(out.read_text())
    assert tpl["Resources"]["MediaBucket"]["Properties"]["BucketName"] == "boardsite-media-111122223333-eu-west-1"


@pytest.fixture
def moto(moto_endpoint, monkeypatch):
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_caches()
    yield aws.client
    aws.clear_caches()


def test_the_stack_creates_on_the_local_aws(moto):
    ec2 = moto("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    web_sg = ec2.create_security_group(GroupName="boardsite-web", Description="web", VpcId=vpc)["GroupId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    cfg = DeployConfig(account=MOTO_ACCOUNT, region="us-east-1", subnets=(subnet,), security_groups=(web_sg,))
    tpl = template.build_template(cfg, ORIGINS)
    bucket_policy = tpl["Resources"].pop("MediaBucketPolicy")  # not implemented by moto's CloudFormation: below
    cfn = moto("cloudformation")
    cfn.create_stack(
        StackName="boardsite",
        TemplateBody=json.dumps(tpl),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "VpcId", "ParameterValue": vpc},
            {"ParameterKey": "PrivateRouteTableIds", "ParameterValue": table},
        ],
    )
    (stack,) = cfn.describe_stacks(StackName="boardsite")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    # The bucket: moto's CloudFormation applies its name and encryption (CORS, lifecycle and the public access
    # block are not implemented by moto for AWS::S3::Bucket; test_the_bucket_is_provisions_bucket checks those).
    s3 = moto("s3")
    assert outputs["MediaBucketName"] == cfg.media_bucket
    encryption = s3.get_bucket_encryption(Bucket=cfg.media_bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [r["ApplyServerSideEncryptionByDefault"] for r in encryption] == [
        r["ApplyServerSideEncryptionByDefault"] for r in provision.ENCRYPTION["Rules"]
    ]

    # Plain HTTP to the bucket is refused by its policy. moto's CloudFormation has no AWS::S3::BucketPolicy: the
    # document is resolved here as CloudFormation would and put through S3's own API.
    policy = bucket_policy["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert statement["Resource"] == [{"Fn::GetAtt": ["MediaBucket", "Arn"]}, {"Fn::Sub": "${MediaBucket.Arn}/*"}]
    statement["Resource"] = [f"arn:aws:s3:::{cfg.media_bucket}", f"arn:aws:s3:::{cfg.media_bucket}/*"]
    s3.put_bucket_policy(Bucket=cfg.media_bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=cfg.media_bucket)["Policy"]) == policy

    # The queues: visibility timeouts from the registry, redrive to their dead-letter queues, the failure queue.
    sqs = moto("sqs")

    def attributes(name: str) -> dict:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    deployed = [spec for spec in provision.queue_specs(cfg.queue_names) if not spec.local_only]
    assert {spec.name for spec in deployed} == {
        "boardsite-image-results",
        "boardsite-process-image-dlq",
        "boardsite-mail",
        "boardsite-mail-feedback",
    }
    for spec in deployed:
        attrs = attributes(spec.name)
        if spec.dead_letter:
            assert int(attrs["VisibilityTimeout"]) == spec.visibility
            redrive = json.loads(attrs["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == attributes(spec.dlq_name)["QueueArn"]
            assert int(redrive["maxReceiveCount"]) == provision.MAX_RECEIVES
            assert int(attributes(spec.dlq_name)["MessageRetentionPeriod"]) == provision.DLQ_RETENTION
        else:
            assert int(attrs["MessageRetentionPeriod"]) == provision.DLQ_RETENTION
    assert outputs["BoardsiteProcessImageDlqArn"] == cfg.sqs_arn("boardsite-process-image-dlq")
    results_visibility = int(attributes("boardsite-image-results")["VisibilityTimeout"])
    web = build_settings(cfg)["web"]
    assert results_visibility >= 6 * web["timeout_seconds"]
    mail_visibility = int(attributes("boardsite-mail")["VisibilityTimeout"])
    assert mail_visibility >= 6 * build_settings(cfg)["functions"]["timeout_seconds"]
    # SES's bounces and complaints: their queue feeds the web function.
    assert int(attributes("boardsite-mail-feedback")["VisibilityTimeout"]) >= 6 * web["timeout_seconds"]
    assert outputs["MailFeedbackTopicArn"].endswith(":boardsite-mail-feedback")

    # The mail topic (moto's CloudFormation has no AWS::SNS::Subscription, AWS::SQS::QueuePolicy nor
    # AWS::SES::EmailIdentity: their documents are checked here; provisioning applies the same on the local AWS).
    assert any(t["TopicArn"] == cfg.mail_topic_arn() for t in moto("sns").list_topics()["Topics"])
    resources = tpl["Resources"]
    assert resources["MailSubscription"]["Properties"] == {
        "TopicArn": {"Ref": "MailTopic"},
        "Protocol": "sqs",
        "Endpoint": {"Fn::GetAtt": ["BoardsiteMail", "Arn"]},
    }
    (allow,) = resources["MailQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "MailTopic"}}}
    assert resources["MailIdentity"]["Properties"] == {"EmailIdentity": cfg.mail_identity}

    # The roles the settings name, with the generated policies and Lambda's trust.
    iam_client = moto("iam")
    for stage, settings in build_settings(cfg).items():
        role = iam_client.get_role(RoleName=cfg.role_name(stage))["Role"]
        assert role["Arn"] == settings["role_arn"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        (name,) = iam_client.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
        document = iam_client.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto's CloudFormation stores the dict's Python repr
            document = ast.literal_eval(document)
        assert document == iam.stage_policy(cfg, stage)

    # The VPC endpoints the web function reaches AWS through.
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["VpcEndpoints"]
    kinds = {e["ServiceName"]: e["VpcEndpointType"] for e in endpoints}
    assert kinds == {
        "com.amazonaws.us-east-1.s3": "Gateway",
        "com.amazonaws.us-east-1.sqs": "Interface",
        "com.amazonaws.us-east-1.lambda": "Interface",
        "com.amazonaws.us-east-1.sns": "Interface",  # the site publishes every mail to the mail topic
        "com.amazonaws.us-east-1.ssm": "Interface",
    }
    gateway = next(e for e in endpoints if e["VpcEndpointType"] == "Gateway")
    assert gateway["RouteTableIds"] == [table]
