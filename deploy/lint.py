"""Checks of a settings file before Zappa sees it.

``check_deployable`` is what the prebuild script (``deploy.prebuild``) runs before every ``zappa package|deploy|
update``: it refuses the placeholder account and region of the committed file and any ARN that points elsewhere than
the stage's own. ``check_settings`` compares the whole file with the registry (triggers, full ARNs, shared settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from deploy import build
from deploy.config import (
    ACCOUNT_RE,
    CDN_CERTIFICATE_KEY,
    CDN_CERTIFICATE_REGION,
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_REGION,
    PROJECT,
    REGION_RE,
    SECRET_NAMES,
    prefixed,
    sqs_arn,
    stage_account,
)
from offload import registry


def _arns(value: Any) -> list[str]:
    """Every ARN string anywhere inside a settings value."""
    if isinstance(value, str):
        return [value] if value.startswith("arn:") else []
    if isinstance(value, dict):
        return [arn for v in value.values() for arn in _arns(v)]
    if isinstance(value, list):
        return [arn for v in value for arn in _arns(v)]
    return []


def check_deployable(stage_name: str, stage: dict[str, Any]) -> list[str]:
    """Why ``stage`` must not be packaged or deployed (empty when it may be)."""
    problems: list[str] = []
    region = str(stage.get("aws_region", ""))
    account = stage_account(stage)
    if region == PLACEHOLDER_REGION or not REGION_RE.match(region):
        problems.append(f"{stage_name}: aws_region {region!r} is a placeholder: run `python -m deploy configure`")
    if account == PLACEHOLDER_ACCOUNT or not ACCOUNT_RE.match(account):
        problems.append(
            f"{stage_name}: the account in role_arn ({account or 'none'}) is a placeholder or missing: "
            "run `python -m deploy configure --account <id> --region <region>`"
        )
    if stage.get("manage_roles", True):
        problems.append(f"{stage_name}: manage_roles must be false (Zappa's own role grants s3:*, sqs:* on *)")
    for arn in _arns(stage):
        parts = arn.split(":")
        if len(parts) < 6:
            problems.append(f"{stage_name}: malformed ARN {arn!r}")
            continue
        service, arn_region, arn_account = parts[2], parts[3], parts[4]
        if service in ("s3", "iam"):  # S3 bucket ARNs name neither; IAM ARNs have no region
            if service == "iam" and arn_account != account:
                problems.append(f"{stage_name}: {arn} is in account {arn_account}, not {account}")
            continue
        if service == "acm" and arn_region == "us-east-1" and arn_account == account:
            continue  # an edge-optimized API's certificate lives in us-east-1 whatever the stage's region
        if arn_region != region or arn_account != account:
            problems.append(f"{stage_name}: {arn} is not in the stage's region {region} and account {account}")
    env = stage.get("environment_variables", {})
    for where, variables in (
        ("environment_variables", env),
        ("aws_environment_variables", stage.get("aws_environment_variables", {})),
    ):
        for name, value in variables.items():
            if _secret_name(name):
                where_text = (
                    "would be written in plain text into the zip"
                    if where == "environment_variables"
                    else "would sit in plain text in the settings file"
                )
                problems.append(f"{stage_name}: {name} looks like a secret and {where_text} ({where}); put it in SSM")
            if _url_with_password(str(value)):
                problems.append(f"{stage_name}: {name} carries a password; put the secret in SSM")
    if (urlsplit(env.get("DATABASE_URL", "")).hostname or "").endswith(".invalid"):
        problems.append(f"{stage_name}: DATABASE_URL is a placeholder: configure --database-url")
    problems += _database_tls_problems(stage_name, region, env.get("DATABASE_URL", ""))
    if "DJANGO_DEBUG" in env and str(env["DJANGO_DEBUG"]).lower() != "false":
        problems.append(f"{stage_name}: DJANGO_DEBUG must be false on Lambda (it shows tracebacks and settings)")
    if "BOARDSITE_SITE_URL" in env and not str(env["BOARDSITE_SITE_URL"]).startswith("https://"):
        problems.append(f"{stage_name}: BOARDSITE_SITE_URL must be https:// (it is the address of every link in mail)")
    if "BOARDSITE_CDN_URL" in env and not str(env["BOARDSITE_CDN_URL"]).startswith("https://"):
        problems.append(f"{stage_name}: BOARDSITE_CDN_URL must be https:// (the signed cookies are Secure)")
    cdn_certificate = str(stage.get(CDN_CERTIFICATE_KEY, ""))
    if cdn_certificate and cdn_certificate.split(":")[3:4] != [CDN_CERTIFICATE_REGION]:
        problems.append(f"{stage_name}: {CDN_CERTIFICATE_KEY} must be in {CDN_CERTIFICATE_REGION} (CloudFront's)")
    if "*" in str(env.get("DJANGO_ALLOWED_HOSTS", "")).split(","):
        problems.append(f"{stage_name}: DJANGO_ALLOWED_HOSTS must not be '*': name the API Gateway host and the domain")
    if stage.get("debug", True) or stage.get("log_level", "DEBUG") == "DEBUG":
        problems.append(f"{stage_name}: debug must be false and log_level above DEBUG (it logs every raw event)")
    return problems


def _database_tls_problems(stage_name: str, region: str, url: str) -> list[str]:
    """verify-full checks the server against boardsite/rds-ca-bundle.pem: refuse a region whose CAs it lacks."""
    from urllib.parse import parse_qs

    from deploy import rdsca

    query = parse_qs(urlsplit(url).query)
    if query.get("sslmode", [""])[-1] not in ("verify-full", "verify-ca") or query.get("sslrootcert"):
        return []
    if region in rdsca.covered_regions():
        return []
    return [
        f"{stage_name}: DATABASE_URL asks for sslmode={query['sslmode'][-1]}, but boardsite/rds-ca-bundle.pem has no "
        f"RDS CA for {region}: refresh it (`python -m deploy rds-ca`, DEPLOY.md §3) or use sslmode=require"
    ]


_SECRET_WORDS = {"SECRET", "PASSWORD", "PASSWD", "PASS", "TOKEN", "KEY", "KEYS", "DSN", "CREDENTIAL", "CREDENTIALS"}


def _secret_name(name: str) -> bool:
    words = set(re.split(r"[^A-Z0-9]+", name.upper()))
    return bool(words & _SECRET_WORDS) or any(secret in name.upper() for secret in SECRET_NAMES)


def _url_with_password(value: str) -> bool:
    """``scheme://user:password@host`` or a password in the query (``?password=``)."""
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value)
        return bool(parts.password) or bool(re.search(r"(^|&)(password|passwd|pass|token)=", parts.query, re.I))
    except ValueError:
        return True  # unparsable: refuse rather than ship it


def check_settings(settings: dict[str, Any]) -> list[str]:
    """The whole file against the registry (triggers, full ARNs, shared settings): run before every package too.
    Names follow the web stage's project name, which is the name prefix (``configure --name-prefix``)."""
    prefix = str(settings.get("web", {}).get("project_name", PROJECT))
    return check_zappa_settings(settings, rename=lambda name: prefixed(name, prefix))


def check_zappa_settings(
    zappa: dict[str, Any],
    *,
    queue_names: dict[str, str] | None = None,
    rename: Callable[[str], str] | None = None,
) -> list[str]:
    """Problems that would make the deployed triggers differ from this registry (empty when they agree).

    Queue ARNs are compared in full, built from the stage's own region and account (its role's): Zappa routes SQS
    events by exact ARN, and one with another account or region is never created and drops real messages.
    """
    rename = rename or (lambda name: name)  # a deployment's names under its prefix (deploy/stages.py)
    queue_names = queue_names or {setting: rename(q.name) for setting, q in registry.queues().items()}
    problems = []
    modes = deployed_modes(zappa)
    for job in registry.JOBS.values():
        stage_name = registry.ZAPPA_STAGES[job.side]
        stage = zappa.get(stage_name)
        if stage is None:
            problems.append(f"{job.name}: zappa_settings.json has no {stage_name!r} stage")
            continue
        events = [e for e in stage.get("events", []) if e.get("function") == job.handler]
        if isinstance(job.trigger, registry.HTTPTrigger):
            # Requests, not events: on lambda its stage's function URL answers them, else the site's own view.
            if events:
                problems.append(f"{job.name} answers requests: stage {stage_name!r} must not trigger it by an event")
            if modes.get(job.name, job.default_mode) == "lambda" and not stage.get("function_url_enabled"):
                problems.append(f"{job.name} runs on lambda: stage {stage_name!r} needs function_url_enabled")
            continue
        if modes.get(job.name, "lambda") != "lambda":
            # Run by a Celery worker (and beat): an AWS trigger as well would run it twice.
            if events:
                problems.append(
                    f"{job.name} runs in {modes[job.name]} mode, so stage {stage_name!r} must not trigger it"
                )
            continue
        if len(events) != 1:
            problems.append(
                f"{job.name}: expected one event for {job.handler} in stage {stage_name!r}, found {len(events)}"
            )
            continue
        source = events[0].get("event_source", {})
        arn = source.get("arn", "")
        region, account = stage.get("aws_region", ""), stage_account(stage)
        if isinstance(job.trigger, registry.ScheduleTrigger):
            if events[0].get("expression") != job.trigger.expression:
                problems.append(f"{job.name}: expression must be {job.trigger.expression!r}")
            if "-" in job.handler:
                # Zappa routes scheduled events by the function path at the end of the rule name.
                problems.append(f"{job.name}: a scheduled function path must not contain '-'")
        elif (polled := registry.polled(job)) is not None:
            expected = sqs_arn(region, account, queue_names.get(polled.setting, ""))
            if arn != expected:
                problems.append(f"{job.name}: the trigger must be the SQS queue {expected!r}, got {arn!r}")
        elif isinstance(job.trigger, registry.S3Trigger):
            if not arn.startswith("arn:aws:s3:::"):
                problems.append(f"{job.name}: the trigger must be an S3 bucket, got {arn!r}")
            if source.get("prefix") != job.trigger.notify_prefix:
                # Zappa reads only "prefix"/"suffix" (key_filters is silently ignored): a missing prefix would make
                # the function trigger on its own variants.
                problems.append(f"{job.name}: event_source.prefix must be {job.trigger.notify_prefix!r}")
            if sorted(source.get("events", [])) != sorted(job.trigger.events):
                problems.append(f"{job.name}: S3 events must be {list(job.trigger.events)}")
        if job.dead_letter:
            expected = sqs_arn(region, account, rename(job.dead_letter.name))
            if stage.get("dead_letter_arn") != expected:
                problems.append(f"{job.name}: stage {stage_name!r} dead_letter_arn must be {expected!r}")
        if stage.get("timeout_seconds", 30) < job.timeout:
            problems.append(f"{job.name}: stage {stage_name!r} timeout_seconds is below the job's {job.timeout}")
        if stage.get("memory_size", 512) < job.memory:
            problems.append(f"{job.name}: stage {stage_name!r} memory_size is below the job's {job.memory}")
    functions = zappa.get(registry.ZAPPA_STAGES["offload"], {})
    if functions.get("lambda_concurrency") != registry.reserved_concurrency("offload"):
        # The functions stage's reservation is the registry's (the web stage's is configure --concurrency's).
        problems.append(
            f"stage {registry.ZAPPA_STAGES['offload']!r} lambda_concurrency must be "
            f"{registry.reserved_concurrency('offload')} (RESERVED_CONCURRENCY in offload/registry.py)"
        )
    for name in dict.fromkeys(registry.ZAPPA_STAGES.values()):
        if name in zappa and zappa[name].get("callbacks", {}).get("zip") != build.ZIP_CALLBACK:
            # Else Zappa ships the whole project folder beside what the build put in (deploy/build.py SHIPPED).
            problems.append(
                f"stage {name!r}: callbacks.zip must be {build.ZIP_CALLBACK!r} (the zip holds the build only)"
            )
    problems += _check_shared_environment(zappa)
    if (modes := deployed_modes(zappa)) and (problem := registry.modes_problem(modes)):
        problems.append(f"OFFLOAD_MODES: {problem}")
    return problems


def deployed_modes(zappa: dict[str, Any]) -> dict[str, str]:
    """Each job's mode as the deployed stages set it (both carry the same OFFLOAD_MODES; the check below)."""
    for name in dict.fromkeys(registry.ZAPPA_STAGES.values()):
        raw = zappa.get(name, {}).get("environment_variables", {}).get("OFFLOAD_MODES")
        if raw:
            return registry.parse_modes(raw)
    return {}


# Settings both stages read: they must be equal in both, or the site and the functions disagree (a limit, a queue).
SHARED_ENVIRONMENT = (
    "BOARDSITE_BUCKET",
    registry.RESULTS.setting,
    "UPLOAD_MAX_BYTES",
    "MAX_IMAGE_PIXELS",
    "BOARDSITE_VARIANTS",
    "BOARDSITE_IMAGE_FORMATS",
    "OFFLOAD_MODES",
    "BOARDSITE_MAIL_FROM",
    "BOARDSITE_SITE_URL",  # only when known (a custom domain or --site-url)
)


def _check_shared_environment(zappa: dict[str, Any]) -> list[str]:
    stages = [zappa.get(name) for name in dict.fromkeys(registry.ZAPPA_STAGES.values())]
    envs = [s.get("environment_variables", {}) for s in stages if s is not None]
    if len(envs) < 2:
        return []
    return [
        f"stages disagree on {name}: {[env.get(name) for env in envs]}"
        for name in SHARED_ENVIRONMENT
        if len({env.get(name) for env in envs}) > 1
    ]


# Which registry field decides each generated setting of a stage (``generate.py``): a difference between a settings
# file and what configure writes from it is explained by these (the rest are the operator's flags).
_STAGE_FIELDS = {
    "events": "trigger and handler",
    "timeout_seconds": "timeout",
    "memory_size": "memory",
    "dead_letter_arn": "dead_letter",
}
_ENV_FIELDS = {"OFFLOAD_MODES": "name and default_mode"}


def explain_differences(settings: dict[str, Any], generated: dict[str, Any]) -> list[str]:
    """Each setting where ``settings`` differs from ``generated`` (what configure writes from it), with the registry
    field it comes from when one decides it; empty when they agree."""
    out = []
    for stage in sorted(set(settings) | set(generated)):
        mine, theirs = settings.get(stage, {}), generated.get(stage, {})
        jobs = [j for j in registry.JOBS.values() if registry.ZAPPA_STAGES[j.side] == stage]
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) == theirs.get(key):
                continue
            if key == "environment_variables":
                env, env2 = mine.get(key, {}), theirs.get(key, {})
                for name in sorted(n for n in set(env) | set(env2) if env.get(n) != env2.get(n)):
                    field = _ENV_FIELDS.get(name) or _env_field(name)
                    origin = f" (registry: each job's {field})" if field else ""
                    out.append(f"{stage}.environment_variables.{name}: {env.get(name)!r} != {env2.get(name)!r}{origin}")
                continue
            origin = ""
            if key in _STAGE_FIELDS:
                named = ", ".join(j.name for j in jobs) or "none"
                origin = f" (registry: the {_STAGE_FIELDS[key]} of the stage's jobs: {named})"
            if key == "events":
                changed = [j.name for j in jobs if _event_of(mine, j) != _event_of(theirs, j)]
                origin = f" (registry: the trigger or handler of {', '.join(changed) or 'a job'})"
            out.append(f"{stage}.{key} differs{origin}")
    return out


def _env_field(name: str) -> str | None:
    if name == registry.RESULTS.setting:
        return "reports (the results channel)"
    if any(name == t.arn_setting for t in registry.site_topics()):
        return "trigger.topic"
    return None


def _event_of(stage: dict[str, Any], job: registry.Job) -> Any:
    return [e for e in stage.get("events", []) if e.get("function") == job.handler]
