"""The CloudFormation template: lints clean, and creates on the local AWS the resources deploy/resources.py holds."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy import iam, template
from deploy import resources as described
from deploy.config import DeployConfig
from deploy.generate import build_settings
from offload import aws, registry
from tests.helpers import for_moto

# Its subject does not touch the site's database or broker (.ci/run: first pass only).
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
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
    assert _api_lifecycle(props["LifecycleConfiguration"]["Rules"]) == described.LIFECYCLE["Rules"]
    assert props["PublicAccessBlockConfiguration"] == described.PUBLIC_ACCESS_BLOCK
    (cors,) = props["CorsConfiguration"]["CorsRules"]
    (expected,) = described.cors_rules(ORIGINS)
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


def test_the_dkim_records_are_stack_outputs():
    tpl = template.build_template(DeployConfig(account="111122223333", region="eu-west-1"), ORIGINS)
    dkim = {k: v["Value"] for k, v in tpl["Outputs"].items() if k.startswith("MailDkim")}
    assert dkim == {
        f"MailDkim{part}{n}": {"Fn::GetAtt": ["MailIdentity", f"DkimDNSToken{part}{n}"]}
        for n in (1, 2, 3)
        for part in ("Name", "Value")
    }


@pytest.fixture
def moto(moto_endpoint, monkeypatch):
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # an inline job of another test may have left another
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
        TemplateBody=for_moto(tpl),
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
        r["ApplyServerSideEncryptionByDefault"] for r in described.ENCRYPTION["Rules"]
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

    deployed = [spec for spec in described.queue_specs(cfg.queue_names) if not spec.local_only]
    assert {
        "boardsite-image-results",
        "boardsite-process-image-dlq",
        "boardsite-mail",
        "boardsite-mail-feedback",
    } <= {spec.name for spec in deployed}
    assert "boardsite-uploads" not in {spec.name for spec in deployed}  # local only: S3 invokes process_image
    for spec in deployed:
        attrs = attributes(spec.name)
        if spec.dead_letter:
            assert int(attrs["VisibilityTimeout"]) == spec.visibility
            redrive = json.loads(attrs["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == attributes(spec.dlq_name)["QueueArn"]
            assert int(redrive["maxReceiveCount"]) == described.MAX_RECEIVES
            assert int(attributes(spec.dlq_name)["MessageRetentionPeriod"]) == described.DLQ_RETENTION
        else:
            assert int(attrs["MessageRetentionPeriod"]) == described.DLQ_RETENTION
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
    assert any(t["TopicArn"] == cfg.topic_arn(registry.MAIL) for t in moto("sns").list_topics()["Topics"])
    resources = tpl["Resources"]
    assert resources["MailSubscription"]["Properties"] == {
        "TopicArn": {"Ref": "MailTopic"},
        "Protocol": "sqs",
        "Endpoint": {"Fn::GetAtt": ["BoardsiteMail", "Arn"]},
    }
    (allow,) = resources["MailQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "MailTopic"}}}
    assert resources["MailIdentity"]["Properties"] == {"EmailIdentity": cfg.mail_identity}

    # The roles the settings name, with the generated policies and the trust of every service Zappa hands them to.
    iam_client = moto("iam")
    for stage, settings in build_settings(cfg).items():
        role = iam_client.get_role(RoleName=cfg.role_name(stage))["Role"]
        assert role["Arn"] == settings["role_arn"]
        trust = role["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(trust)
        assert trust == iam.trust_policy(cfg, stage)
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


# The optional CloudFront mode (DEPLOY.md "Serving photos through CloudFront").
CDN_CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-4e5f"
CLOUDFRONT_TYPES = {
    "AWS::CloudFront::PublicKey",
    "AWS::CloudFront::KeyGroup",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::CachePolicy",
}


def cdn_config(**changes) -> DeployConfig:
    return DeployConfig(
        **{
            "account": "111122223333",
            "region": "eu-west-1",
            "domain": "photos.example.com",
            "cdn_domain": "media.photos.example.com",
            "cdn_certificate_arn": CDN_CERTIFICATE,
            **changes,
        }
    )


def public_key_pem() -> str:
    from devstack.cdn import new_key_pair

    return new_key_pair()[2]


@pytest.mark.parametrize("vpc", [False, True])
def test_cfn_lint_passes_with_the_cdn(tmp_path, vpc):
    extra = {"subnets": ("subnet-0123456789abcdef0",), "security_groups": ("sg-0123456789abcdef0",)} if vpc else {}
    done = lint(tmp_path, template.build_template(cdn_config(**extra), ORIGINS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_checks_the_cdn_resources(tmp_path):
    tpl = template.build_template(cdn_config(), ORIGINS)
    tpl["Resources"]["CdnDistribution"]["Properties"]["DistributionConfig"]["HttpVersion"] = "http4"
    assert lint(tmp_path, tpl).returncode != 0


def _cdn_parts(tpl: dict) -> dict:
    """The template with everything the CDN adds taken out again."""
    tpl = json.loads(json.dumps(tpl))
    cdn_resources = [name for name in tpl["Resources"] if name.startswith("Cdn")]
    for name in cdn_resources:
        tpl["Resources"].pop(name)
    statements = tpl["Resources"]["MediaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "CdnReadsVariants"]
    web = tpl["Resources"]["WebRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    web[:] = [s for s in web if s.get("Sid") != "InvalidateCdn"]
    for section in ("Parameters", "Outputs"):
        for name in [n for n in tpl[section] if n.startswith("Cdn")]:
            tpl[section].pop(name)
    tpl.pop("Conditions", None)
    tpl.pop("Rules", None)
    return tpl


def test_without_a_cdn_the_template_has_none_of_it_and_with_one_only_adds():
    plain_cfg = DeployConfig(account="111122223333", region="eu-west-1", domain="photos.example.com")
    plain = template.build_template(plain_cfg, ORIGINS)
    assert not {r["Type"] for r in plain["Resources"].values()} & CLOUDFRONT_TYPES
    assert "cloudfront" not in json.dumps(plain).lower()
    assert "Conditions" not in plain
    assert "Rules" not in plain
    with_cdn = template.build_template(cdn_config(), ORIGINS)
    assert {r["Type"] for r in with_cdn["Resources"].values()} >= CLOUDFRONT_TYPES
    assert _cdn_parts(with_cdn) == plain, "the CDN must only add to the template"


def test_the_distribution_serves_signed_requests_for_variants_only():
    tpl = template.build_template(cdn_config(), ORIGINS)
    resources = tpl["Resources"]
    config = resources["CdnDistribution"]["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["media.photos.example.com"]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CDN_CERTIFICATE,
        "SslSupportMethod": "sni-only",
        "MinimumProtocolVersion": "TLSv1.2_2021",
    }
    assert (config["HttpVersion"], config["IPV6Enabled"], config["Enabled"]) == ("http2and3", True, True)
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["MediaBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["CdnOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert "OriginPath" not in origin  # /variants/<board>/... is the object's key
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["AllowedMethods"] == behaviour["CachedMethods"] == ["GET", "HEAD"]
    assert behaviour["ViewerProtocolPolicy"] in ("https-only", "redirect-to-https")
    assert behaviour["TrustedKeyGroups"] == [{"Ref": "CdnKeyGroup"}]  # unsigned requests are refused
    # CachingOptimized: no cookies, query strings or headers in the cache key; nothing forwarded to S3.
    assert behaviour["CachePolicyId"] == {"Ref": "CdnCachePolicy"}
    policy = resources["CdnCachePolicy"]["Properties"]["CachePolicyConfig"]
    assert policy["MaxTTL"] == policy["DefaultTTL"] == 86400  # a deleted photo leaves the edges within a day
    keyed = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert keyed["CookiesConfig"] == {"CookieBehavior": "none"}
    assert keyed["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    assert not {"ForwardedValues", "OriginRequestPolicyId", "TrustedSigners"} & set(behaviour)
    assert "CacheBehaviors" not in config
    oac = resources["CdnOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    # The key group holds the key(s) given as parameters; the first one's id is the output that goes into SSM.
    items = resources["CdnKeyGroup"]["Properties"]["KeyGroupConfig"]["Items"]
    assert items == [
        {"Fn::If": ["HasCdnPublicKey", {"Ref": "CdnKey"}, {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["HasCdnPublicKey2", {"Ref": "CdnKey2"}, {"Ref": "AWS::NoValue"}]},
    ]
    assert resources["CdnKey"]["Properties"]["PublicKeyConfig"]["EncodedKey"] == {"Ref": "CdnPublicKey"}
    # Two optional key slots (CloudFront cannot change a key in place: rotation fills one, then empties the other);
    # a rule refuses a stack with neither.
    assert {name: p.get("Default") for name, p in tpl["Parameters"].items() if name.startswith("Cdn")} == {
        "CdnPublicKey": "",
        "CdnPublicKey2": "",
    }
    (assertion,) = tpl["Rules"]["CdnNeedsAKey"]["Assertions"]
    assert assertion["Assert"] == {
        "Fn::Or": [{"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]} for name in ("CdnPublicKey", "CdnPublicKey2")]
    }
    assert tpl["Outputs"]["CdnKeyId"] == {"Condition": "HasCdnPublicKey", "Value": {"Ref": "CdnKey"}}
    assert tpl["Outputs"]["CdnDistributionDomainName"] == {"Value": {"Fn::GetAtt": ["CdnDistribution", "DomainName"]}}


def test_the_bucket_lets_only_this_distribution_read_only_variants():
    tpl = template.build_template(cdn_config(), ORIGINS)
    statements = tpl["Resources"]["MediaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    https_only, cdn = statements
    assert (https_only["Sid"], https_only["Effect"]) == ("HttpsOnly", "Deny")  # still first, still everything
    assert cdn == {
        "Sid": "CdnReadsVariants",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        # Image files only: not result.json beside them (EXIF date, keys, timings).
        "Resource": [{"Fn::Sub": f"${{MediaBucket.Arn}}/variants/*.{e}"} for e in ("avif", "jpg", "webp")],
        "Condition": {
            "StringEquals": {
                "AWS:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${CdnDistribution}"
                }
            }
        },
    }


def test_the_cdn_needs_no_key_policy_while_the_bucket_is_sse_s3(monkeypatch):
    # OAC reads SSE-S3 objects as they are. Were the bucket moved to a customer KMS key, the distribution would get
    # AccessDenied from S3 unless the key's policy let CloudFront decrypt: the template refuses rather than emit that.
    assert [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in described.ENCRYPTION["Rules"]] == [
        "AES256"
    ]
    kms = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k"}}]}
    monkeypatch.setattr(described, "ENCRYPTION", kms)
    with pytest.raises(NotImplementedError, match="kms:Decrypt"):
        template.build_template(cdn_config(), ORIGINS)
    template.build_template(DeployConfig(account="111122223333", region="eu-west-1"), ORIGINS)  # no CDN: unaffected


def test_the_command_reads_the_cdn_back_from_the_settings(tmp_path):
    settings = tmp_path / "zappa_settings.json"
    settings.write_text(
        json.dumps(build_settings(cdn_config(cdn_cookie_domain="example.com", cdn_domain="cdn.example.com")))
    )
    out = tmp_path / "template.json"
    assert template.main(["-s", str(settings), "-o", str(out)]) == 0
    config = json.loads(out.read_text())["Resources"]["CdnDistribution"]["Properties"]["DistributionConfig"]
    assert config["Aliases"] == ["cdn.example.com"]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == CDN_CERTIFICATE


def test_the_cdn_stack_creates_on_the_local_aws(moto):
    from moto.cloudformation.parsing import get_model_map

    cfg = cdn_config(
        account=MOTO_ACCOUNT,
        region="us-east-1",
        cdn_certificate_arn=f"arn:aws:acm:us-east-1:{MOTO_ACCOUNT}:certificate/0a1b",
    )
    tpl = template.build_template(cfg, ORIGINS)
    bucket_policy = tpl["Resources"].pop("MediaBucketPolicy")  # not implemented by moto's CloudFormation: below
    supported = CLOUDFRONT_TYPES <= set(get_model_map())
    if not supported:
        # moto's CloudFormation (5.x) implements none of the four CloudFront types (creating the stack fails on the
        # distribution's first GetAtt): their properties are checked by cfn-lint and the tests above. The rest of the
        # CDN template (its parameters, conditions and rule, the bucket) is created here.
        for name in [n for n, r in tpl["Resources"].items() if r["Type"] in CLOUDFRONT_TYPES]:
            tpl["Resources"].pop(name)
        # ...and the web role's permission to invalidate that distribution (tests/deploy/test_iam.py checks it).
        web = tpl["Resources"]["WebRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        web[:] = [s for s in web if s.get("Sid") != "InvalidateCdn"]
        for name in ("CdnKeyId", "CdnKey2Id", "CdnDistributionDomainName", "CdnDistributionId"):
            tpl["Outputs"].pop(name)
    cfn = moto("cloudformation")
    cfn.create_stack(
        StackName="boardsite",
        TemplateBody=for_moto(tpl),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": "CdnPublicKey", "ParameterValue": public_key_pem()}],
    )
    (stack,) = cfn.describe_stacks(StackName="boardsite")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["MediaBucketName"] == cfg.media_bucket
    if supported:
        assert outputs["CdnKeyId"]
        assert outputs["CdnDistributionDomainName"].endswith(".cloudfront.net")

    # The bucket policy with the CDN's statement, resolved as CloudFormation would, is one S3 accepts.
    distribution = "E2QWRUHAPOMQZL"
    policy = bucket_policy["Properties"]["PolicyDocument"]
    https_only, cdn = policy["Statement"]
    https_only["Resource"] = [f"arn:aws:s3:::{cfg.media_bucket}", f"arn:aws:s3:::{cfg.media_bucket}/*"]
    cdn["Resource"] = [f"arn:aws:s3:::{cfg.media_bucket}/variants/*.{e}" for e in ("avif", "jpg", "webp")]
    cdn["Condition"]["StringEquals"]["AWS:SourceArn"] = (
        f"arn:aws:cloudfront::{MOTO_ACCOUNT}:distribution/{distribution}"
    )
    s3 = moto("s3")
    s3.put_bucket_policy(Bucket=cfg.media_bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=cfg.media_bucket)["Policy"]) == policy


def test_two_installations_create_side_by_side_in_one_account(moto):
    """Staging and production in one account: two stacks, every name under its own prefix (no VPC here: the
    endpoints of one VPC are shared, DEPLOY.md §2)."""
    cfn = moto("cloudformation")
    configs = {
        "boardsite": DeployConfig(account=MOTO_ACCOUNT, region="us-east-1"),
        "boardsite-staging": DeployConfig(account=MOTO_ACCOUNT, region="us-east-1", name_prefix="boardsite-staging"),
    }
    for stack_name, cfg in configs.items():
        tpl = template.build_template(cfg, ORIGINS)
        tpl["Resources"].pop("MediaBucketPolicy")  # not implemented by moto's CloudFormation
        cfn.create_stack(StackName=stack_name, TemplateBody=for_moto(tpl), Capabilities=["CAPABILITY_NAMED_IAM"])
        (stack,) = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    queues = {url.rsplit("/", 1)[1] for url in moto("sqs").list_queues()["QueueUrls"]}
    roles = {role["RoleName"] for role in moto("iam").list_roles()["Roles"]}
    for cfg in configs.values():
        assert {name for name in cfg.queue_names.values() if name != cfg.queue("BOARDSITE_UPLOADS_QUEUE")} <= queues
        assert {cfg.role_name("web"), cfg.role_name("functions")} <= roles
    assert "boardsite-staging-process-image-dlq" in queues


def _interface_endpoints(tpl: dict) -> list[str]:
    return sorted(
        r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Interface"
    )


def test_the_guide_names_the_endpoints_the_template_makes():
    """DEPLOY.md counts and names the interface endpoints (they are billed per hour and zone): as the template."""
    cfg = DeployConfig(account="111122223333", region="eu-west-1", subnets=("subnet-0a",), security_groups=("sg-0c",))
    made = _interface_endpoints(template.build_template(cfg, ORIGINS))
    assert made == sorted(template.INTERFACE_ENDPOINTS)
    guide = (ROOT / "DEPLOY.md").read_text()
    names = {"sqs": "SQS", "lambda": "Lambda", "ssm": "SSM", "sns": "SNS"}
    counts = [int(n) for n in re.findall(r"(\d+) interface endpoints", guide)]
    assert counts, "DEPLOY.md must say how many interface endpoints the template makes"
    assert set(counts) == {len(made)}, counts
    for listed in re.findall(r"interface endpoints?[^(\n]*\(([A-Za-z, ]+)\)", guide):
        assert sorted(n.strip() for n in listed.split(",")) == sorted(names[m] for m in made), listed
    assert re.search(r"(\w+) endpoints × two zones", guide) is None, "say the number the template makes"


def test_a_second_installation_in_the_same_vpc_uses_the_endpoints_there(tmp_path):
    cfg = DeployConfig(
        account="111122223333",
        region="eu-west-1",
        name_prefix="boardsite-staging",
        subnets=("subnet-0a",),
        security_groups=("sg-0c",),
        vpc_endpoints=False,
    )
    tpl = template.build_template(cfg, ORIGINS)
    assert not [r for r in tpl["Resources"].values() if r["Type"].startswith("AWS::EC2::")]
    assert "VpcId" not in tpl["Parameters"]
    # The choice round-trips through the settings file the template command reads.
    settings = build_settings(cfg)
    assert settings["web"]["boardsite_vpc_endpoints"] == "existing"
    assert "boardsite_vpc_endpoints" not in build_settings(DeployConfig())["web"]
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings))
    out = tmp_path / "template.json"
    assert template.main(["-s", str(path), "--origin", ORIGINS[0], "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == tpl
    assert lint(tmp_path, tpl).returncode == 0
