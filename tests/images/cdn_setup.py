"""What the CloudFront tests share (tests/images/conftest.py has the fixtures): the key pair's id, the CDN's
address, and what a distribution on the local AWS was asked to invalidate."""

from __future__ import annotations

KEY_ID = "K2JCJMDEHXQW5F"
CDN = "https://media.photos.example.com"


def invalidated_paths(distribution: str) -> list[str]:
    from offload import aws

    cloudfront = aws.client("cloudfront")
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items", [])
    return sorted(
        path
        for item in listed
        for path in cloudfront.get_invalidation(DistributionId=distribution, Id=item["Id"])["Invalidation"][
            "InvalidationBatch"
        ]["Paths"]["Items"]
    )
