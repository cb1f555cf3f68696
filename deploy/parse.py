"""A settings file read back into the ``DeployConfig`` it was written from: the template, the policies and `move`
read the file operators use."""

from __future__ import annotations

from typing import Any

from deploy.config import (
    CDN_CERTIFICATE_KEY,
    PLACEHOLDER_DATABASE_URL,
    PROJECT,
    VPC_ENDPOINTS_KEY,
    DeployConfig,
    stage_account,
)
from offload import registry


def config_from_settings(settings: dict[str, Any]) -> DeployConfig:
    """The DeployConfig a settings file was written from (the template and policies read the file operators use)."""
    missing = [name for name in ("web", "functions") if not isinstance(settings.get(name), dict)]
    if missing:
        raise SystemExit(
            f"the settings have no {' or '.join(missing)} stage: write them with `python -m deploy configure`"
        )
    web, functions = settings["web"], settings["functions"]
    env = web.get("environment_variables", {})
    hosts = [h for h in env.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h and not h.startswith(".execute-api.")]
    vpc = web.get("vpc_config") or {}
    return DeployConfig(
        account=stage_account(web),
        region=web["aws_region"],
        domain=hosts[0] if hosts else None,
        subnets=tuple(vpc.get("SubnetIds", ())),
        security_groups=tuple(vpc.get("SecurityGroupIds", ())),
        vpc_endpoints=web.get(VPC_ENDPOINTS_KEY) != "existing",
        name_prefix=web.get("project_name", PROJECT),
        ssm_prefix=env.get("BOARDSITE_SSM_PREFIX", ""),
        architecture=web.get("architecture", "x86_64"),
        bucket=env["BOARDSITE_BUCKET"],
        deployments_bucket=web.get("s3_bucket"),
        database_url=env.get("DATABASE_URL", PLACEHOLDER_DATABASE_URL),
        upload_max_bytes=int(env["UPLOAD_MAX_BYTES"]),
        max_image_pixels=int(env["MAX_IMAGE_PIXELS"]),
        variants=env["BOARDSITE_VARIANTS"],
        image_formats=env["BOARDSITE_IMAGE_FORMATS"],
        num_retained_versions=functions.get("num_retained_versions", 5),
        modes={
            job: mode
            for job, mode in registry.parse_modes(env.get("OFFLOAD_MODES", "")).items()
            if mode != (registry.JOBS[job].default_mode if job in registry.JOBS else "lambda")
        },
        broker_url=env.get("CELERY_BROKER_URL"),
        certificate_arn=web.get("certificate_arn"),
        dns="external" if web.get("route53_enabled") is False else "route53",
        concurrency=web.get("lambda_concurrency"),
        sender=env.get("BOARDSITE_MAIL_FROM"),
        site_url=env.get("BOARDSITE_SITE_URL"),
        cdn_domain=env["BOARDSITE_CDN_URL"].removeprefix("https://") if "BOARDSITE_CDN_URL" in env else None,
        cdn_certificate_arn=web.get(CDN_CERTIFICATE_KEY),
        cdn_cookie_domain=env.get("BOARDSITE_CDN_COOKIE_DOMAIN"),
    )
