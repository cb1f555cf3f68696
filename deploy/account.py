"""What the account must allow before Zappa asks for it: checked by the prebuild script before `zappa deploy|update`.

Zappa creates or updates the function first and only then asks for what the account may refuse, leaving a
half-deployed stage. These are read from the account (the deployer's credentials) beforehand:

- **reserved concurrency** (``lambda_concurrency``, ``configure --concurrency``): Lambda refuses a reservation that
  leaves fewer than 100 of the account's concurrent executions unreserved, and a new account's quota can be 10;
- **the web function's VPC** (``vpc_config``): the interface endpoints of the template resolve AWS's own names only
  with the VPC's ``enableDnsSupport`` and ``enableDnsHostnames`` on (``create-vpc`` leaves the second off), and an
  interface endpoint takes at most one subnet per availability zone.

`zappa package` never calls AWS, so it is not checked (it works offline, without credentials). When the account
cannot be read (no permission for ``lambda:GetAccountSettings``, ``ec2:DescribeSubnets``,
``ec2:DescribeVpcAttribute``; an endpoint that lacks the call) the prebuild says so and goes on: Zappa's own calls
then decide.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

# Lambda keeps this many of the account's concurrent executions unreserved, whatever is asked.
UNRESERVED_MINIMUM = 100
# Service Quotas' code of "Concurrent executions" (AWS Lambda), for the increase request.
CONCURRENCY_QUOTA_CODE = "L-B99A9384"
# Zappa's commands that create or change the function (the rest read, or package locally).
DEPLOYING = ("deploy", "update")

# The VPC attributes private DNS of interface endpoints needs: the API's name, its answer's key, the CLI flag.
VPC_DNS_ATTRIBUTES = (
    ("enableDnsSupport", "EnableDnsSupport", "--enable-dns-support"),
    ("enableDnsHostnames", "EnableDnsHostnames", "--enable-dns-hostnames"),
)
ZAPPA_COMMANDS = {
    "deploy", "update", "package", "template", "rollback", "undeploy", "schedule", "unschedule", "status", "tail",
    "invoke", "manage", "certify", "save-python-settings-file", "shell",
}  # fmt: skip

Clients = Callable[[str], Any]


def concurrency_problem(requested: int, *, account_limit: int, unreserved: int, reserved_now: int = 0) -> str | None:
    """Why Lambda would refuse to reserve ``requested`` executions for a function that holds ``reserved_now`` today
    (None when it would not). ``account_limit`` and ``unreserved`` are GetAccountSettings' ``AccountLimit``."""
    most = unreserved + reserved_now - UNRESERVED_MINIMUM
    if requested <= most:
        return None
    room = f"at most {most} can be reserved" if most > 0 else "nothing can be reserved"
    return (
        f"lambda_concurrency {requested} (configure --concurrency) is more than this account allows: its quota is "
        f"{account_limit} concurrent executions, {unreserved} of them unreserved, and Lambda keeps "
        f"{UNRESERVED_MINIMUM} unreserved, so {room}. Zappa would create the function and then fail on "
        "PutFunctionConcurrency (InvalidParameterValueException), leaving it half-deployed. Either configure without "
        "--concurrency (or with a smaller one), or raise the quota first: Service Quotas, AWS Lambda, "
        f"'Concurrent executions' ({CONCURRENCY_QUOTA_CODE}), e.g. `aws service-quotas request-service-quota-increase "
        f"--service-code lambda --quota-code {CONCURRENCY_QUOTA_CODE} --desired-value 1000` (DEPLOY.md §10)"
    )


def function_name(stage_name: str, stage: dict[str, Any]) -> str:
    return f"{stage['project_name']}-{stage_name}"  # Zappa's "<project_name>-<stage>"


def check_concurrency(stage_name: str, stage: dict[str, Any], lam: Any) -> list[str]:
    requested = stage.get("lambda_concurrency")
    if not requested:
        return []
    limit = lam.get_account_settings()["AccountLimit"]
    reserved_now = 0
    try:
        reserved_now = lam.get_function_concurrency(FunctionName=function_name(stage_name, stage)).get(
            "ReservedConcurrentExecutions", 0
        )
    except lam.exceptions.ResourceNotFoundException:
        pass  # a first deploy: nothing reserved yet
    problem = concurrency_problem(
        int(requested),
        account_limit=int(limit["ConcurrentExecutions"]),
        unreserved=int(limit["UnreservedConcurrentExecutions"]),
        reserved_now=int(reserved_now or 0),
    )
    return [f"{stage_name}: {problem}"] if problem else []


def check_vpc(stage_name: str, stage: dict[str, Any], ec2: Any) -> list[str]:
    subnet_ids = (stage.get("vpc_config") or {}).get("SubnetIds") or []
    if not subnet_ids:
        return []
    try:
        subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"):
            # A typo in --subnets: a refusal now, not CreateFunction's half-way through the deploy.
            return [f"{stage_name}: {exc.response['Error'].get('Message', exc)} (configure --subnets)"]
        raise
    problems: list[str] = []
    zones: dict[str, list[str]] = {}
    for subnet in subnets:
        zones.setdefault(subnet["AvailabilityZone"], []).append(subnet["SubnetId"])
    for zone, ids in sorted(zones.items()):
        if len(ids) > 1:
            problems.append(
                f"{stage_name}: subnets {', '.join(sorted(ids))} are all in {zone}: give one subnet per availability "
                "zone (the VPC endpoints take at most one per zone, and two zones keep the site up when one fails)"
            )
    if len(zones) < 2:
        problems.append(
            f"{stage_name}: the web function's subnets are in one availability zone ({', '.join(zones) or 'none'}): "
            "give private subnets in two zones or more"
        )
    for vpc in sorted({subnet["VpcId"] for subnet in subnets}):
        for attribute, key, flag in VPC_DNS_ATTRIBUTES:
            if not ec2.describe_vpc_attribute(VpcId=vpc, Attribute=attribute)[key]["Value"]:
                problems.append(
                    f"{stage_name}: {vpc} has {attribute} off: the VPC endpoints' private DNS needs it, or the "
                    "function cannot reach SQS, SSM, SNS or Lambda: `aws ec2 modify-vpc-attribute --vpc-id "
                    f"{vpc} {flag} '{{\"Value\":true}}'` (DEPLOY.md §0)"
                )
    return problems


def default_clients(stage: dict[str, Any]) -> Clients:
    from offload.aws import make_client

    region, endpoint = stage["aws_region"], os.environ.get("AWS_ENDPOINT_URL") or None
    return lambda service: make_client(service, region, endpoint)


def problems(command: str, stage_name: str, stage: dict[str, Any], clients: Clients | None = None) -> list[str]:
    """What the account would refuse of ``stage`` (empty when nothing, or when ``command`` does not deploy).

    A check that cannot read the account is reported as a note starting with ``note:``, not as a problem."""
    if command not in DEPLOYING:
        return []
    clients = clients or default_clients(stage)
    found: list[str] = []
    for check, service, permission in (
        (check_concurrency, "lambda", "lambda:GetAccountSettings, lambda:GetFunctionConcurrency"),
        (check_vpc, "ec2", "ec2:DescribeSubnets, ec2:DescribeVpcAttribute"),
    ):
        try:
            found += check(stage_name, stage, clients(service))
        except Exception as exc:  # no credentials, no permission, an endpoint without the call: Zappa decides then
            found.append(f"note: could not check {service} in the account ({permission}): {exc}")
    return found


def zappa_command(argv: list[str]) -> str:
    """The Zappa command being run (``zappa deploy web`` -> ``deploy``)."""
    return next((arg for arg in argv[1:] if arg in ZAPPA_COMMANDS), "")
