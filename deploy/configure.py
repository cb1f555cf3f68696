"""`python -m deploy configure`: write zappa_settings.json for an account and region from the registry.

    python -m deploy configure --account 111122223333 --region eu-west-1 --domain photos.example.com \
        --subnets subnet-1,subnet-2 --security-groups sg-1 --database-url postgres://boardsite@db.host:5432/boardsite

Without --account/--region it writes the placeholder file that is committed (000000000000 / REGION), which the
prebuild script refuses to package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deploy.config import (
    DEFAULT_SSM_PREFIX,
    PLACEHOLDER_ACCOUNT,
    PLACEHOLDER_DATABASE_URL,
    PLACEHOLDER_REGION,
    PROJECT,
    DeployConfig,
)
from deploy.generate import build_settings


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (raw or "").replace(" ", ",").split(",") if item.strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m deploy configure", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--account", default=PLACEHOLDER_ACCOUNT, help="the 12-digit AWS account id")
    p.add_argument("--region", default=PLACEHOLDER_REGION, help="e.g. eu-west-1")
    p.add_argument("--domain", help="the site's custom domain (added to ALLOWED_HOSTS)")
    p.add_argument("--subnets", help="private subnet ids for the web function (comma-separated)")
    p.add_argument("--security-groups", help="security group ids for the web function (comma-separated)")
    p.add_argument(
        "--name-prefix",
        default=PROJECT,
        help="first word of every resource name (functions, roles, queues, topics, buckets, the stack), e.g. "
        "boardsite-staging, so that two installations share an account (default boardsite: today's names)",
    )
    p.add_argument(
        "--vpc-endpoints",
        choices=["create", "existing"],
        default="create",
        help="with --subnets: the template makes the VPC endpoints (create), or another installation's stack made "
        "them in this VPC already (existing: admit this --security-groups on theirs, DEPLOY.md §2)",
    )
    p.add_argument(
        "--ssm-prefix",
        help=f"SSM Parameter Store path of the secrets (default {DEFAULT_SSM_PREFIX}, or /<name-prefix>/ with "
        "another --name-prefix)",
    )
    p.add_argument("--architecture", choices=["x86_64", "arm64"], default="x86_64")
    p.add_argument("--bucket", help="the media bucket (default boardsite-media-<account>-<region>)")
    p.add_argument("--deployments-bucket", help="Zappa's upload bucket (default boardsite-zappa-<account>-<region>)")
    p.add_argument("--database-url", default=PLACEHOLDER_DATABASE_URL, help="postgres://user@host:port/db, NO password")
    p.add_argument("--certificate-arn", help="ACM certificate of --domain, for `zappa certify web` (us-east-1)")
    p.add_argument(
        "--dns",
        choices=["route53", "external"],
        default="route53",
        help="who serves --domain's DNS: a Route 53 hosted zone of this account (`zappa certify` adds the record), or "
        "another provider (external: you add a CNAME, DEPLOY.md §7)",
    )
    p.add_argument("--concurrency", type=int, help="reserved concurrency of the web function (below the database's)")
    p.add_argument(
        "--mode",
        action="append",
        default=[],
        metavar="JOB=celery",
        help="run JOB on Celery workers instead of Lambda (repeatable; JOB=lambda moves it back)",
    )
    p.add_argument(
        "--broker-url", help="Celery's broker for jobs in celery mode, e.g. redis://host:6379/0 (no password)"
    )
    p.add_argument(
        "--mail-from", help="the From address of all mail (default boardsite@<domain>); SES verifies its domain"
    )
    p.add_argument(
        "--site-url",
        help="https address of the site for links in mail (default https://<domain>; without a domain, the API "
        "Gateway URL after the first deploy)",
    )
    cdn = p.add_argument_group(
        "CloudFront for photos (optional; DEPLOY.md: Serving photos through CloudFront)",
        "Photo variants are served by a CloudFront distribution of the media bucket, with signed cookies\n"
        "and URLs. Needs --domain; then write the template again and put the signing key in SSM.",
    )
    cdn.add_argument(
        "--cdn-domain",
        metavar="HOST",
        help="the distribution's hostname, under the cookie domain, e.g. media.photos.example.com (not --domain "
        "itself: that one is API Gateway's)",
    )
    cdn.add_argument(
        "--cdn-certificate-arn",
        metavar="ARN",
        help="ACM certificate covering --cdn-domain; must be in us-east-1 (CloudFront takes no other region) and in "
        "this account",
    )
    cdn.add_argument(
        "--cdn-cookie-domain",
        metavar="DOMAIN",
        help="Domain of the signed cookies (default: --domain); --domain or a parent of it, and --cdn-domain must "
        "be under it: the browser sends the cookies only to hosts under this domain",
    )
    p.add_argument("-o", "--output", default="zappa_settings.json", help="where to write ('-' for stdout)")
    return p


def config_from_args(args: argparse.Namespace) -> DeployConfig:
    return DeployConfig(
        account=args.account,
        region=args.region,
        domain=args.domain,
        subnets=_list(args.subnets),
        security_groups=_list(args.security_groups),
        vpc_endpoints=args.vpc_endpoints == "create",
        name_prefix=args.name_prefix,
        ssm_prefix=args.ssm_prefix or "",
        architecture=args.architecture,
        bucket=args.bucket,
        deployments_bucket=args.deployments_bucket,
        database_url=args.database_url,
        modes=_modes(args.mode),
        broker_url=args.broker_url,
        certificate_arn=args.certificate_arn,
        dns=args.dns,
        concurrency=args.concurrency,
        sender=args.mail_from,
        site_url=args.site_url,
        # Hostnames are case-insensitive; the settings keep them lower-case (cookie domains are compared as such).
        cdn_domain=args.cdn_domain.lower() if args.cdn_domain else None,
        cdn_certificate_arn=args.cdn_certificate_arn,
        cdn_cookie_domain=args.cdn_cookie_domain.lower() if args.cdn_cookie_domain else None,
    )


def _modes(items: list[str]) -> dict[str, str]:
    modes: dict[str, str] = {}
    for item in items:
        job, _, mode = item.partition("=")
        if job in modes and modes[job] != mode:
            raise ValueError(f"--mode names {job} twice ({modes[job]}, then {mode}): say one")
        modes[job] = mode
    return modes


def render(cfg: DeployConfig) -> str:
    return json.dumps(build_settings(cfg), indent=4) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser().error(str(exc))
    text = render(cfg)
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"wrote {args.output} for account {cfg.account}, region {cfg.region}")
    return 0
