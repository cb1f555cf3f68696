"""The optional CloudFront mode (issue 10): plain variant URLs, signed cookies per board from the responses that show
it, signed URLs for the rest, all made with botocore's CloudFrontSigner; the start-up checks; and, through a stand-in
for the distribution (offload/localcdn.py: CloudFront cannot run here), that what the site hands out opens exactly
the board's photos, for as long as it should."""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from boardsite.boards.services import board_create
from boardsite.images import cdn, selectors
from boardsite.images.models import Image
from devstack import cdn as localcdn
from tests.factories import add_images, add_thumb
from tests.images.cdn_setup import CDN, KEY_ID, invalidated_paths

pytestmark = pytest.mark.django_db


def b64decode(value: str) -> bytes:
    return localcdn._b64decode(value)


def verifies(key_pair, signature: str, message: bytes) -> bool:
    try:
        key_pair[0].public_key().verify(b64decode(signature), message, padding.PKCS1v15(), hashes.SHA1())
    except Exception:
        return False
    return True


def make_signer(key_pair, clock) -> cdn.CdnSigner:
    return cdn.CdnSigner(CDN, KEY_ID, key_pair[1], lifetime=900, window=300, clock=clock)


def ready_images(board, user, n: int = 2) -> list[Image]:
    images = add_images(board, user, n)
    for image in images:
        image.original_key = f"originals/{board.pk}/{image.pk}.jpg"  # the layout deletes derive the variants from
        image.save(update_fields=["original_key"])
        add_thumb(image)
    return images


# --- the signatures -------------------------------------------------------------------------------------------------


def test_board_cookies_are_botocores_custom_policy_signature_on_the_boards_prefix(key_pair):
    now = 1_800_000_123.0
    signer = make_signer(key_pair, lambda: now)
    cookies, expires = signer.board_cookies(42)
    assert expires == 1_800_000_000 + 900  # the window's start (300 s) plus the lifetime
    policy = b64decode(cookies["CloudFront-Policy"])
    assert json.loads(policy) == {
        "Statement": [{"Resource": f"{CDN}/variants/42/*", "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]
    }
    assert cookies["CloudFront-Key-Pair-Id"] == KEY_ID
    assert verifies(key_pair, cookies["CloudFront-Signature"], policy)
    assert not verifies(key_pair, cookies["CloudFront-Signature"], policy.replace(b"/42/", b"/43/"))
    # The very values botocore puts in a custom-policy signed URL (CloudFront reads the cookies of the same names).
    reference = CloudFrontSigner(KEY_ID, cdn._rsa_signer(key_pair[1])).generate_presigned_url(
        "https://x/", policy=policy.decode()
    )
    query = dict(parse_qsl(urlsplit(reference).query))
    assert (query["Policy"], query["Signature"]) == (cookies["CloudFront-Policy"], cookies["CloudFront-Signature"])


def test_signed_urls_are_botocores_canned_policy_urls_and_repeat_within_the_window(key_pair):
    clock = [1_800_000_010.0]
    signer = make_signer(key_pair, lambda: clock[0])
    key = "variants/7/0b5e/thumb.webp"
    url = signer.signed_url(key)
    expected = CloudFrontSigner(KEY_ID, cdn._rsa_signer(key_pair[1])).generate_presigned_url(
        f"{CDN}/{key}", date_less_than=dt.datetime.fromtimestamp(1_800_000_000 + 900, dt.UTC)
    )
    assert url == expected
    clock[0] += 280
    assert signer.signed_url(key) == url  # same window: the browser's cached copy still matches
    clock[0] += 30
    later = signer.signed_url(key)
    assert later != url
    assert "Expires=1800001200" in later
    assert signer.object_url(key) == f"{CDN}/{key}"


@pytest.mark.parametrize("offset", [0, 1, 150, 299])
def test_what_is_handed_out_lives_at_least_the_lifetime_minus_the_window(key_pair, offset):
    now = 1_800_000_000.0 + offset
    signer = make_signer(key_pair, lambda: now)
    _, expires = signer.board_cookies(1)
    assert 900 - 300 < expires - now <= 900


def test_one_rsa_signature_per_board_and_window(key_pair, monkeypatch):
    calls = []
    real = cdn._rsa_signer

    def counting(pem):
        sign = real(pem)
        return lambda message: calls.append(message) or sign(message)

    monkeypatch.setattr(cdn, "_rsa_signer", counting)
    signer = make_signer(key_pair, lambda: 1_800_000_000.0)
    for _ in range(5):
        signer.board_cookies(1)
        signer.signed_url("variants/1/a/thumb.webp")
    signer.board_cookies(2)
    assert len(calls) == 3


def test_a_key_that_is_not_rsa_or_not_a_key_is_refused_clearly(cdn_on, monkeypatch):
    monkeypatch.setenv("BOARDSITE_CDN_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----")
    with pytest.raises(cdn.CdnNotConfigured, match="could not be read"):
        cdn.signer()


def test_a_key_pasted_on_one_line_works(cdn_on, monkeypatch, key_pair):
    monkeypatch.setenv("BOARDSITE_CDN_PRIVATE_KEY", key_pair[1].strip().replace("\n", "\\n"))
    assert cdn.signer().board_cookies(1)[0]["CloudFront-Key-Pair-Id"] == KEY_ID


def test_board_of_reads_only_variant_keys():
    assert cdn.board_of("variants/12/abc/thumb.webp") == 12
    assert cdn.board_of("originals/12/abc.jpg") is None
    assert cdn.board_of("variants/x/abc/thumb.webp") is None


# --- what the site hands out --------------------------------------------------------------------------------------


def cloudfront(response) -> dict:
    return {name: m for name, m in response.cookies.items() if name.startswith("CloudFront-")}


def test_a_board_page_sets_the_boards_cookies_and_links_plain_urls(cdn_on, client, board, people):
    ready_images(board, people["owner"])
    client.force_login(people["viewer"])
    response = client.get(f"/boards/{board.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{CDN}/variants/{board.pk}/" in html
    assert "Signature=" not in html
    assert "X-Amz-" not in html
    assert set(cloudfront(response)) == set(cdn.COOKIE_NAMES)
    for morsel in cloudfront(response).values():
        assert morsel["path"] == f"/variants/{board.pk}/"
        assert morsel["domain"] == "photos.example.com"
        assert morsel["secure"]
        assert morsel["httponly"]
        assert morsel["samesite"] == "Lax"
        assert 600 < int(morsel["max-age"]) <= 900
    policy = json.loads(b64decode(response.cookies["CloudFront-Policy"].value))
    assert policy["Statement"][0]["Resource"] == f"{CDN}/variants/{board.pk}/*"
    assert "no-store" in response["Cache-Control"]  # a signed-in page stays out of every cache
    assert CDN in response["Content-Security-Policy"].split("img-src", 1)[1].split(";", 1)[0]


def test_strangers_get_no_cookies_for_a_private_board(cdn_on, client, board, people):
    ready_images(board, people["owner"])
    client.force_login(people["stranger"])
    for path in (f"/boards/{board.pk}/", f"/boards/{board.pk}/tiles"):
        response = client.get(path)
        assert response.status_code == 404
        assert not cloudfront(response)
    image = Image.objects.filter(board=board).first()
    for path in (f"/images/{image.pk}/", f"/api/images/{image.pk}", f"/api/images?ids={image.pk}"):
        response = client.get(path)
        assert not cloudfront(response), path
        assert CDN not in response.content.decode()


def test_anyone_viewing_a_public_board_gets_its_cookies(cdn_on, client, people):
    public = board_create(user=people["owner"], title="Open", visibility="public")
    ready_images(public, people["owner"])
    response = client.get(f"/boards/{public.pk}/")  # signed out
    assert response.status_code == 200
    assert response.cookies["CloudFront-Policy"]["path"] == f"/variants/{public.pk}/"
    assert response["Cache-Control"] == "private"  # the cookies are this visitor's: no shared cache keeps them


def test_the_tiles_the_image_page_and_the_status_api_grant_the_board(cdn_on, client, board, people):
    images = ready_images(board, people["owner"], 3)
    client.force_login(people["contributor"])
    for path in (
        f"/boards/{board.pk}/tiles",
        f"/images/{images[0].pk}/",
        f"/api/images/{images[0].pk}",
        f"/api/images?ids={images[0].pk},{images[1].pk}",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.cookies["CloudFront-Signature"]["path"] == f"/variants/{board.pk}/", path
    payload = client.get(f"/api/images/{images[0].pk}").json()
    assert payload["variants"]["thumb"]["url"] == f"{CDN}/variants/{board.pk}/{images[0].pk}/thumb.webp"


def test_home_covers_are_signed_urls_and_set_no_cookies(cdn_on, client, board, people):
    ready_images(board, people["owner"], 1)
    client.force_login(people["owner"])
    response = client.get("/")
    assert not cloudfront(response)
    html = response.content.decode()
    assert f"{CDN}/variants/{board.pk}/" in html
    assert "Key-Pair-Id=K2JCJMDEHXQW5F" in html


def test_a_status_request_across_boards_grants_one_and_signs_the_others(cdn_on, client, people):
    boards = [board_create(user=people["owner"], title=f"B{i}", visibility="private") for i in range(3)]
    images = [ready_images(b, people["owner"], 1)[0] for b in boards]
    client.force_login(people["owner"])
    response = client.get("/api/images?ids=" + ",".join(str(i.pk) for i in images))
    assert len(cloudfront(response)) == 3
    granted = int(response.cookies["CloudFront-Policy"]["path"].split("/")[2])
    for item in response.json()["images"]:
        url = item["variants"]["thumb"]["url"]
        board_id = cdn.board_of(urlsplit(url).path.lstrip("/"))
        assert ("Signature=" in url) == (board_id != granted), url


def test_without_the_key_pair_photos_come_from_s3_and_the_check_says_why(
    cdn_on, client, board, people, monkeypatch, caplog, local_aws
):
    monkeypatch.delenv("BOARDSITE_CDN_PRIVATE_KEY")
    ready_images(board, people["owner"], 1)
    client.force_login(people["owner"])
    selectors._warn_once.cache_clear()
    with caplog.at_level(logging.ERROR):
        html = client.get(f"/boards/{board.pk}/").content.decode()
    assert "X-Amz-Signature=" in html
    assert CDN not in html
    assert "CloudFront delivery is off" in caplog.text
    with pytest.raises(SystemCheckError, match="BOARDSITE_CDN_PRIVATE_KEY is not"):
        call_command("check")


@pytest.mark.parametrize(
    ("url", "cookie_domain", "says"),
    [
        ("media.photos.example.com", "", "the distribution's origin only"),
        ("https://media.photos.example.com/variants", "", "the distribution's origin only"),
        ("https://d111.cloudfront.net", "photos.example.com", "does not cover the CDN's host"),
    ],
)
def test_the_start_up_check_refuses_a_cdn_browsers_could_not_use(cdn_on, url, cookie_domain, says):
    cdn_on.BOARDSITE_CDN_URL = url
    cdn_on.BOARDSITE_CDN_COOKIE_DOMAIN = cookie_domain
    with pytest.raises(SystemCheckError, match=says):
        call_command("check")


def test_the_check_passes_a_complete_configuration(cdn_on):
    call_command("check")


def test_without_a_cdn_nothing_changes(client, board, people, local_aws):
    ready_images(board, people["owner"], 1)
    client.force_login(people["owner"])
    response = client.get(f"/boards/{board.pk}/")
    assert not cloudfront(response)
    assert "X-Amz-Signature=" in response.content.decode()


# --- through the stand-in distribution ------------------------------------------------------------------------------


@pytest.fixture
def distribution(cdn_on, s3, key_pair):
    emulator = localcdn.CdnStandIn(s3, cdn_on.BOARDSITE_BUCKET, {KEY_ID: key_pair[0].public_key()})
    with localcdn.running(emulator) as running:
        cdn_on.BOARDSITE_CDN_URL = running.base_url
        cdn_on.BOARDSITE_CDN_COOKIE_DOMAIN = ""
        cdn._signer.cache_clear()
        yield running


def stored(s3, bucket: str, image: Image, body: bytes = b"RIFF....WEBP") -> str:
    key = f"variants/{image.board_id}/{image.pk}/thumb.webp"
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/webp")
    return key


def cookie_header(response) -> str:
    return "; ".join(f"{name}={m.value}" for name, m in cloudfront(response).items())


def test_the_cookies_open_this_boards_photos_and_no_other(distribution, client, s3, settings, board, people):
    other = board_create(user=people["owner"], title="Other", visibility="private")
    mine, theirs = ready_images(board, people["owner"], 1)[0], ready_images(other, people["owner"], 1)[0]
    stored(s3, settings.BOARDSITE_BUCKET, mine, b"mine")
    stored(s3, settings.BOARDSITE_BUCKET, theirs, b"theirs")
    client.force_login(people["viewer"])  # a member of `board` only
    response = client.get(f"/boards/{board.pk}/")
    url = f"{distribution.base_url}/variants/{board.pk}/{mine.pk}/thumb.webp"
    assert url in response.content.decode()
    cookies = cookie_header(response)
    got = requests.get(url, headers={"Cookie": cookies}, timeout=10)
    assert (got.status_code, got.content) == (200, b"mine")
    assert requests.get(url, timeout=10).status_code == 403  # no cookies
    other_url = f"{distribution.base_url}/variants/{other.pk}/{theirs.pk}/thumb.webp"
    assert requests.get(other_url, headers={"Cookie": cookies}, timeout=10).status_code == 403
    assert distribution.requests[-1][2] == "cookie: resource does not cover the URL"
    tampered = cookies.replace("CloudFront-Policy=", "CloudFront-Policy=x")
    assert requests.get(url, headers={"Cookie": tampered}, timeout=10).status_code == 403


def test_the_cookies_expire_with_their_policy(distribution, client, s3, settings, board, people):
    image = ready_images(board, people["owner"], 1)[0]
    key = stored(s3, settings.BOARDSITE_BUCKET, image)
    client.force_login(people["owner"])
    response = client.get(f"/boards/{board.pk}/")
    policy = json.loads(b64decode(response.cookies["CloudFront-Policy"].value))
    expires = policy["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"]
    path, query, header = f"/{key}", "", cookie_header(response)
    assert distribution.authorize(path, query, header, now=expires - 1) == (True, "cookie")
    assert distribution.authorize(path, query, header, now=expires) == (False, "cookie: expired")


def test_a_home_cover_opens_by_its_signed_url_alone(distribution, client, s3, settings, board, people):
    image = ready_images(board, people["owner"], 1)[0]
    stored(s3, settings.BOARDSITE_BUCKET, image, b"cover")
    client.force_login(people["owner"])
    html = client.get("/").content.decode()
    cover = next(
        part.split('"')[0].split(" ")[0].replace("&amp;", "&")
        for part in html.split(distribution.base_url)[1:]
        if "Signature=" in part.split('"')[0]
    )
    got = requests.get(distribution.base_url + cover, timeout=10)
    assert (got.status_code, got.content) == (200, b"cover")
    assert distribution.requests[-1][2] == "url"
    forged = (distribution.base_url + cover).replace(f"/variants/{board.pk}/", "/variants/999/")
    assert requests.get(forged, timeout=10).status_code == 403


# --- deletes leave the edges too ------------------------------------------------------------------------------------


def test_deleting_a_photo_invalidates_its_variants_on_the_cdn(
    distribution_id, client, s3, settings, board, people, django_capture_on_commit_callbacks
):
    image = ready_images(board, people["owner"], 1)[0]
    stored(s3, settings.BOARDSITE_BUCKET, image)
    client.force_login(people["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/images/{image.pk}/delete/").status_code == 302
    assert invalidated_paths(distribution_id) == [f"/variants/{board.pk}/{image.pk}/*"]
    assert not s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=f"variants/{board.pk}/").get("Contents")


def test_deleting_a_board_invalidates_the_boards_prefix(
    distribution_id, client, s3, settings, board, people, django_capture_on_commit_callbacks
):
    image = ready_images(board, people["owner"], 1)[0]
    stored(s3, settings.BOARDSITE_BUCKET, image)
    client.force_login(people["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/boards/{board.pk}/delete/").status_code == 302
    assert invalidated_paths(distribution_id) == [f"/variants/{board.pk}/*"]


def test_an_invalidation_that_fails_is_tried_again_after_the_objects_are_gone(
    distribution_id, s3, settings, board, people, monkeypatch
):
    from boardsite.images import cleanup
    from boardsite.images.models import StorageCleanup

    image = ready_images(board, people["owner"], 1)[0]
    stored(s3, settings.BOARDSITE_BUCKET, image)
    monkeypatch.setenv("BOARDSITE_CDN_DISTRIBUTION_ID", "ENOSUCHDISTRIBUTION")
    row = cleanup.storage_cleanup_schedule(
        prefixes=cleanup.image_prefixes(image.original_key), reason="test", delay_seconds=1
    )
    assert (
        cleanup.storage_cleanup_run(ids=[row.pk], now=row.not_before)["failed"] == 1
    )  # objects deleted, the edges not told
    assert not s3.list_objects_v2(Bucket=settings.BOARDSITE_BUCKET, Prefix=f"variants/{board.pk}/").get("Contents")
    monkeypatch.setenv("BOARDSITE_CDN_DISTRIBUTION_ID", distribution_id)
    row.refresh_from_db()
    assert cleanup.storage_cleanup_run(ids=[row.pk], now=row.not_before)["done"] == 1
    assert invalidated_paths(distribution_id) == [f"/variants/{board.pk}/{image.pk}/*"]
    assert not StorageCleanup.objects.filter(pk=row.pk).exists()


def test_without_a_distribution_id_a_delete_asks_nothing_of_cloudfront(cdn_on, monkeypatch):
    monkeypatch.delenv("BOARDSITE_CDN_DISTRIBUTION_ID", raising=False)
    assert cdn.invalidate(["variants/1/x/"]) is None
    monkeypatch.setenv("BOARDSITE_CDN_DISTRIBUTION_ID", "E123")
    assert cdn.invalidate(["originals/1/x.jpg"]) is None  # nothing of the CDN's


def test_the_check_warns_in_production_without_a_distribution_id(cdn_on, monkeypatch):
    from boardsite.images.checks import check_cdn

    monkeypatch.delenv("BOARDSITE_CDN_DISTRIBUTION_ID", raising=False)
    cdn_on.DEBUG = False
    assert [m.id for m in check_cdn()] == ["boardsite.W012"]
    monkeypatch.setenv("BOARDSITE_CDN_DISTRIBUTION_ID", "E123")
    assert check_cdn() == []


# --- what the stand-in (like the distribution and its bucket policy) refuses -----------------------------------------


def test_a_boards_cookies_do_not_open_its_result_manifests(distribution, client, s3, settings, board, people):
    image = ready_images(board, people["owner"], 1)[0]
    manifest = f"variants/{board.pk}/{image.pk}/result.json"
    s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=manifest, Body=b"{}", ContentType="application/json")
    stored(s3, settings.BOARDSITE_BUCKET, image)
    client.force_login(people["owner"])
    cookies = cookie_header(client.get(f"/boards/{board.pk}/"))
    base = distribution.base_url
    assert requests.get(f"{base}/variants/{board.pk}/{image.pk}/thumb.webp", headers={"Cookie": cookies}).ok
    assert requests.head(f"{base}/variants/{board.pk}/{image.pk}/thumb.webp", headers={"Cookie": cookies}).ok
    assert requests.get(f"{base}/{manifest}", headers={"Cookie": cookies}, timeout=10).status_code == 403
    for odd in ("thumb.webp%00.webp", "%0d%0a.webp", "nothing-here.webp"):  # keys moto refuses or lacks: 403 too
        url = f"{base}/variants/{board.pk}/{image.pk}/{odd}"
        assert requests.get(url, headers={"Cookie": cookies}, timeout=10).status_code == 403, odd


MALFORMED = [
    (f"Expires=zz&Signature=x&Key-Pair-Id={KEY_ID}", ""),
    ("", f"CloudFront-Expires=zz; CloudFront-Signature=x; CloudFront-Key-Pair-Id={KEY_ID}"),
]


@pytest.mark.parametrize(("query", "cookie"), MALFORMED)
def test_a_malformed_signature_is_a_403(distribution, query, cookie):
    url = f"{distribution.base_url}/variants/1/x/thumb.webp?{query}"
    answer = requests.get(url, headers={"Cookie": cookie}, timeout=10)
    assert answer.status_code == 403
    assert distribution.requests[-1][2].startswith("malformed signature")


def test_a_refused_form_still_carries_the_cookies_of_the_photo_it_shows(cdn_on, client, board, people):
    image = ready_images(board, people["owner"], 1)[0]
    client.force_login(people["owner"])
    response = client.post(f"/images/{image.pk}/", {"caption": "\u200b\u200b"})
    assert response.status_code == 400
    assert f"{CDN}/variants/{board.pk}/" in response.content.decode()
    assert cloudfront(response)["CloudFront-Policy"]["path"] == f"/variants/{board.pk}/"
