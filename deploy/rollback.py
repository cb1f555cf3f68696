"""`python -m deploy rollback STAGE` and `python -m deploy status STAGE`: what is live, and going back by code.

A Lambda version is a pair: its code (``CodeSha256``) and its configuration. Zappa 0.63 publishes them apart
(zappa/core.py): ``zappa update`` uploads the code with ``Publish=True`` (a version of the new code under the *old*
configuration), then applies the configuration, and with SnapStart publishes once more and moves the alias
``snapstart`` (the one API Gateway invokes) there. So a release is one or two versions of the same code, and
``zappa rollback -n 1``, which counts versions, can land on the release it was meant to leave. It also re-uploads
the code only: the configuration stays the current one.

Here versions are grouped into releases by their code, and a release's last version holds its code and its
configuration (SnapStart stages: Zappa's second publish; others: the version ``python -m deploy wire`` publishes
after each update). ``rollback`` makes the function run one version exactly:

- the code of that version, uploaded to ``$LATEST`` (schedules, queues and S3 invoke the unqualified function);
- its configuration: environment variables (the stage's ``aws_environment_variables``; the stage's
  ``environment_variables`` are inside the zip, so they come back with the code), handler, runtime, memory, timeout
  and ephemeral storage;
- with SnapStart, the alias moved to that version, whose snapshot is ready: no new version, no wait (a version
  whose snapshot is no longer active is published again from the restored ``$LATEST`` first).

It does not restore: event source mappings, schedules, the S3 notification, layers, the VPC, the execution role
and its policy (the stack), reserved concurrency, API Gateway, the database (migrations).

    python -m deploy status web [-s zappa_settings.json] [--json]
    python -m deploy rollback web [--previous | --to VERSION] [--dry-run] [-s zappa_settings.json]

``--previous`` (the default): the last version of the release before the live one. ``--to N``: version N.
Before changing anything on a stage without SnapStart, what ``$LATEST`` runs is published as a version when no
version holds it yet, so ``--to`` can come back to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from offload.aws import make_client

# Zappa's alias for callers of a SnapStart function (zappa.core.SNAPSTART_LAMBDA_ALIAS; a test keeps them equal).
SNAPSTART_ALIAS = "snapstart"
# Aliases Zappa keeps for other features (ALB, provisioned concurrency): moving them needs more than an alias move.
OTHER_ZAPPA_ALIASES = ("current-alb-version", "provisioned-concurrency")
RESTORED = ("code", "environment variables", "handler", "runtime", "memory", "timeout", "ephemeral storage")
NOT_RESTORED = (
    "event source mappings",
    "schedules",
    "the S3 notification",
    "layers",
    "the VPC",
    "the execution role and its policy (the stack)",
    "reserved concurrency",
    "API Gateway",
    "the database (roll migrations back yourself)",
)
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # Lambda takes a zip this large inline; a larger one goes through S3


class RollbackError(Exception):
    """Why a rollback cannot go ahead (printed without a traceback)."""


def restorable(configuration: dict[str, Any]) -> dict[str, Any]:
    """The part of a version's configuration that rollback puts back, in UpdateFunctionConfiguration's shape."""
    return {
        "Handler": configuration.get("Handler"),
        "Runtime": configuration.get("Runtime"),
        "MemorySize": configuration.get("MemorySize"),
        "Timeout": configuration.get("Timeout"),
        "EphemeralStorage": {"Size": (configuration.get("EphemeralStorage") or {}).get("Size", 512)},
        "Environment": {"Variables": dict((configuration.get("Environment") or {}).get("Variables") or {})},
    }


@dataclass(frozen=True)
class Version:
    number: str  # "7", or "$LATEST"
    code: str  # CodeSha256: base64 of the zip's sha256
    config: dict[str, Any]  # restorable()

    @classmethod
    def of(cls, configuration: dict[str, Any]) -> Version:
        return cls(configuration["Version"], configuration["CodeSha256"], restorable(configuration))

    def same(self, other: Version) -> bool:
        return self.code == other.code and self.config == other.config

    def describe(self) -> str:
        variables = self.config["Environment"]["Variables"]
        return (
            f"code {self.code}, memory {self.config['MemorySize']} MB, timeout {self.config['Timeout']} s, "
            f"{len(variables)} environment variable{'s' * (len(variables) != 1)}"
        )


@dataclass(frozen=True)
class Release:
    """Consecutive versions of one code: the last holds the release's configuration."""

    code: str
    versions: tuple[Version, ...]

    @property
    def last(self) -> Version:
        return self.versions[-1]

    def numbers(self) -> str:
        first, last = self.versions[0].number, self.last.number
        return f"version {first}" if first == last else f"versions {first}-{last}"


@dataclass(frozen=True)
class Live:
    function: str
    arn: str
    latest: Version
    versions: tuple[Version, ...]  # published, oldest first
    alias: str | None  # SnapStart's alias when the stage has one
    alias_version: str | None

    def releases(self) -> list[Release]:
        out: list[Release] = []
        for version in self.versions:
            if out and out[-1].code == version.code:
                out[-1] = Release(version.code, (*out[-1].versions, version))
            else:
                out.append(Release(version.code, (version,)))
        return out

    def version(self, number: str) -> Version | None:
        return next((v for v in self.versions if v.number == number), None)

    def serving(self) -> Version | None:
        """The version that answers: the alias's, else the newest that $LATEST equals, else the newest of its code."""
        if self.alias:
            return self.version(self.alias_version or "")
        same = [v for v in self.versions if v.same(self.latest)]
        same = same or [v for v in self.versions if v.code == self.latest.code]
        return same[-1] if same else None

    def live_release(self) -> int | None:
        serving = self.serving()
        if serving is None:
            return None
        return next(i for i, r in enumerate(self.releases()) if serving in r.versions)


def stage_alias(stage: dict[str, Any]) -> str | None:
    snap_start = stage.get("snap_start")
    return SNAPSTART_ALIAS if snap_start and snap_start != "None" else None


def read_live(lam: Any, function: str, alias: str | None) -> Live:
    try:
        latest = lam.get_function_configuration(FunctionName=function)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise RollbackError(f"{function} does not exist: deploy it first (`zappa deploy`)") from None
        raise
    pages = lam.get_paginator("list_versions_by_function").paginate(FunctionName=function)
    published = [v for page in pages for v in page["Versions"] if v["Version"] != "$LATEST"]
    versions = tuple(Version.of(v) for v in sorted(published, key=lambda v: int(v["Version"])))
    aliases = {
        a["Name"]: a["FunctionVersion"]
        for page in lam.get_paginator("list_aliases").paginate(FunctionName=function)
        for a in page["Aliases"]
    }
    others = [name for name in OTHER_ZAPPA_ALIASES if name in aliases]
    if others:
        raise RollbackError(f"{function} has Zappa's alias {others[0]!r}: this rollback handles SnapStart's only")
    if alias and alias not in aliases:
        raise RollbackError(f"{function} has no alias {alias!r}, which Zappa keeps under SnapStart: redeploy first")
    return Live(
        function=function,
        arn=latest["FunctionArn"],
        latest=Version.of(latest),
        versions=versions,
        alias=alias,
        alias_version=aliases.get(alias) if alias else None,
    )


def choose(live: Live, to: str | None) -> Version:
    """The version a rollback makes live: ``to``, else the last version of the release before the live one."""
    if to is not None:
        target = live.version(to)
        if target is None:
            known = ", ".join(v.number for v in live.versions) or "none"
            raise RollbackError(f"{live.function} has no version {to} (published versions: {known})")
        return target
    index = live.live_release()
    if index is None:
        raise RollbackError(
            f"no published version of {live.function} holds the live code ({live.latest.code}): "
            "run `python -m deploy wire` to record it, or choose one with --to"
        )
    if index == 0:
        raise RollbackError(
            f"{live.function}: every version before the live one holds the same code ({live.latest.code}); "
            "there is no earlier release to go back to"
        )
    return live.releases()[index - 1].last


def record(lam: Any, live: Live) -> str | None:
    """Publish what $LATEST runs when no version holds it (stages without SnapStart; Zappa publishes the code
    before it applies the configuration). Returns what was done."""
    if live.alias or any(v.same(live.latest) for v in live.versions):
        return None
    lam.get_waiter("function_updated").wait(FunctionName=live.function)
    version = lam.publish_version(FunctionName=live.function, Description="recorded by python -m deploy")["Version"]
    return f"published version {version}: what $LATEST ran ({live.latest.describe()})"


def _download(location: str) -> bytes:
    with urllib.request.urlopen(location, timeout=120) as answer:  # a presigned URL of the version's own code
        return answer.read()


def _upload_code(lam: Any, s3: Any, live: Live, target: Version, bucket: str | None) -> None:
    location = lam.get_function(FunctionName=live.function, Qualifier=target.number)["Code"]["Location"]
    data = _download(location)
    if len(data) <= DIRECT_UPLOAD_LIMIT:
        answer = lam.update_function_code(FunctionName=live.function, ZipFile=data, Publish=False)
    else:
        if not bucket:
            raise RollbackError(f"the code of version {target.number} is over 50 MB: give the stage an s3_bucket")
        key = f"{live.function}-rollback-{target.number}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        try:
            answer = lam.update_function_code(FunctionName=live.function, S3Bucket=bucket, S3Key=key, Publish=False)
        finally:
            s3.delete_object(Bucket=bucket, Key=key)
    if answer["CodeSha256"] != target.code:
        raise RollbackError(
            f"uploaded code {answer['CodeSha256']} is not version {target.number}'s ({target.code}): $LATEST changed"
        )


def rollback(
    lam: Any, s3: Any, live: Live, target: Version, *, bucket: str | None = None, retained: int | None = None
) -> list[str]:
    """Make ``target`` what runs: its code and configuration on $LATEST, and the alias on it. Returns the steps.

    ``retained``: the stage's ``num_retained_versions``. The next ``zappa update`` publishes one version and then
    deletes all but the newest ``retained``, and AWS refuses to delete a version an alias points at (the update
    would stop half-way): the alias goes to the target only if it is among the newest ``retained - 1``."""
    done: list[str] = []
    recorded = record(lam, live)
    if recorded:
        done.append(recorded)
    waiter = lam.get_waiter("function_updated")
    if live.latest.code != target.code:
        _upload_code(lam, s3, live, target, bucket)
        waiter.wait(FunctionName=live.function)
        done.append(f"$LATEST: code of version {target.number} ({target.code})")
    if live.latest.config != target.config:
        lam.update_function_configuration(FunctionName=live.function, **target.config)
        waiter.wait(FunctionName=live.function)
        changed = [key for key in target.config if target.config[key] != live.latest.config[key]]
        done.append(f"$LATEST: configuration of version {target.number} ({', '.join(changed)})")
    serving = target.number
    if live.alias:
        state = lam.get_function_configuration(FunctionName=live.function, Qualifier=target.number).get("State")
        newest = [v.number for v in live.versions][-(retained - 1) :] if retained and retained > 1 else None
        why = None
        if state != "Active":
            why = f"is {state} (its snapshot is gone)"
        elif newest is not None and target.number not in newest:
            why = f"is older than the newest {retained - 1}: the next update would delete it under the alias"
        if why:
            # $LATEST now holds the target's code and configuration: publish it, and move the alias once its
            # snapshot is ready.
            answer = lam.publish_version(FunctionName=live.function, Description=f"rollback to {target.number}")
            serving = answer["Version"]
            lam.get_waiter("published_version_active").wait(FunctionName=live.function, Qualifier=serving)
            done.append(f"version {target.number} {why}: published it again as version {serving}")
    if live.alias and live.alias_version != serving:
        lam.update_alias(FunctionName=live.function, Name=live.alias, FunctionVersion=serving)
        done.append(f"alias {live.alias}: version {live.alias_version} -> {serving}")
    after = read_live(lam, live.function, live.alias)
    if not after.latest.same(target) or (live.alias and after.alias_version != serving):
        raise RollbackError(f"{live.function} does not run version {target.number} after the rollback: check it")
    return done


def status_lines(live: Live, stage_name: str) -> list[str]:
    serving = live.serving()
    lines = [f"{live.function} (stage {stage_name})"]
    if live.alias:
        lines.append(f"  alias {live.alias} -> version {live.alias_version} (API Gateway invokes it)")
    lines.append(f"  $LATEST (schedules, queues, S3): {live.latest.describe()}")
    if serving is None:
        lines.append("  no published version holds the live code: `python -m deploy wire` records it")
    elif serving.same(live.latest):
        lines.append(f"  $LATEST runs version {serving.number} exactly")
    else:
        differs = [k for k in serving.config if serving.config[k] != live.latest.config[k]]
        if serving.code != live.latest.code:
            differs.insert(0, "code")
        lines.append(f"  $LATEST differs from version {serving.number} in: {', '.join(differs)}")
    releases = live.releases()
    index = live.live_release()
    lines.append("  releases, newest first:")
    for i in reversed(range(len(releases))):
        release = releases[i]
        mark = ""
        if i == index:
            mark = "  <- live"
        elif index is not None and i == index - 1:
            mark = f"  <- `rollback {stage_name}` makes version {release.last.number} live"
        lines.append(f"    {release.numbers():<16} {release.last.describe()}{mark}")
    return lines


def status_json(live: Live) -> dict[str, Any]:
    return {
        "function": live.function,
        "alias": live.alias,
        "alias_version": live.alias_version,
        "latest": {"code": live.latest.code, "config": live.latest.config},
        "serving": live.serving().number if live.serving() else None,
        "releases": [
            {"code": r.code, "versions": [v.number for v in r.versions], "config": r.last.config}
            for r in live.releases()
        ],
    }


def _stage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    settings = json.loads(Path(args.settings).read_text())
    if args.stage not in settings:
        parser.error(f"no stage {args.stage!r} in {args.settings}")
    return settings[args.stage]


def _clients(stage: dict[str, Any]) -> tuple[Any, Any]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    return make_client("lambda", stage["aws_region"], endpoint), make_client("s3", stage["aws_region"], endpoint)


def function_name(stage_name: str, stage: dict[str, Any]) -> str:
    # Zappa names the function "<project_name>-<stage>" (slugified; our names are slugs already).
    return f"{stage['project_name']}-{stage_name}"


def status_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy status", description="What a stage runs, by code.")
    parser.add_argument("stage")
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    stage = _stage(parser, args)
    lam, _ = _clients(stage)
    try:
        live = read_live(lam, function_name(args.stage, stage), stage_alias(stage))
    except RollbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status_json(live), indent=2))
    else:
        print("\n".join(status_lines(live, args.stage)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy rollback", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage")
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--previous", action="store_true", help="the release before the live one (the default)")
    which.add_argument("--to", metavar="VERSION", help="this published version")
    parser.add_argument("--dry-run", action="store_true", help="say what would be restored, change nothing")
    args = parser.parse_args(argv)
    stage = _stage(parser, args)
    lam, s3 = _clients(stage)
    try:
        live = read_live(lam, function_name(args.stage, stage), stage_alias(stage))
        target = choose(live, args.to)
        print(f"{live.function}: making version {target.number} live ({target.describe()})")
        if args.dry_run:
            return 0
        retained = stage.get("num_retained_versions")
        for line in rollback(lam, s3, live, target, bucket=stage.get("s3_bucket"), retained=retained):
            print(f"  {line}")
    except RollbackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored: {', '.join(RESTORED)}")
    print(f"not restored: {', '.join(NOT_RESTORED)}")
    return 0
