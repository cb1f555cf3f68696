"""Fixtures of the CloudFront mode, shared by the CDN's tests and the deletes that invalidate it."""

from __future__ import annotations

import pytest

from boardsite.images import cdn
from devstack import cdn as localcdn
from tests.images.cdn_setup import CDN, KEY_ID


@pytest.fixture(scope="module")
def key_pair():
    private, pem, _ = localcdn.new_key_pair()
    return private, pem


@pytest.fixture
def cdn_on(settings, monkeypatch, key_pair):
    settings.BOARDSITE_CDN_URL = CDN
    settings.BOARDSITE_CDN_COOKIE_DOMAIN = "photos.example.com"
    monkeypatch.setenv("BOARDSITE_CDN_KEY_ID", KEY_ID)
    monkeypatch.setenv("BOARDSITE_CDN_PRIVATE_KEY", key_pair[1])
    cdn._signer.cache_clear()
    yield settings
    cdn._signer.cache_clear()


@pytest.fixture
def distribution_id(cdn_on, local_aws, monkeypatch):
    """A distribution on the local AWS (moto's CloudFront API: it records invalidations, it serves nothing)."""
    from offload import aws

    cloudfront = aws.client("cloudfront")
    made = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "boardsite-test",
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "media", "DomainName": "media.s3.amazonaws.com"}]},
            "DefaultCacheBehavior": {"TargetOriginId": "media", "ViewerProtocolPolicy": "https-only"},
        }
    )
    monkeypatch.setenv("BOARDSITE_CDN_DISTRIBUTION_ID", made["Distribution"]["Id"])
    return made["Distribution"]["Id"]
