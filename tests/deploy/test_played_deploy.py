"""The deploy played against the local AWS: the real Zappa CLI, both stages, and the state it leaves.

One moto server for the module. The stack from ``python -m deploy template`` is created with CloudFormation, the
settings are ``DeployConfig``'s for moto's account, and then, in subprocesses with dummy credentials and
``AWS_ENDPOINT_URL``, the commands DEPLOY.md gives run in order: ``zappa deploy`` both stages, ``python -m deploy
wire``, ``zappa update`` (several times, with a configuration change), ``zappa rollback``, ``python -m deploy
rollback|status|schedule|move``, ``zappa unschedule|schedule|status|undeploy``. Zappa runs through
``tests.zappa_on_moto``, which works around moto's gaps in that process only (each is listed there) and packages
each stage with the real ``zappa package`` once (cached). The state after each step is kept (``Play.snapshots``),
and each test checks one part of it, so the tests hold in any order.

What moto cannot play is checked another way: SnapStart and the dead-letter target are not stored by moto's Lambda,
so the calls Zappa made are read (``ZAPPA_ON_MOTO_LOG``); API Gateway's integration credentials are read from the
template of the stack Zappa created. Events are never delivered (moto runs no Lambda code without Docker): that the
function policy lets S3 invoke is read from the policy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from deploy import lint, rollback, wire
from deploy.config import DeployConfig
from deploy.generate import build_settings
from offload import registry
from tests import lambda_env
from tests.helpers import for_moto

# Its subject does not touch the site's database or broker (.ci/run: first pass only).
pytestmark = pytest.mark.once

ROOT = lambda_env.ROOT
REGION = "us-east-1"
BROKER = "redis://jobs.internal:6379/0"
MOTO_SEED = 16  # moto's ids (VPC, subnet, security group) the same each run, so the packages stay cached
STAGES = ("functions", "web")


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def with_file(source: Path, target: Path, name: str, text: str) -> Path:
    """A copy of a package with one more file: another release's code (another CodeSha256)."""
    shutil.copyfile(source, target)
    with zipfile.ZipFile(target, "a") as zf:
        zf.writestr(name, text)
    return target


def code_sha(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


@dataclass
class Play:
    endpoint: str
    folder: Path
    settings_path: Path
    settings: dict[str, Any]
    cfg: DeployConfig
    log: Path
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # release name -> CodeSha256
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each command
    cpu: dict[str, float] = field(default_factory=dict)  # its CPU time (the subprocess and its children)
    settings_after_celery: dict[str, Any] = field(default_factory=dict)
    api_template: dict[str, Any] = field(default_factory=dict)
    stacks: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            ZAPPA_ON_MOTO_LOG=str(self.log),
            # `python -m deploy schedule|move` run Zappa through the same stand-in.
            BOARDSITE_ZAPPA=f"{sys.executable} -m tests.zappa_on_moto zappa",
            VIRTUAL_ENV=sys.prefix,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def run(self, name: str, *args: str, ok: bool = True) -> str:
        started, cpu = time.perf_counter(), _children_cpu()
        done = subprocess.run(
            [sys.executable, "-m", "tests.zappa_on_moto", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        self.seconds[name] = time.perf_counter() - started
        self.cpu[name] = _children_cpu() - cpu
        output = done.stdout + done.stderr
        self.outputs[name] = output
        if ok and done.returncode != 0:
            raise AssertionError(f"{name}: {' '.join(args)} exited {done.returncode}:\n{output[-6000:]}")
        return output

    def zappa(self, name: str, *args: str, settings: Path | None = None, ok: bool = True) -> str:
        return self.run(name, "zappa", *args, "-s", str(settings or self.settings_path), ok=ok)

    def deploy(self, name: str, *args: str, settings: Path | None = None, ok: bool = True) -> str:
        return self.run(name, "deploy", *args, "-s", str(settings or self.settings_path), ok=ok)

    def function(self, stage: str) -> str:
        return rollback.function_name(stage, self.settings[stage])

    def snap(self, name: str) -> dict[str, Any]:
        self.snapshots[name] = state(self)
        return self.snapshots[name]

    def calls(self, operation: str, argv: list[str] | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c for c in lines if c["operation"] == operation and (argv is None or c["argv"] == argv)]

    def deployed_zip(self, stage: str) -> zipfile.ZipFile:
        """The code $LATEST runs, downloaded as ``rollback`` does (from the stand-in's store of uploads)."""
        sha = client(self.endpoint, "lambda").get_function(FunctionName=self.function(stage))["Configuration"][
            "CodeSha256"
        ]
        s3 = client(self.endpoint, "s3")
        body = s3.get_object(Bucket="zappa-on-moto-code", Key=base64.b64decode(sha).hex())["Body"].read()
        return zipfile.ZipFile(io.BytesIO(body))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _version(configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": configuration["Version"],
        "code": configuration["CodeSha256"],
        "memory": configuration["MemorySize"],
        "env": (configuration.get("Environment") or {}).get("Variables") or {},
        "role": configuration["Role"],
    }


def state(play: Play) -> dict[str, Any]:
    """What AWS holds for both stages now."""
    lam, events, s3 = (client(play.endpoint, s) for s in ("lambda", "events", "s3"))
    out: dict[str, Any] = {}
    for stage in STAGES:
        name = play.function(stage)
        try:
            latest = lam.get_function_configuration(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            out[stage] = {"exists": False}
            continue
        arn = latest["FunctionArn"]
        listed = lam.list_versions_by_function(FunctionName=name)["Versions"]
        versions = [_version(v) for v in listed if v["Version"] != "$LATEST"]
        aliases = {a["Name"]: a["FunctionVersion"] for a in lam.list_aliases(FunctionName=name)["Aliases"]}
        by_name = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        mappings = [
            {
                "queue": m["EventSourceArn"],
                "uuid": m["UUID"],
                "types": m.get("FunctionResponseTypes") or [],
                "max": (m.get("ScalingConfig") or {}).get("MaximumConcurrency"),
            }
            for m in lam.list_event_source_mappings(FunctionName=arn)["EventSourceMappings"]
        ]
        try:
            statements = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
        except lam.exceptions.ResourceNotFoundException:
            statements = []
        rules = []
        for rule in events.list_rule_names_by_target(TargetArn=arn)["RuleNames"]:
            described = events.describe_rule(Name=rule)
            targets = [t["Arn"] for t in events.list_targets_by_rule(Rule=rule)["Targets"]]
            rules.append(
                {"name": rule, "role": described.get("RoleArn"), "expression": described["ScheduleExpression"]}
                | {"targets": targets}
            )
        out[stage] = {
            "exists": True,
            "arn": arn,
            "latest": _version(latest),
            "versions": versions,
            "aliases": aliases,
            "mappings": mappings,
            "mappings_by_name": len(by_name),
            "policy": statements,
            "rules": rules,
        }
    notification = s3.get_bucket_notification_configuration(Bucket=play.cfg.media_bucket)
    out["notification"] = notification.get("LambdaFunctionConfigurations", [])
    return out


def s3_statements(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in snapshot["policy"] if s["Principal"] == {"Service": wire.S3_PRINCIPAL}]


def serving(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The version the alias points at (SnapStart) or, without one, $LATEST."""
    alias = snapshot["aliases"].get(rollback.SNAPSTART_ALIAS)
    if alias is None:
        return snapshot["latest"]
    return next(v for v in snapshot["versions"] if v["number"] == alias)


def expected_bounds(settings: dict[str, Any], stage: str) -> dict[str, int]:
    """Queue ARN -> the registry's MaximumConcurrency for the stage's SQS triggers (independent of wire's code)."""
    by_handler = {job.handler: job for job in registry.JOBS.values()}
    return {
        e["event_source"]["arn"]: by_handler[e["function"]].trigger.max_concurrency
        for e in settings[stage]["events"]
        if e.get("event_source", {}).get("arn", "").startswith("arn:aws:sqs:")
    }


def all_wired(snapshot: dict[str, Any], settings: dict[str, Any], stage: str) -> bool:
    bounds = expected_bounds(settings, stage)
    mappings = snapshot[stage]["mappings"]
    return {m["queue"] for m in mappings} == set(bounds) and all(
        m["types"] == [wire.REPORT_FAILURES] and m["max"] == bounds[m["queue"]] for m in mappings
    )


def _configured(cfg: DeployConfig) -> dict[str, Any]:
    settings = build_settings(cfg)
    for stage in settings.values():
        stage["touch"] = False  # the first deploy GETs / otherwise (the database is not migrated yet; no internet)
    return settings


def _write(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text(json.dumps(settings, indent=4) + "\n")
    return path


@pytest.fixture(scope="module")
def play(tmp_path_factory) -> Play:
    """The whole sequence, once for the module (about a minute with the packages cached)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's state lives in its backends, one per process: this server shares it with the session's (tests that
    # ran before may have left a "boardsite" stack). Start from nothing, and leave nothing behind.
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        requests.post(f"{endpoint}/moto-api/seed", params={"a": MOTO_SEED}, timeout=10).raise_for_status()
        yield _play(endpoint, tmp_path_factory.mktemp("played"))
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        server.stop()


def _play(endpoint: str, folder: Path) -> Play:
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="boardsite-web", Description="web", VpcId=vpc)["GroupId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    cfg = DeployConfig(
        account=lambda_env.MOTO_ACCOUNT,
        region=REGION,
        domain=lambda_env.DOMAIN,
        subnets=(subnet,),
        security_groups=(group,),
        database_url="postgres://boardsite@db.internal:5432/boardsite",
        # moto numbers a new version len(versions) + 1, so after Zappa prunes it would reuse numbers.
        num_retained_versions=50,
    )
    settings = _configured(cfg)
    play = Play(endpoint, folder, _write(folder / "zappa_settings.json", settings), settings, cfg, folder / "calls")

    # The stack, as DEPLOY.md §2 creates it (here with CloudFormation's API instead of `aws cloudformation deploy`).
    template = folder / "template.json"
    play.run("template", "deploy", "template", "-s", str(play.settings_path), "-o", str(template))
    cfn = client(endpoint, "cloudformation")
    cfn.create_stack(
        StackName="boardsite",
        TemplateBody=for_moto(json.loads(template.read_text())),  # without the DKIM outputs moto cannot resolve
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "VpcId", "ParameterValue": vpc},
            {"ParameterKey": "PrivateRouteTableIds", "ParameterValue": table},
        ],
    )
    play.outputs["stack status"] = cfn.describe_stacks(StackName="boardsite")["Stacks"][0]["StackStatus"]

    # §6: first deploy, then wire.
    packages = {stage: lambda_env.package(stage, play.settings_path).zip_path for stage in STAGES}
    play.codes |= {f"{stage} A": code_sha(packages[stage]) for stage in STAGES}
    play.zappa("deploy functions", "deploy", "functions")
    play.zappa("deploy web", "deploy", "web")
    play.snap("deployed")
    # API Gateway's resources are in the stack Zappa creates (named after the function); moto's API Gateway does not
    # keep integration credentials, the stack's template does.
    (api_stack,) = [c["params"]["StackName"] for c in play.calls("CreateStack") if c["argv"] == ["deploy", "web"]]
    play.api_template = cfn.get_template(StackName=api_stack)["TemplateBody"]
    play.deploy("wire functions", "wire", "functions")
    play.deploy("wire web", "wire", "web")
    play.snap("wired")

    # §8: updates. Three of the functions stage with nothing changed (row 7: the policy grows), then wire.
    for n in (1, 2, 3):
        play.zappa(f"update functions {n}", "update", "functions")
        play.snap(f"functions update {n}")
    play.deploy("rewire functions", "wire", "functions")
    play.snap("functions rewired")

    # Release B of the web stage: new code and a configuration change (memory, an environment variable).
    web_b = with_file(packages["web"], folder / "web-b.zip", "release.txt", "B")
    play.codes["web B"] = code_sha(web_b)
    settings_b = _configured(cfg)
    settings_b["web"]["memory_size"] += 128
    settings_b["web"]["aws_environment_variables"]["BOARDSITE_RELEASE"] = "B"  # configuration, not code
    b_path = _write(folder / "zappa_settings_b.json", settings_b)
    play.zappa("update web B", "update", "web", "--zip", str(web_b), settings=b_path)
    play.deploy("wire web B", "wire", "web", settings=b_path)
    play.snap("web B")
    play.zappa("zappa rollback web", "rollback", "web", "-n", "1", settings=b_path)
    play.snap("zappa rollback web")
    play.deploy("status web before rollback", "status", "web")
    play.deploy("rollback web --dry-run", "rollback", "web", "--dry-run")
    play.snap("rollback web --dry-run")
    play.deploy("rollback web", "rollback", "web")
    play.snap("rollback web")
    play.deploy("status web", "status", "web")
    b_version = max((v for v in play.snapshots["web B"]["web"]["versions"]), key=lambda v: int(v["number"]))
    play.deploy("rollback web --to", "rollback", "web", "--to", b_version["number"])
    play.snap("rollback web --to")
    play.zappa("zappa status web", "status", "web")

    # The same on the functions stage (no SnapStart, no alias): release F2 with more memory.
    functions_b = with_file(packages["functions"], folder / "functions-b.zip", "release.txt", "B")
    play.codes["functions B"] = code_sha(functions_b)
    settings_fb = json.loads(json.dumps(settings))
    settings_fb["functions"]["memory_size"] += 128
    fb_path = _write(folder / "zappa_settings_fb.json", settings_fb)
    play.zappa("update functions B", "update", "functions", "--zip", str(functions_b), settings=fb_path)
    play.deploy("wire functions B", "wire", "functions", settings=fb_path)
    play.snap("functions B")
    play.zappa("zappa rollback functions", "rollback", "functions", "-n", "1", settings=fb_path)
    play.snap("zappa rollback functions")
    play.deploy("rollback functions", "rollback", "functions")
    play.snap("rollback functions")

    # §9/§12, rows 4 and 10: unschedule takes the SQS mappings too; schedule brings them back unwired.
    play.zappa("unschedule web", "unschedule", "web")
    play.snap("unscheduled web")
    play.deploy("wire web after unschedule", "wire", "web", ok=False)  # says what is missing
    play.zappa("schedule web", "schedule", "web")
    play.snap("zappa schedule web")
    play.deploy("wire web after schedule", "wire", "web")
    play.snap("wired after schedule")
    play.zappa("unschedule functions", "unschedule", "functions")
    play.snap("unscheduled functions")
    play.deploy("deploy schedule functions", "schedule", "functions")
    play.snap("deploy schedule functions")

    # §12: process_image to Celery workers and back, every mapping wired at each end.
    play.deploy("move to celery", "move", "process_image", "celery", "--broker-url", BROKER)
    play.snap("moved to celery")
    play.settings_after_celery = json.loads(play.settings_path.read_text())
    play.outputs["web zip on celery"] = play.deployed_zip("web").read("zappa_settings.py").decode()
    play.deploy("move to lambda", "move", "process_image", "lambda")
    play.snap("moved to lambda")
    play.outputs["web zip on lambda"] = play.deployed_zip("web").read("zappa_settings.py").decode()

    play.zappa("undeploy functions", "undeploy", "functions", "--yes")
    play.zappa("undeploy web", "undeploy", "web", "--yes")
    play.snap("undeployed")
    # What each command printed and how long it took, for whoever reads a failure.
    record = {"seconds": play.seconds, "cpu": play.cpu, "outputs": play.outputs}
    (folder / "outputs.json").write_text(json.dumps(record, indent=1))
    play.stacks = {s["StackName"]: s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]}
    return play


# --- first deploy -------------------------------------------------------------------------------------------------


def test_the_stack_and_both_stages_deploy(play):
    assert play.outputs["stack status"] == "CREATE_COMPLETE"
    deployed = play.snapshots["deployed"]
    for stage in STAGES:
        assert deployed[stage]["exists"]
        assert deployed[stage]["latest"]["role"] == play.settings[stage]["role_arn"]
        assert deployed[stage]["latest"]["code"] == play.codes[f"{stage} A"]
        assert "Deployment complete" in play.outputs[f"deploy {stage}"]
        # moto's AddPermission answers 200: the stand-in reports AWS's 201, so no spurious error is left.
        assert "Problem creating permission" not in play.outputs[f"deploy {stage}"]
    # SnapStart: API Gateway invokes Zappa's alias, on the version the deploy published.
    assert deployed["web"]["aliases"] == {rollback.SNAPSTART_ALIAS: "1"}
    assert deployed["functions"]["aliases"] == {}


def test_zappa_asked_for_what_moto_does_not_store(play):
    """SnapStart and the dead-letter target are not kept by moto: the calls Zappa made say what AWS would get."""
    created = {c["params"]["FunctionName"]: c["params"] for c in play.calls("CreateFunction")}
    web, functions = created[play.function("web")], created[play.function("functions")]
    assert web["SnapStart"] == {"ApplyOn": play.settings["web"]["snap_start"]}
    assert web["VpcConfig"] == play.settings["web"]["vpc_config"]
    assert functions["DeadLetterConfig"] == {"TargetArn": play.settings["functions"]["dead_letter_arn"]}
    assert functions["SnapStart"] == {"ApplyOn": "None"}
    # Every update keeps SnapStart on (Zappa sends it with each configuration).
    updates = [c["params"] for c in play.calls("UpdateFunctionConfiguration") if c["argv"][:2] == ["update", "web"]]
    assert updates
    assert all(u["SnapStart"] == {"ApplyOn": "PublishedVersions"} for u in updates)


def test_api_gateway_invokes_the_alias_with_the_web_role(play):
    """moto's API Gateway does not keep integration credentials: the template of Zappa's own stack says them."""
    resources = play.api_template["Resources"]
    integrations = [
        r["Properties"]["Integration"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"
    ]
    assert integrations
    for integration in integrations:
        assert integration["Credentials"] == play.settings["web"]["role_arn"]
        assert f":{rollback.SNAPSTART_ALIAS}/invocations" in json.dumps(integration["Uri"])


def test_schedules_are_rules_that_carry_the_stage_role(play):
    web = play.snapshots["wired"]["web"]
    expressions = sorted(e["expression"] for e in play.settings["web"]["events"] if "expression" in e)
    assert sorted(r["expression"] for r in web["rules"]) == expressions
    assert {r["role"] for r in web["rules"]} == {play.settings["web"]["role_arn"]}
    assert all(r["targets"] == [web["arn"]] for r in web["rules"])  # the unqualified function: $LATEST
    assert play.snapshots["wired"]["functions"]["rules"] == []
    # Zappa clears EventBridge's statements before it adds new ones: one per rule, however many updates.
    events = [s for s in web["policy"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert len(events) == len(expressions)


def test_the_role_the_rules_carry_trusts_eventbridge_and_api_gateway(play):
    """Zappa hands the execution role to EventBridge (put_rule RoleArn) and API Gateway (integration credentials)."""
    iam = client(play.endpoint, "iam")
    role = play.settings["web"]["role_arn"].rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    principals = set()
    for statement in trust["Statement"]:
        service = statement["Principal"].get("Service", [])
        principals |= {service} if isinstance(service, str) else set(service)
    assert {"lambda.amazonaws.com", "events.amazonaws.com", "apigateway.amazonaws.com"} <= principals


def test_the_bucket_notifies_the_functions_stage(play):
    (notification,) = play.snapshots["wired"]["notification"]
    assert notification["LambdaFunctionArn"] == play.snapshots["wired"]["functions"]["arn"]
    (source,) = wire.s3_sources(play.settings["functions"])
    assert notification["Events"] == source["events"]
    assert notification["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": source["prefix"]}]


# --- wire: partial batch responses, a concurrency bound, one S3 statement -----------------------------------------


def test_wire_finds_zappas_mappings_by_arn_and_sets_both(play):
    deployed, wired = play.snapshots["deployed"], play.snapshots["wired"]
    for stage in STAGES:
        bounds = expected_bounds(play.settings, stage)
        assert {m["queue"] for m in deployed[stage]["mappings"]} == set(bounds)
        # Zappa creates them by ARN (moto then lists them only by ARN; AWS by either), without either setting.
        assert deployed[stage]["mappings_by_name"] == 0
        assert all(m["types"] == [] and m["max"] is None for m in deployed[stage]["mappings"])
        assert all_wired(wired, play.settings, stage), wired[stage]["mappings"]
        assert [m["uuid"] for m in wired[stage]["mappings"]] == [m["uuid"] for m in deployed[stage]["mappings"]]
    bounds = [b for stage in STAGES for b in expected_bounds(play.settings, stage).values()]
    assert min(bounds) >= registry.SQS_MIN_CONCURRENCY  # what AWS accepts


def test_updates_add_s3_statements_and_wire_keeps_one(play):
    """Row 7: each `zappa update` adds a random-id statement for S3 and nothing removes them (20 KB: ~50 updates)."""
    counts = [len(s3_statements(play.snapshots[f"functions update {n}"]["functions"])) for n in (1, 2, 3)]
    wired_before = len(s3_statements(play.snapshots["wired"]["functions"]))
    assert wired_before == 1
    assert counts[0] < counts[1] < counts[2], counts
    for name in ("functions rewired", "functions B", "deploy schedule functions", "moved to lambda"):
        (kept,) = s3_statements(play.snapshots[name]["functions"])
        assert kept["Sid"] == wire.permission_sid(f"arn:aws:s3:::{play.cfg.media_bucket}")
        assert kept["Effect"] == "Allow"
        assert kept["Action"] == "lambda:InvokeFunction"
        assert kept["Resource"] == play.snapshots[name]["functions"]["arn"]
        assert kept["Condition"] == {
            "ArnLike": {"AWS:SourceArn": f"arn:aws:s3:::{play.cfg.media_bucket}"},
            "StringEquals": {"AWS:SourceAccount": play.cfg.account},
        }
    # The web function has no S3 trigger: nothing for S3 in its policy.
    assert s3_statements(play.snapshots["wired"]["web"]) == []


# --- rollback ------------------------------------------------------------------------------------------------------


def test_an_update_that_changes_configuration_publishes_two_versions(play):
    """Row 6: the code under the old configuration, then the configuration; the alias moves to the second."""
    before, after = play.snapshots["wired"]["web"], play.snapshots["web B"]["web"]
    new = [v for v in after["versions"] if v not in before["versions"]]
    assert [v["code"] for v in new] == [play.codes["web B"]] * 2
    memory = play.settings["web"]["memory_size"]
    assert [v["memory"] for v in new] == [memory, memory + 128]
    assert serving(after) == new[-1]


def test_zappa_rollback_counts_versions_and_lands_on_the_same_code(play):
    """Row 6: `zappa rollback web -n 1` takes the version before the newest, which holds the new code."""
    web = play.snapshots["zappa rollback web"]["web"]
    assert serving(web)["code"] == play.codes["web B"] != play.codes["web A"]
    assert web["latest"]["code"] == play.codes["web B"]
    functions = play.snapshots["zappa rollback functions"]["functions"]
    assert functions["latest"]["code"] == play.codes["functions B"]
    # And it uploads code only: the configuration is never touched.
    for stage in STAGES:
        assert play.calls("UpdateFunctionCode", ["rollback", stage])
        assert not play.calls("UpdateFunctionConfiguration", ["rollback", stage])


def test_deploy_rollback_restores_the_previous_code_and_configuration_under_snapstart(play):
    web = play.snapshots["rollback web"]["web"]
    a = play.snapshots["deployed"]["web"]["versions"][0]
    # The alias moves back to release A's own version (its snapshot is ready), and $LATEST gets its code and
    # configuration (schedules and queues invoke $LATEST).
    assert web["aliases"][rollback.SNAPSTART_ALIAS] == a["number"]
    assert serving(web)["code"] == play.codes["web A"]
    assert web["latest"]["code"] == play.codes["web A"]
    assert web["latest"]["memory"] == play.settings["web"]["memory_size"]
    assert web["latest"]["env"] == play.snapshots["deployed"]["web"]["latest"]["env"]  # without B's variable
    assert "BOARDSITE_RELEASE" in play.snapshots["web B"]["web"]["latest"]["env"]
    assert play.snapshots["rollback web --dry-run"] == play.snapshots["zappa rollback web"]  # changes nothing
    assert f"making version {a['number']} live" in play.outputs["rollback web --dry-run"]
    output = play.outputs["rollback web"]
    assert f"making version {a['number']} live" in output
    assert "not restored: event source mappings, schedules" in output
    # Rolling back did not touch the triggers.
    assert all_wired(play.snapshots["rollback web"], play.settings, "web")
    # --to: forward again, to release B's last version.
    forward = play.snapshots["rollback web --to"]["web"]
    assert serving(forward)["code"] == forward["latest"]["code"] == play.codes["web B"]
    assert forward["latest"]["memory"] == play.settings["web"]["memory_size"] + 128
    assert forward["latest"]["env"]["BOARDSITE_RELEASE"] == "B"


def test_deploy_rollback_without_snapstart(play):
    functions = play.snapshots["rollback functions"]["functions"]
    assert functions["aliases"] == {}
    assert functions["latest"]["code"] == play.codes["functions A"]
    assert functions["latest"]["memory"] == play.settings["functions"]["memory_size"]
    # wire recorded release B's configuration as a version (Zappa published its code under the old one).
    b = [v for v in play.snapshots["functions B"]["functions"]["versions"] if v["code"] == play.codes["functions B"]]
    assert [v["memory"] for v in b] == [play.settings["functions"]["memory_size"] + x for x in (0, 128)]


def test_status_prints_what_runs_by_code_where_zappa_status_cannot(play):
    live = play.snapshots["rollback web --to"]["web"]
    assert live["latest"]["code"] not in play.outputs["zappa status web"]
    shown = play.outputs["status web"]
    assert f"alias {rollback.SNAPSTART_ALIAS} -> version" in shown
    assert play.codes["web A"] in shown
    assert play.codes["web B"] in shown
    assert "<- live" in shown
    before = play.outputs["status web before rollback"]
    a = play.snapshots["deployed"]["web"]["versions"][0]["number"]
    assert f"<- `rollback web` makes version {a} live" in before


# --- unschedule / schedule / move: no mapping left unwired --------------------------------------------------------


def test_unschedule_removes_the_sqs_mappings_and_zappa_schedule_brings_them_back_unwired(play):
    """Rows 4 and 10."""
    unscheduled = play.snapshots["unscheduled web"]["web"]
    assert unscheduled["mappings"] == []
    assert unscheduled["rules"] == []
    # wire names what is gone: the queues' mappings and every schedule (the sweep of lost uploads among them).
    said = play.outputs["wire web after unschedule"]
    assert said.count("no event source mapping") == len(expected_bounds(play.settings, "web"))
    schedules = [e for e in play.settings["web"]["events"] if "expression" in e]
    assert said.count("no schedule rule") == len(schedules) > 0
    rescheduled = play.snapshots["zappa schedule web"]
    assert {m["queue"] for m in rescheduled["web"]["mappings"]} == set(expected_bounds(play.settings, "web"))
    assert all(m["types"] == [] and m["max"] is None for m in rescheduled["web"]["mappings"])
    assert all_wired(play.snapshots["wired after schedule"], play.settings, "web")
    functions = play.snapshots["unscheduled functions"]
    assert functions["functions"]["mappings"] == []
    assert functions["notification"] == []


def test_deploy_schedule_puts_every_trigger_back_wired(play):
    after = play.snapshots["deploy schedule functions"]
    assert all_wired(after, play.settings, "functions")
    assert [n["LambdaFunctionArn"] for n in after["notification"]] == [after["functions"]["arn"]]


def test_move_a_job_to_celery_and_back_leaves_every_mapping_wired(play):
    celery = play.snapshots["moved to celery"]
    moved = play.settings_after_celery
    assert lint.deployed_modes(moved)["process_image"] == "celery"
    assert moved["web"]["environment_variables"]["CELERY_BROKER_URL"] == BROKER
    assert moved["web"]["touch"] is False  # keys configure does not write are kept
    # The S3 trigger and its permission are gone; the mail queue's mapping is back and wired.
    assert celery["notification"] == []
    assert s3_statements(celery["functions"]) == []
    for stage in STAGES:
        assert all_wired(celery, moved, stage), (stage, celery[stage]["mappings"])
    assert "process_image=celery" in play.outputs["web zip on celery"]  # the site enqueues it now
    back = play.snapshots["moved to lambda"]
    assert json.loads(play.settings_path.read_text()) == play.settings
    assert [n["LambdaFunctionArn"] for n in back["notification"]] == [back["functions"]["arn"]]
    for stage in STAGES:
        assert all_wired(back, play.settings, stage)
    assert "process_image=lambda" in play.outputs["web zip on lambda"]
    assert "every trigger of both stages is wired" in play.outputs["move to lambda"]


def test_undeploy_removes_both_stages_and_their_triggers(play):
    gone = play.snapshots["undeployed"]
    assert not gone["web"]["exists"]
    assert not gone["functions"]["exists"]
    assert gone["notification"] == []
    lam = client(play.endpoint, "lambda")
    assert lam.list_event_source_mappings()["EventSourceMappings"] == []
    assert client(play.endpoint, "events").list_rules()["Rules"] == []
    # Zappa deletes its API stack (moto's CloudFormation then leaves the REST API itself behind: not checked).
    assert play.stacks[play.function("web")] == "DELETE_COMPLETE"
    assert play.stacks["boardsite"] == "CREATE_COMPLETE"  # the template's resources are not Zappa's to remove


def test_the_snapstart_alias_is_zappas():
    from zappa.core import SNAPSTART_LAMBDA_ALIAS

    assert rollback.SNAPSTART_ALIAS == SNAPSTART_LAMBDA_ALIAS
