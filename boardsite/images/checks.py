"""System checks for the optional CloudFront delivery: a half-configured CDN fails at start-up, not on a page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from boardsite.images import cdn


@register()
def check_cdn(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    url = settings.BOARDSITE_CDN_URL
    if not url:
        return []
    parts = urlsplit(url)
    errors: list[CheckMessage] = []
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        errors.append(
            Error(
                f"BOARDSITE_CDN_URL is {url!r}",
                hint="the distribution's origin only, e.g. https://media.photos.example.com",
                id="boardsite.E008",
            )
        )
    elif not settings.DEBUG and parts.scheme != "https":
        errors.append(Error("BOARDSITE_CDN_URL must be https:// in production", id="boardsite.E009"))
    domain = settings.BOARDSITE_CDN_COOKIE_DOMAIN.lstrip(".")
    host = parts.hostname or ""
    if domain and host != domain and not host.endswith("." + domain):
        errors.append(
            Error(
                f"BOARDSITE_CDN_COOKIE_DOMAIN {domain!r} does not cover the CDN's host {host!r}: "
                "browsers would never send it the cookies",
                hint="use the site's domain, with the CDN on a name under it (media.photos.example.com)",
                id="boardsite.E010",
            )
        )
    if not settings.SECRETS_AFTER_RESTORE:  # else the key pair arrives after the SnapStart restore
        try:
            cdn.signer()
        except cdn.CdnNotConfigured as exc:
            errors.append(Error(str(exc), id="boardsite.E011"))
        if not settings.DEBUG and not cdn.distribution_id():
            errors.append(
                Warning(
                    "BOARDSITE_CDN_DISTRIBUTION_ID is not set: a deleted photo stays in CloudFront's edge caches "
                    "until their maximum TTL (a day)",
                    hint="put the stack's CdnDistributionId output in SSM (DEPLOY.md, 'Serving photos through "
                    "CloudFront')",
                    id="boardsite.W012",
                )
            )
    return errors
