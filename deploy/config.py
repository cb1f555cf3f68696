"""What an operator chooses (``DeployConfig``) and its validation: the one input of a deployment.

``python -m deploy configure`` builds it from flags; ``deploy/generate.py`` turns it and the registry into
``zappa_settings.json``; ``deploy/parse.py`` reads it back from a settings file; ``deploy/lint.py`` checks a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from offload import registry
from offload.config import (
    DEFAULT_VARIANTS,
    MAIL_FROM_DEFAULT,
)

# The committed zappa_settings.json carries these; `python -m deploy configure` replaces them. An ARN built from
# them can never exist, and check_deployable refuses them before Zappa sees them.
PLACEHOLDER_ACCOUNT = "000000000000"
PLACEHOLDER_REGION = "REGION"
PLACEHOLDER_DATABASE_URL = "postgres://boardsite@DATABASE-HOST.invalid:5432/boardsite"

ACCOUNT_RE = re.compile(r"^\d{12}$")
CERTIFICATE_RE = re.compile(r"^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
ARCHITECTURES = ("x86_64", "arm64")
DNS_PROVIDERS = ("route53", "external")
MAIL_RE = re.compile(r"^[^@\s<>\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
SITE_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/[^\s]*)?$")
# A lower-case DNS name of two labels or more (CloudFront aliases, cookie domains): no scheme, port or path.
HOSTNAME_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
CDN_CERTIFICATE_REGION = "us-east-1"  # CloudFront takes ACM certificates from this region only
# The web stage's key for the CDN's certificate: Zappa ignores keys it does not know, so the ARN round-trips through
# zappa_settings.json (for `deploy template`) without reaching the function's environment, where the app would
# never read it. (Zappa's own `certificate_arn` is the API's custom domain.)
CDN_CERTIFICATE_KEY = "boardsite_cdn_certificate_arn"
# The web stage's key for `configure --vpc-endpoints existing` (another installation's stack made them in this VPC):
# read back by `deploy template`, ignored by Zappa, absent when the template makes them (the default).
VPC_ENDPOINTS_KEY = "boardsite_vpc_endpoints"
PROJECT = "boardsite"
STAGE_NAMES = ("web", "functions")
# `configure --name-prefix`: every name the two stages and the template give (functions, roles, queues, topics,
# buckets, the stack) starts with it, so staging and production can share an account. Lower case (bucket names),
# short enough for the longest name built from it (the media bucket: <prefix>-media-<account>-<region>, 63 at most).
NAME_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
NAME_PREFIX_MAX = 24
DEFAULT_SSM_PREFIX = "/boardsite/prod/"

# Names of the stages' Lambda functions: Zappa names a function "<project_name>-<stage>".
PROJECT_NAMES = {"web": PROJECT, "functions": f"{PROJECT}-functions"}


def prefixed(name: str, prefix: str) -> str:
    """A default resource name (``boardsite-image-results``) under another name prefix (``staging-image-results``)."""
    return prefix + name.removeprefix(PROJECT) if name.startswith(PROJECT + "-") else name


# Environment variables that must never be written into the zip (Zappa puts `environment_variables` in plain text
# into zappa_settings.py inside it): they live in SSM Parameter Store under BOARDSITE_SSM_PREFIX.
SECRET_NAMES = ("DJANGO_SECRET_KEY", "DATABASE_PASSWORD", "SECRET", "PASSWORD", "TOKEN", "PRIVATE_KEY")


@dataclass(frozen=True)
class DeployConfig:
    """What an operator chooses; everything else in the settings follows from it and the registry."""

    account: str = PLACEHOLDER_ACCOUNT
    region: str = PLACEHOLDER_REGION
    domain: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    # The template makes the VPC endpoints the function needs; False when another installation's stack made them in
    # the same VPC (one interface endpoint with private DNS per service and VPC: a second one is refused).
    vpc_endpoints: bool = True
    # Every resource name starts with it (`prefixed`); the default keeps the names a single installation had.
    name_prefix: str = PROJECT
    ssm_prefix: str = ""  # default: /boardsite/prod/ (the default prefix), else /<name_prefix>/
    architecture: str = "x86_64"
    bucket: str | None = None  # default: boardsite-media-<account>-<region> (bucket names are global)
    deployments_bucket: str | None = None  # Zappa's upload bucket; default boardsite-zappa-<account>-<region>
    database_url: str = PLACEHOLDER_DATABASE_URL  # postgres://user@host:port/name, never with a password
    upload_max_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    variants: str = DEFAULT_VARIANTS
    image_formats: str = "webp,jpeg"
    num_retained_versions: int = 5  # rollback room; Zappa needs >= 2 with SnapStart
    # Jobs moved from Lambda to Celery workers (`--mode JOB=celery`); the rest run as Lambda functions.
    modes: dict[str, str] = field(default_factory=dict)
    broker_url: str | None = None  # Celery's broker when a job runs in celery mode (no password: security groups)
    certificate_arn: str | None = None  # ACM certificate of the custom domain (us-east-1 for an edge API)
    # Who answers DNS for the domain: "route53" (a hosted zone in this account: `zappa certify` adds the record) or
    # "external" (the operator adds a CNAME: Zappa must not look for a hosted zone, or certify fails half-way).
    dns: str = "route53"
    concurrency: int | None = None  # the web function's reserved concurrency (keep it below the database's connections)
    sender: str | None = None  # the From address of all mail (default boardsite@<domain>); its domain is the identity
    site_url: str | None = None  # links in mail sent with no request at hand (default https://<domain>)
    # Optional CloudFront in front of the photo variants (DEPLOY.md "Serving photos through CloudFront"): its
    # hostname, its ACM certificate (us-east-1) and the domain of the signed cookies (default: domain). The browser
    # sends the cookies to the CDN only if its host is under the cookie domain, which is the site's domain or a parent.
    cdn_domain: str | None = None
    cdn_certificate_arn: str | None = None
    cdn_cookie_domain: str | None = None

    def __post_init__(self) -> None:
        if not (NAME_PREFIX_RE.match(self.name_prefix) and len(self.name_prefix) <= NAME_PREFIX_MAX):
            raise ValueError(
                f"--name-prefix: expected lower-case letters, digits and single hyphens, starting with a letter, "
                f"{NAME_PREFIX_MAX} characters at most (e.g. boardsite-staging), got {self.name_prefix!r}"
            )
        if not self.ssm_prefix:
            default = DEFAULT_SSM_PREFIX if self.name_prefix == PROJECT else f"/{self.name_prefix}/"
            object.__setattr__(self, "ssm_prefix", default)  # frozen: set once, here
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if not self.vpc_endpoints and not self.subnets:
            raise ValueError("--vpc-endpoints existing is about the web function's VPC: give --subnets too")
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("give both --subnets and --security-groups (the web function's VPC), or neither")
        if urlsplit(self.database_url).password:
            raise ValueError("DATABASE_URL must not carry a password: put it in SSM as <prefix>DATABASE_PASSWORD")
        placeholder = (self.account, self.region) == (PLACEHOLDER_ACCOUNT, PLACEHOLDER_REGION)
        if not placeholder and not (ACCOUNT_RE.match(self.account) and REGION_RE.match(self.region)):
            raise ValueError(
                f"expected a 12-digit account and a region like eu-west-1, got {self.account!r}, {self.region!r}"
            )
        if self.dns not in DNS_PROVIDERS:
            raise ValueError(f"--dns must be one of {', '.join(DNS_PROVIDERS)}, got {self.dns!r}")
        if self.dns != "route53" and not self.domain:
            raise ValueError("--dns is about the custom domain's records: give --domain too")
        if self.certificate_arn and not self.domain:
            raise ValueError("--certificate-arn is the custom domain's: give --domain too")
        if self.certificate_arn and not CERTIFICATE_RE.match(self.certificate_arn):
            raise ValueError(
                f"expected an ACM certificate ARN (arn:aws:acm:...:certificate/...), got {self.certificate_arn!r}"
            )
        if self.certificate_arn and self.certificate_arn.split(":")[3] != CDN_CERTIFICATE_REGION:
            raise ValueError(
                f"--certificate-arn must be a certificate in {CDN_CERTIFICATE_REGION}: Zappa's API is edge-optimised, "
                f"and API Gateway takes an edge domain's certificate from there only (DEPLOY.md §0)"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.concurrency is not None and self.concurrency <= (polled := sqs_concurrency("web")):
            raise ValueError(
                f"--concurrency {self.concurrency} leaves no room for pages: the web stage's queues may run {polled} "
                f"invocations at once (their max_concurrency in offload/registry.py); give more than {polled}"
            )
        for job, mode in self.modes.items():
            http = job in registry.JOBS and isinstance(registry.JOBS[job].trigger, registry.HTTPTrigger)
            if job not in registry.JOBS or mode not in (("inline", "lambda") if http else ("lambda", "celery")):
                raise ValueError(
                    f"--mode: expected JOB=lambda|celery with a job of {', '.join(registry.JOBS)} "
                    "(a job answering requests: JOB=inline|lambda)"
                )
        if "celery" in self.modes.values() and not self.broker_url:
            raise ValueError("a job in celery mode needs --broker-url (the Celery workers' broker)")
        if problem := registry.modes_problem(self.modes):
            raise ValueError(f"--mode: {problem}")
        if urlsplit(self.database_url).scheme not in ("postgres", "postgresql", "postgis"):
            raise ValueError(f"--database-url: expected postgres://user@host:port/name, got {self.database_url!r}")
        if self.domain is not None and not HOSTNAME_RE.match(self.domain.lower()):
            raise ValueError(f"--domain: expected a hostname like photos.example.com, got {self.domain!r}")
        if "celery" in self.modes.values() and not self.subnets:
            raise ValueError("a job in celery mode needs the web function in the broker's VPC: give --subnets")
        if self.broker_url and urlsplit(self.broker_url).password:
            raise ValueError("the broker URL must not carry a password (restrict the broker by security group)")
        if self.sender is not None and not MAIL_RE.match(self.sender):
            raise ValueError(f"--mail-from: expected an address like boardsite@photos.example.com, got {self.sender!r}")
        if self.site_url is not None and not SITE_URL_RE.match(self.site_url):
            raise ValueError(
                f"--site-url: expected https://host[/path] (mail links must be HTTPS), got {self.site_url!r}"
            )
        if not (self.ssm_prefix.startswith("/") and self.ssm_prefix.endswith("/")):
            raise ValueError(f"the SSM prefix must start and end with '/', got {self.ssm_prefix!r}")
        self._check_cdn()

    def _check_cdn(self) -> None:
        if not self.cdn_domain:
            for name, value in (
                ("--cdn-certificate-arn", self.cdn_certificate_arn),
                ("--cdn-cookie-domain", self.cdn_cookie_domain),
            ):
                if value:
                    raise ValueError(f"{name} belongs to the CloudFront mode: give --cdn-domain too")
            return
        if not HOSTNAME_RE.match(self.cdn_domain):
            raise ValueError(
                f"--cdn-domain: expected a lower-case hostname like media.photos.example.com, got {self.cdn_domain!r}"
            )
        if not self.domain:
            raise ValueError(
                "--cdn-domain needs --domain: the signed cookies are set by the site for a domain that covers both"
            )
        if self.cdn_domain == self.domain.lower():
            raise ValueError(
                f"--cdn-domain must differ from --domain ({self.domain} is the site's, served by API Gateway): "
                f"use a name under it, e.g. media.{self.domain}"
            )
        if not self.cdn_certificate_arn:
            raise ValueError(
                f"--cdn-domain needs --cdn-certificate-arn: an ACM certificate for {self.cdn_domain} in "
                f"{CDN_CERTIFICATE_REGION} (CloudFront takes certificates from that region only)"
            )
        if not CERTIFICATE_RE.match(self.cdn_certificate_arn):
            raise ValueError(
                f"--cdn-certificate-arn: expected an ACM certificate ARN (arn:aws:acm:{CDN_CERTIFICATE_REGION}:...:"
                f"certificate/...), got {self.cdn_certificate_arn!r}"
            )
        _, _, _, cert_region, cert_account, _ = self.cdn_certificate_arn.split(":", 5)
        if cert_region != CDN_CERTIFICATE_REGION:
            raise ValueError(
                f"--cdn-certificate-arn must be a certificate in {CDN_CERTIFICATE_REGION} (CloudFront takes no other "
                f"region), got one in {cert_region}: request or import it in {CDN_CERTIFICATE_REGION}"
            )
        if self.account != PLACEHOLDER_ACCOUNT and cert_account != self.account:
            raise ValueError(
                f"--cdn-certificate-arn is in account {cert_account}: CloudFront needs it in the distribution's "
                f"account {self.account}"
            )
        cookie = self.cdn_cookie_scope
        if self.cdn_cookie_domain is not None and not HOSTNAME_RE.match(self.cdn_cookie_domain):
            raise ValueError(
                "--cdn-cookie-domain: expected a lower-case domain like photos.example.com, "
                f"got {self.cdn_cookie_domain!r}"
            )
        site = self.domain.lower()
        if not (site == cookie or site.endswith("." + cookie)):
            raise ValueError(
                f"--cdn-cookie-domain {cookie!r} must be the site's domain {site!r} or a parent of it: the site sets "
                "the cookies, and a browser refuses a cookie for a domain that does not cover the site"
            )
        if not self.cdn_domain.endswith("." + cookie):
            raise ValueError(
                f"--cdn-domain {self.cdn_domain!r} must be under the cookie domain {cookie!r} (e.g. media.{cookie}): "
                "otherwise the browser never sends the signed cookies to the CDN"
            )

    @property
    def cdn_cookie_scope(self) -> str | None:
        """The Domain of the CloudFront cookies: --cdn-cookie-domain, else the site's domain (None without a CDN)."""
        if not self.cdn_domain:
            return None
        return self.cdn_cookie_domain or (self.domain or "").lower()

    @property
    def cdn_url(self) -> str | None:
        return f"https://{self.cdn_domain}" if self.cdn_domain else None

    @property
    def media_bucket(self) -> str:
        return self.bucket or f"{self.name_prefix}-media-{self.account}-{self.region}".lower()

    @property
    def zappa_bucket(self) -> str:
        return self.deployments_bucket or f"{self.name_prefix}-zappa-{self.account}-{self.region}".lower()

    def named(self, default: str) -> str:
        """A default name (``boardsite-mail``) under this configuration's prefix."""
        return prefixed(default, self.name_prefix)

    @property
    def queue_names(self) -> dict[str, str]:
        """Every queue's name by the setting that names it (the registry's defaults under the prefix)."""
        return {setting: self.named(queue.name) for setting, queue in registry.queues().items()}

    def queue(self, setting: str) -> str:
        return self.queue_names[setting]

    def topic_name(self, topic: registry.Topic) -> str:
        return self.named(topic.name)

    def topic_arn(self, topic: registry.Topic) -> str:
        return f"arn:aws:sns:{self.region}:{self.account}:{self.topic_name(topic)}"

    def project_name(self, stage: str) -> str:
        return self.name_prefix + PROJECT_NAMES[stage].removeprefix(PROJECT)

    def function_name(self, stage: str) -> str:
        return f"{self.project_name(stage)}-{stage}"

    def function_arn(self, stage: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name(stage)}"

    def role_name(self, stage: str) -> str:
        return f"{self.name_prefix}-{stage}-lambda"

    def role_arn(self, stage: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role_name(stage)}"

    def sqs_arn(self, queue: str) -> str:
        return sqs_arn(self.region, self.account, queue)

    @property
    def mail_from(self) -> str:
        """The sender: ``--mail-from``, else an address at the site's domain. Its domain is the SES identity."""
        if self.sender:
            return self.sender
        return f"boardsite@{self.domain}" if self.domain else MAIL_FROM_DEFAULT

    @property
    def public_url(self) -> str | None:
        """The site's public address for links in mail (``--site-url``, else the custom domain); None when neither
        is known yet (API Gateway's own host exists only after the first deploy: DEPLOY.md)."""
        if self.site_url:
            return self.site_url.rstrip("/")
        return f"https://{self.domain}" if self.domain else None

    @property
    def mail_identity(self) -> str:
        return self.mail_from.rpartition("@")[2]

    def ses_identity_arns(self) -> list[str]:
        # SES authorises SendRawEmail against the identity that covers the sender: the domain (or the address).
        base = f"arn:aws:ses:{self.region}:{self.account}:identity/"
        return [base + self.mail_identity, base + self.mail_from]

    def allowed_hosts(self) -> str:
        # API Gateway's own host (any API id in this region) and the custom domain.
        hosts = [f".execute-api.{self.region}.amazonaws.com"]
        if self.domain:
            hosts.append(self.domain)
        return ",".join(hosts)


def sqs_concurrency(stage: str) -> int:
    """How many invocations the stage's SQS mappings may run at once (``wire`` sets each job's bound)."""
    return sum(registry.max_concurrency(j) or 0 for j in jobs_of(stage))


def jobs_of(stage: str, cfg: DeployConfig | None = None) -> list[registry.Job]:
    """The stage's jobs; with ``cfg``, only those it triggers (not moved to Celery)."""
    return [
        job
        for job in registry.JOBS.values()
        if registry.ZAPPA_STAGES[job.side] == stage
        and (cfg is None or cfg.modes.get(job.name, job.default_mode) == "lambda")
    ]


def sqs_arn(region: str, account: str, queue: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{queue}"


def stage_account(stage: dict[str, Any]) -> str:
    """The account a stage deploys to, read from its execution role's ARN (``arn:aws:iam::<account>:role/...``)."""
    parts = str(stage.get("role_arn", "")).split(":")
    return parts[4] if len(parts) > 5 and parts[:3] == ["arn", "aws", "iam"] else ""
