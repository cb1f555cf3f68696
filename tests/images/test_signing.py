"""The fast presigner (boardsite/images/signing.py, issue 10): byte-identical to botocore's generate_presigned_url for
the same inputs, the same URL within a window, never an expired URL, never past the credentials' expiry.

botocore's clock is pinned (``botocore.auth.get_current_datetime``) so that both sign at the same instant: the only
stand-in here; the signatures are real and a URL is fetched from the real local S3."""

from __future__ import annotations

import datetime as dt
import random
import urllib.request

import boto3
import botocore.auth
import pytest
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from boardsite.images.signing import UrlSigner

T0 = 1_795_000_200  # a multiple of the 300 s window
WINDOW, LIFETIME = 300, 900
ALPHABET = "abcXYZ019-_.!*'() /+=&?#%~éüß中文😀\u00a0"


def pin_botocore(monkeypatch, at: float) -> None:
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: dt.datetime.fromtimestamp(at, dt.UTC).replace(tzinfo=None)
    )


def client(endpoint: str | None, token: str | None = None, region: str = "eu-west-1"):
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJal/rXUtn+FEMI=",
        aws_session_token=token,
        region_name=region,
    )
    return session.client("s3", endpoint_url=endpoint, config=Config(signature_version="s3v4"))


def random_keys(n: int, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    keys = ["variants/12/3f2a/thumb.webp", "a//b", "x?y#z&=%"]
    keys += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))) + "/v.jpg" for _ in range(n)]
    return keys


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:5000", "https://s3.eu-west-1.amazonaws.com"])
@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzE/session+token=="])
@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_urls_are_byte_identical_to_botocores(monkeypatch, endpoint, token, region):
    s3 = client(endpoint, token, region)
    signer = UrlSigner(s3, "my-bucket", lifetime=LIFETIME, window=WINDOW, clock=lambda: T0 + 123)
    pin_botocore(monkeypatch, T0)
    for key in random_keys(150):
        expected = s3.generate_presigned_url("get_object", Params={"Bucket": "my-bucket", "Key": key}, ExpiresIn=900)
        assert signer.url(key) == expected, key


def test_refreshable_credentials_are_used_and_bound_the_url(monkeypatch):
    s3 = client(None)
    expiry = dt.datetime.fromtimestamp(T0 + 400, dt.UTC)
    creds = RefreshableCredentials.create_from_metadata(
        metadata={
            "access_key": "ASIAROLE",
            "secret_key": "role-secret",
            "token": "role-token",
            "expiry_time": expiry.isoformat(),
        },
        refresh_using=lambda: pytest.fail("not near expiry: no refresh expected"),
        method="assume-role",
    )
    monkeypatch.setattr(s3._request_signer, "_credentials", creds)
    monkeypatch.setattr(RefreshableCredentials, "refresh_needed", lambda self, refresh_in=None: False)
    signer = UrlSigner(s3, "my-bucket", lifetime=LIFETIME, window=WINDOW, clock=lambda: T0 + 10)
    url = signer.url("k.jpg")
    assert "X-Amz-Credential=ASIAROLE" in url
    assert "X-Amz-Security-Token=role-token" in url
    assert "X-Amz-Expires=400&" in url  # ends with the credentials, not 900 s after the window's start
    pin_botocore(monkeypatch, T0)
    botocores = s3.generate_presigned_url("get_object", Params={"Bucket": "my-bucket", "Key": "k.jpg"}, ExpiresIn=400)
    assert url == botocores


def test_the_same_url_within_a_window_and_another_after_it():
    now = [T0 + 1.0]
    signer = UrlSigner(client(None), "b", lifetime=LIFETIME, window=WINDOW, clock=lambda: now[0])
    first = signer.url("variants/1/2/thumb.webp")
    now[0] = T0 + WINDOW - 0.5
    assert signer.url("variants/1/2/thumb.webp") == first
    assert signer.url("variants/1/2/medium.webp") != first
    now[0] = T0 + WINDOW
    assert signer.url("variants/1/2/thumb.webp") != first


@pytest.mark.parametrize("offset", [0, 1, WINDOW / 2, WINDOW - 0.001])
def test_a_url_handed_out_at_any_moment_of_its_window_is_valid_for_lifetime_minus_window(offset):
    signer = UrlSigner(client(None), "b", lifetime=LIFETIME, window=WINDOW)
    now = T0 + offset
    start, expires = signer.timing(now)
    assert start <= now < start + expires
    assert start + expires - now >= LIFETIME - WINDOW
    assert start + expires - now <= LIFETIME  # never longer than the configured lifetime from signing


def test_credentials_about_to_expire_never_give_an_expired_url():
    signer = UrlSigner(client(None), "b", lifetime=LIFETIME, window=WINDOW)
    start, expires = signer.timing(T0 + 250, credentials_expiry=T0 + 100)  # already past: refresh is botocore's
    assert start + expires > T0 + 250
    start, expires = signer.timing(T0 + 50, credentials_expiry=T0 + 100)
    assert start + expires == T0 + 100


def test_a_window_too_long_for_the_lifetime_is_refused():
    with pytest.raises(ValueError, match="window"):
        UrlSigner(client(None), "b", lifetime=600, window=400)


def test_the_local_s3_serves_a_signed_url(s3, settings):
    s3.put_object(
        Bucket=settings.BOARDSITE_BUCKET, Key="variants/9/é ü/t.webp", Body=b"hello", ContentType="image/webp"
    )
    signer = UrlSigner(s3, settings.BOARDSITE_BUCKET, lifetime=LIFETIME, window=WINDOW)
    with urllib.request.urlopen(signer.url("variants/9/é ü/t.webp"), timeout=10) as reply:
        assert reply.read() == b"hello"
    # (moto does not check signatures: that a changed URL is refused is AWS's side, not testable here.)


def test_the_site_hands_out_the_same_image_url_on_two_renders(local_aws, settings):
    from boardsite.images.selectors import presigned_get

    first = presigned_get("variants/1/abc/thumb.webp")
    assert presigned_get("variants/1/abc/thumb.webp") == first
    assert f"X-Amz-Expires={settings.IMAGE_URL_SECONDS}&" in first
