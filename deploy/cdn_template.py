"""The CloudFront part of the template (``configure --cdn-domain``): a distribution in front of the media bucket's
variants, its key group (two public-key slots, for rotation) and origin access control; ``deploy/template.py``
adds it when the CDN is configured.
"""

from __future__ import annotations

from typing import Any

from deploy import resources as described
from deploy.config import DeployConfig
from offload.config import FORMAT_EXTENSIONS, VARIANTS_PREFIX

# How long an edge may keep a variant at most. The browser still keeps it a year (the object's own Cache-Control):
# this bounds how long a deleted photo can be served from an edge when the site cannot invalidate it (no
# BOARDSITE_CDN_DISTRIBUTION_ID, or a web function in a VPC without a route to CloudFront's API).
CDN_EDGE_MAX_SECONDS = 86400
# Two public-key slots, so that a key can be rotated without a moment in which signatures fail (CloudFront cannot
# change a public key in place: a slot is emptied, never overwritten). Parameter, resource and output of each.
CDN_KEY_SLOTS = (("CdnPublicKey", "CdnKey", "CdnKeyId"), ("CdnPublicKey2", "CdnKey2", "CdnKey2Id"))


def has_parameter(parameter: str) -> str:
    return f"Has{parameter}"


def cdn_parameters() -> dict[str, Any]:
    return {
        parameter: {
            "Type": "String",
            "Default": "",
            "Description": (
                "PEM of a public key the photo CDN trusts (openssl rsa -pubout); both slots hold one while rotating. "
                "Never change a non-empty value in place: CloudFront cannot update a key; empty it, then refill."
            ),
        }
        for parameter, _, _ in CDN_KEY_SLOTS
    }


def cdn_resources(cfg: DeployConfig) -> dict[str, Any]:
    """The distribution in front of the media bucket's variants, its key group and origin access control.

    Only requests signed (cookie or URL) with a key of the group are served; the bucket lets the distribution read
    ``variants/`` and nothing else (``cdn_bucket_statement``).
    """
    for rule in described.ENCRYPTION["Rules"]:
        default = rule["ApplyServerSideEncryptionByDefault"]
        if default["SSEAlgorithm"] != "AES256":
            # SSE-S3 needs nothing more. With a customer-managed KMS key, the key's policy would have to let
            # cloudfront.amazonaws.com decrypt (kms:Decrypt conditioned on the distribution): not generated here.
            raise NotImplementedError(
                f"the media bucket uses {default['SSEAlgorithm']}: CloudFront's origin access control would also need "
                "kms:Decrypt in the key's policy, which the template does not generate"
            )
    resources: dict[str, Any] = {}
    for n, (parameter, resource, _) in enumerate(CDN_KEY_SLOTS, start=1):
        resources[resource] = {
            "Type": "AWS::CloudFront::PublicKey",
            "Condition": has_parameter(parameter),
            "Properties": {
                "PublicKeyConfig": {
                    "Name": {"Fn::Sub": f"${{AWS::StackName}}-cdn-key-{n}"},
                    "CallerReference": {"Fn::Sub": f"${{AWS::StackName}}-cdn-key-{n}"},
                    "EncodedKey": {"Ref": parameter},
                    "Comment": "boardsite: signs the photo CDN's cookies and URLs (private key in SSM)",
                }
            },
        }
    resources["CdnKeyGroup"] = {
        "Type": "AWS::CloudFront::KeyGroup",
        "Properties": {
            "KeyGroupConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-cdn"},
                "Comment": "boardsite: keys whose signatures the photo CDN accepts",
                "Items": [
                    {"Fn::If": [has_parameter(parameter), {"Ref": resource}, {"Ref": "AWS::NoValue"}]}
                    for parameter, resource, _ in CDN_KEY_SLOTS
                ],
            }
        },
    }
    resources["CdnCachePolicy"] = {
        "Type": "AWS::CloudFront::CachePolicy",
        "Properties": {
            "CachePolicyConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-variants"},
                "Comment": "boardsite photos: nothing but the path in the key; an edge keeps a variant a day at most",
                "MinTTL": 0,
                "DefaultTTL": CDN_EDGE_MAX_SECONDS,
                "MaxTTL": CDN_EDGE_MAX_SECONDS,
                "ParametersInCacheKeyAndForwardedToOrigin": {
                    # The signed cookies and URL signatures are checked at the edge: never part of the key.
                    "CookiesConfig": {"CookieBehavior": "none"},
                    "HeadersConfig": {"HeaderBehavior": "none"},
                    "QueryStringsConfig": {"QueryStringBehavior": "none"},
                    "EnableAcceptEncodingGzip": False,  # WebP, JPEG and AVIF are compressed already
                    "EnableAcceptEncodingBrotli": False,
                },
            }
        },
    }
    resources["CdnOriginAccessControl"] = {
        "Type": "AWS::CloudFront::OriginAccessControl",
        "Properties": {
            "OriginAccessControlConfig": {
                "Name": {"Fn::Sub": "${AWS::StackName}-media"},
                "Description": "boardsite: the photo CDN reads the media bucket (SigV4, every request)",
                "OriginAccessControlOriginType": "s3",
                "SigningBehavior": "always",
                "SigningProtocol": "sigv4",
            }
        },
    }
    resources["CdnDistribution"] = {
        "Type": "AWS::CloudFront::Distribution",
        "Properties": {
            "DistributionConfig": {
                "Enabled": True,
                "Comment": f"boardsite photos ({cfg.cdn_domain})",
                "Aliases": [cfg.cdn_domain],
                "ViewerCertificate": {
                    "AcmCertificateArn": cfg.cdn_certificate_arn,
                    "SslSupportMethod": "sni-only",
                    "MinimumProtocolVersion": "TLSv1.2_2021",
                },
                "HttpVersion": "http2and3",
                "IPV6Enabled": True,
                "Origins": [
                    {
                        "Id": "media",
                        "DomainName": {"Fn::GetAtt": ["MediaBucket", "RegionalDomainName"]},
                        "OriginAccessControlId": {"Fn::GetAtt": ["CdnOriginAccessControl", "Id"]},
                        "S3OriginConfig": {"OriginAccessIdentity": ""},  # empty: the OAC signs, no legacy OAI
                    }
                ],
                "DefaultCacheBehavior": {
                    "TargetOriginId": "media",
                    "ViewerProtocolPolicy": "https-only",  # the cookies are Secure; pages link https only
                    "AllowedMethods": ["GET", "HEAD"],
                    "CachedMethods": ["GET", "HEAD"],
                    "CachePolicyId": {"Ref": "CdnCachePolicy"},
                    "TrustedKeyGroups": [{"Ref": "CdnKeyGroup"}],
                    "Compress": False,  # WebP and JPEG are compressed already
                },
            }
        },
    }
    return resources


def cdn_bucket_statement() -> dict[str, Any]:
    """The media bucket lets this distribution (and no other) read the variants' image files, and nothing else:
    originals and each image's result manifest (``result.json``, with its EXIF date and keys) stay private even to a
    request the distribution signs."""
    return {
        "Sid": "CdnReadsVariants",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": [
            {"Fn::Sub": f"${{MediaBucket.Arn}}/{VARIANTS_PREFIX}*.{extension}"}
            for extension in sorted(set(FORMAT_EXTENSIONS.values()))
        ],
        "Condition": {
            "StringEquals": {
                "AWS:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${CdnDistribution}"
                }
            }
        },
    }
