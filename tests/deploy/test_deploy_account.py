"""What the account would refuse half-way is checked before `zappa deploy|update` (issue 16 rows 3 and 5).

Row 3: `--concurrency` becomes Zappa's PutFunctionConcurrency after the function exists; a new account's quota can
be 10 and Lambda keeps 100 unreserved, so the deploy fails half-way. The prebuild reads GetAccountSettings first.
moto 5.2.5 has no GetAccountSettings route (it answers 404), so the quota is served here by a small HTTP stand-in in
the shape AWS documents (botocore parses it as it would AWS's answer); moto does enforce the rule itself in
PutFunctionConcurrency (``MOTO_LAMBDA_CONCURRENCY_QUOTA``), and the decision is checked against that.

Row 5: the web function's VPC needs DNS support and hostnames on (the endpoints' private DNS) and subnets in distinct
zones: read with EC2's own calls, on moto.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from deploy import account, prebuild
from deploy.config import DeployConfig
from deploy.generate import build_settings
from offload import aws

MOTO_ACCOUNT = "123456789012"
REAL = DeployConfig(
    account="111122223333",
    region="eu-west-1",
    database_url="postgres://boardsite@db.internal.example:5432/boardsite",
    concurrency=50,
)


def test_a_new_accounts_quota_refuses_any_reservation():
    problem = account.concurrency_problem(5, account_limit=10, unreserved=10)
    assert problem is not None
    assert "lambda_concurrency 5" in problem
    assert "its quota is 10 concurrent executions" in problem
    assert "nothing can be reserved" in problem
    assert "Lambda keeps 100 unreserved" in problem
    assert "--quota-code L-B99A9384" in problem  # how to raise it
    assert "configure without --concurrency" in problem


def test_the_reservation_fits_the_usual_quota_and_an_update_counts_its_own():
    assert account.concurrency_problem(900, account_limit=1000, unreserved=1000) is None
    assert "at most 900 can be reserved" in account.concurrency_problem(901, account_limit=1000, unreserved=1000)
    # Updating a function that holds 50 already: those 50 come back before the new value is set.
    assert account.concurrency_problem(50, account_limit=1000, unreserved=100, reserved_now=50) is None
    assert account.concurrency_problem(51, account_limit=1000, unreserved=100, reserved_now=50) is not None


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
    return buf.getvalue()


@pytest.fixture
def moto(moto_endpoint, monkeypatch):
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # an inline job of another test may have left another
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_caches()
    yield aws.client
    aws.clear_caches()


@pytest.mark.parametrize(
    ("quota", "others", "requested"),
    [(10, 0, 1), (1000, 0, 900), (1000, 0, 901), (1000, 300, 600), (1000, 300, 601), (250, 0, 150), (250, 0, 151)],
)
def test_the_decision_is_the_one_lambda_makes(moto, monkeypatch, quota, others, requested):
    """moto's PutFunctionConcurrency applies AWS's rule with a quota we choose; the prebuild's decision agrees."""
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", str(quota))  # read per call by the in-process server
    lam = moto("lambda")
    role = moto("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    for name in ("other", "boardsite-web"):
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.lambda_handler",
            Code={"ZipFile": tiny_zip()},
        )
    if others:
        lam.put_function_concurrency(FunctionName="other", ReservedConcurrentExecutions=others)
    try:
        lam.put_function_concurrency(FunctionName="boardsite-web", ReservedConcurrentExecutions=requested)
        accepted = True
    except lam.exceptions.InvalidParameterValueException:
        accepted = False
    decided = account.concurrency_problem(requested, account_limit=quota, unreserved=quota - others)
    assert accepted == (decided is None), decided


class StandIn(BaseHTTPRequestHandler):
    """GetAccountSettings (moto has none) and GetFunctionConcurrency, answered as AWS documents them."""

    account_limit = {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000, "CodeSizeZipped": 52428800}
    quota = 10
    calls: list[str] = []

    def do_GET(self) -> None:
        self.calls.append(self.path)
        if self.path.endswith("/account-settings") or self.path.endswith("/account-settings/"):
            limit = {
                **self.account_limit,
                "ConcurrentExecutions": self.quota,
                "UnreservedConcurrentExecutions": self.quota,
            }
            self._answer(200, {"AccountLimit": limit, "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}})
        elif self.path.endswith("/concurrency"):
            self.send_response(404)
            self.send_header("x-amzn-errortype", "ResourceNotFoundException")
            body = json.dumps({"Type": "User", "Message": "Function not found"}).encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._answer(404, {"message": "not part of the stand-in"})

    def _answer(self, status: int, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lambda_stand_in(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    StandIn.calls = []
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.clear_caches()
    yield endpoint
    server.shutdown()
    aws.clear_caches()


def test_deploy_is_refused_before_zappa_touches_the_function(lambda_stand_in, tmp_path):
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(build_settings(REAL)))
    with pytest.raises(SystemExit) as refused:
        prebuild.prebuild("web", argv=["zappa", "deploy", "web", "-s", str(path)])
    message = str(refused.value)
    assert "refusing to deploy stage 'web': the account would refuse it" in message
    assert "lambda_concurrency 50" in message
    assert "its quota is 10 concurrent executions" in message
    assert any(call.endswith("/account-settings") or call.endswith("/account-settings/") for call in StandIn.calls)


def test_a_quota_that_fits_and_a_package_call_no_refusal(lambda_stand_in, monkeypatch):
    stage = build_settings(REAL)["web"]
    monkeypatch.setattr(StandIn, "quota", 1000)
    assert account.problems("update", "web", stage) == []

    def no_aws(service: str) -> None:
        raise AssertionError(f"`zappa package` must not call {service}")

    assert account.problems("package", "web", stage, clients=no_aws) == []
    assert account.zappa_command(["zappa", "deploy", "web"]) == "deploy"
    assert account.zappa_command(["zappa", "--color", "never", "update", "web", "-s", "x.json"]) == "update"
    assert account.zappa_command(["zappa", "package", "web", "-o", "web.zip"]) == "package"


def test_an_account_that_cannot_be_read_is_a_note_not_a_refusal(moto):
    # moto has no GetAccountSettings: as an account whose deployer lacks lambda:GetAccountSettings would be.
    stage = build_settings(DeployConfig(account=MOTO_ACCOUNT, region="us-east-1", concurrency=50))["web"]
    (note,) = account.problems("deploy", "web", stage)
    assert note.startswith("note: could not check lambda in the account (lambda:GetAccountSettings")


def test_the_vpc_needs_dns_hostnames_and_subnets_in_two_zones(moto):
    ec2 = moto("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]  # as `aws ec2 create-vpc` makes it
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    a2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.2.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.3.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]

    def stage(*subnets: str) -> dict:
        cfg = DeployConfig(account=MOTO_ACCOUNT, region="us-east-1", subnets=subnets, security_groups=(sg,))
        return build_settings(cfg)["web"]

    found = account.problems("deploy", "web", stage(a, a2))
    assert any(f"subnets {', '.join(sorted((a, a2)))} are all in us-east-1a" in p for p in found), found
    assert any("in one availability zone" in p for p in found)
    (hostnames,) = [p for p in found if "enableDnsHostnames off" in p]
    assert f"aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-hostnames" in hostnames
    assert not any("enableDnsSupport off" in p for p in found)  # on by default, as on AWS

    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    assert account.problems("deploy", "web", stage(a, b)) == []
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": False})
    assert any("enableDnsSupport off" in p for p in account.problems("update", "web", stage(a, b)))
