"""Both Zappa stages, generated from the registry and one ``DeployConfig``.

``python -m deploy configure --account ... --region ...`` writes ``zappa_settings.json`` from ``build_settings``.
Both stages take their shared settings (bucket, queues, limits, variants, formats, offload modes) from one dict, so
they cannot drift; the events, timeouts and memory come from ``offload/registry.py``.
"""

from __future__ import annotations

from typing import Any

from deploy import build, lint
from deploy.config import CDN_CERTIFICATE_KEY, VPC_ENDPOINTS_KEY, DeployConfig, jobs_of
from offload import registry

# What each stage's zip must not carry (Zappa's `exclude` matches base names at any depth): one list, kept with the
# build that decides what the stage ships (deploy/build.py).
EXCLUDE = build.EXCLUDE


def offload_modes(cfg: DeployConfig) -> str:
    # Deployed, a job runs as what the registry makes it (a Lambda function or a schedule) unless the operator moved
    # it to Celery workers (`configure --mode JOB=celery`).
    # (An HTTP job's default is the site's own view: its function URL needs the grant key and its address first.)
    return ",".join(f"{name}={cfg.modes.get(name, job.default_mode)}" for name, job in registry.JOBS.items())


def shared_environment(cfg: DeployConfig) -> dict[str, str]:
    """The one dict both stages read: a limit or a queue cannot differ between the site and the functions."""
    env = {
        "BOARDSITE_BUCKET": cfg.media_bucket,
        registry.RESULTS.setting: cfg.named(registry.RESULTS.name),  # every reporting job's channel
        "UPLOAD_MAX_BYTES": str(cfg.upload_max_bytes),
        "MAX_IMAGE_PIXELS": str(cfg.max_image_pixels),
        "BOARDSITE_VARIANTS": cfg.variants,
        "BOARDSITE_IMAGE_FORMATS": cfg.image_formats,
        "OFFLOAD_MODES": offload_modes(cfg),
        "BOARDSITE_MAIL_FROM": cfg.mail_from,
    }
    if cfg.public_url:
        env["BOARDSITE_SITE_URL"] = cfg.public_url
    optional = {"BOARDSITE_SITE_URL"}
    assert set(env) - optional == set(lint.SHARED_ENVIRONMENT) - optional, "keep lint.SHARED_ENVIRONMENT in step"
    return env


def events(cfg: DeployConfig, stage: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for job in jobs_of(stage, cfg):
        trigger, queue = job.trigger, registry.polled(job)
        if queue is not None:  # Lambda's poller: an SQS trigger, or S3 -> SQS (an S3 trigger via its queue)
            source = {"arn": cfg.sqs_arn(cfg.named(queue.name)), "batch_size": 10, "enabled": True}
            out.append({"function": job.handler, "event_source": source})
        elif isinstance(trigger, registry.S3Trigger):
            source = {
                "arn": f"arn:aws:s3:::{cfg.media_bucket}",
                "events": list(trigger.events),
                "prefix": trigger.notify_prefix,
            }
            out.append({"function": job.handler, "event_source": source})
        elif isinstance(trigger, registry.ScheduleTrigger):
            out.append({"function": job.handler, "expression": trigger.expression})
    return out


def _base(cfg: DeployConfig, stage: str) -> dict[str, Any]:
    jobs = jobs_of(stage)
    side = next(side for side, name in registry.ZAPPA_STAGES.items() if name == stage)
    base: dict[str, Any] = {
        "project_name": cfg.project_name(stage),
        "runtime": "python3.12",
        "architecture": cfg.architecture,
        "aws_region": cfg.region,
        "s3_bucket": cfg.zappa_bucket,
        # Zappa's defaults (debug, DEBUG logs of every raw event) are for trying things out.
        "debug": False,
        "log_level": "INFO",
        # The prebuild script installs wheels for the stage's architecture; Zappa's own are for x86_64 only.
        "use_precompiled_packages": False,
        "prebuild_script": f"deploy.prebuild.{stage}",
        # The zip holds the project by inclusion (deploy/build.py SHIPPED): this drops the rest of the folder.
        "callbacks": {"zip": build.ZIP_CALLBACK},
        # The template creates each stage's role with the policy deploy/iam.py generates; Zappa's own is s3:* on *.
        "manage_roles": False,
        "role_arn": cfg.role_arn(stage),
        "memory_size": registry.function_memory(side),
        "timeout_seconds": registry.function_timeout(side),
        "num_retained_versions": cfg.num_retained_versions,
        "events": events(cfg, stage),
    }
    answering = [
        j
        for j in jobs
        if isinstance(j.trigger, registry.HTTPTrigger) and cfg.modes.get(j.name, j.default_mode) == "lambda"
    ]
    if answering:
        # Requests reach the stage's function through its function URL (offload/entry.py hands them to the job at the
        # path); CORS is Lambda's, for the site's own origin, so no handler adds headers of its own.
        base["function_url_enabled"] = True
        base["function_url_config"] = {
            "authorizer": "NONE",
            "cors": {
                "allowedOrigins": [cfg.public_url.rstrip("/")] if cfg.public_url else ["*"],
                "allowedHeaders": ["content-type"],
                "allowedMethods": ["POST"],
                "allowCredentials": False,
                "exposedResponseHeaders": [],
                "maxAge": 600,
            },
        }
    dead_letters = {job.dead_letter for job in jobs if job.dead_letter}  # one at most per stage (the registry's check)
    if dead_letters:
        # S3 invokes asynchronously: an event still failing after Lambda's two retries lands on this queue.
        base["dead_letter_arn"] = cfg.sqs_arn(cfg.named(dead_letters.pop().name))
    return base


def web_stage(cfg: DeployConfig) -> dict[str, Any]:
    stage = _base(cfg, "web")
    env = shared_environment(cfg) | {
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": cfg.allowed_hosts(),
        "BOARDSITE_SSM_PREFIX": cfg.ssm_prefix,
        "DATABASE_URL": cfg.database_url,
        # The sweep redelivers a lost S3 event by invoking the functions stage's function (boardsite.core.jobs).
        "BOARDSITE_FUNCTIONS_FUNCTION": cfg.function_name("functions"),
        # The topics the site publishes to (jobs in lambda mode), each feeding a job's queue.
        **{topic.arn_setting: cfg.topic_arn(topic) for topic in registry.site_topics()},
        # Pages link static files by this path. API Gateway's own host serves the stage under /web; a custom domain
        # maps the stage at its root.
        "DJANGO_STATIC_URL": "/static/" if cfg.domain else "/web/static/",
    }
    if cfg.broker_url:
        env["CELERY_BROKER_URL"] = cfg.broker_url
    if cfg.cdn_domain:
        # Pages link variants through CloudFront; boardsite/images signs cookies for this domain with the key in SSM.
        env["BOARDSITE_CDN_URL"] = cfg.cdn_url
        env["BOARDSITE_CDN_COOKIE_DOMAIN"] = cfg.cdn_cookie_scope
    stage.update(
        django_settings="boardsite.settings",
        lambda_handler="boardsite.entry.lambda_handler",
        # SnapStart: Django is set up during the snapshot's init, restores skip it. The flag must be on the function
        # itself (aws_environment_variables): Zappa's handler reads it at import, before it applies the settings'
        # environment_variables.
        snap_start="PublishedVersions",
        aws_environment_variables={"INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT": "true"},
        # keep_warm pings the unqualified function ($LATEST), which SnapStart never serves: it would keep warm
        # instances nobody routes to and cost a schedule. Restores from the snapshot are the fast cold start instead.
        keep_warm=False,
        # Zappa's check after deploy/update (a GET of / that fails on a 5xx) would fail every first deploy: the home
        # page needs the tables `migrate` creates after it. `python -m deploy check web` checks once migrated.
        touch=False,
        exclude=list(EXCLUDE["web"]),
        environment_variables=env,
    )
    if cfg.subnets:
        stage["vpc_config"] = {"SubnetIds": list(cfg.subnets), "SecurityGroupIds": list(cfg.security_groups)}
    if not cfg.vpc_endpoints:
        stage[VPC_ENDPOINTS_KEY] = "existing"  # read back by `deploy template`; Zappa ignores it
    if cfg.domain and cfg.certificate_arn:
        stage.update(domain=cfg.domain, certificate_arn=cfg.certificate_arn)  # for `zappa certify web`
    if cfg.domain and cfg.dns == "external":
        # `zappa certify` would look for the domain's Route 53 hosted zone after creating the API's domain name, and
        # fail there: the CNAME is the operator's (DEPLOY.md §7).
        stage["route53_enabled"] = False
    if concurrency := cfg.concurrency or registry.reserved_concurrency("web"):
        stage["lambda_concurrency"] = concurrency  # a deployment's choice (the database's connections) comes first
    if cfg.cdn_certificate_arn:
        stage[CDN_CERTIFICATE_KEY] = cfg.cdn_certificate_arn  # read back by `deploy template`; Zappa ignores it
    return stage


def functions_stage(cfg: DeployConfig) -> dict[str, Any]:
    stage = _base(cfg, "functions")
    stage.update(
        # Events only: a WSGI stub satisfies Zappa, no API Gateway. No VPC (no database), no SnapStart (its cold
        # start is already small, and SnapStart for Python bills snapshot caching and restores).
        app_function="offload.wsgi.application",
        lambda_handler="offload.entry.lambda_handler",
        apigateway_enabled=False,
        keep_warm=False,
        exclude=list(EXCLUDE["functions"]),
        environment_variables=shared_environment(cfg),
    )
    if reserved := registry.reserved_concurrency("offload"):
        stage["lambda_concurrency"] = reserved  # Zappa's PutFunctionConcurrency; the local runner obeys it too
    if stage.get("function_url_enabled"):
        # The upload-ticket function reads the grant key from this one SecureString (offload/functions/upload_ticket).
        stage["environment_variables"]["BOARDSITE_SSM_PREFIX"] = cfg.ssm_prefix
    return stage


def build_settings(cfg: DeployConfig) -> dict[str, Any]:
    """The whole zappa_settings.json for ``cfg``."""
    return {"web": web_stage(cfg), "functions": functions_stage(cfg)}
