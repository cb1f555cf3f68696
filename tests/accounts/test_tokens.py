"""Personal access tokens (boardsite/accounts/tokens.py): made and revoked on the profile page, shown once, stored as a
digest, checked offline by their checksum, and accepted as ``Authorization: Bearer`` on the JSON API only, within
their scopes and their owner's rights; ticket issuing rate-limited per person and per token."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.accounts import tokens
from boardsite.accounts.models import AccessToken
from boardsite.images.models import Image
from tests.helpers import post_to_s3

PHOTO = {"filename": "a.jpg", "content_type": "image/jpeg", "size": 1000}


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def api(token: str | None = None, *, address: str = "203.0.113.9") -> Client:
    """A client as a program is: no session, no CSRF token, CSRF checks on (as for a browser)."""
    headers = {"REMOTE_ADDR": address, **(bearer(token) if token else {})}
    return Client(enforce_csrf_checks=True, **headers)


def ticket_body(board_id: int) -> str:
    return json.dumps({"board": board_id, **PHOTO})


def test_a_token_has_a_prefix_and_a_checksum_that_catches_a_typo_offline():
    token = tokens.new_token()
    assert token.startswith("bst_")
    assert len(token) == tokens.LENGTH == 40
    assert tokens.well_formed(token)
    assert len({tokens.new_token() for _ in range(100)}) == 100
    # Every one-character change anywhere after the prefix is caught (CRC-32 catches any single-symbol error).
    for i in range(len(tokens.PREFIX), len(token)):
        other = "A" if token[i] != "A" else "B"
        assert not tokens.well_formed(token[:i] + other + token[i + 1 :]), i
    assert not tokens.well_formed(token[:-1])
    assert not tokens.well_formed("ghp_" + token[4:])
    assert not tokens.well_formed(token[:10] + "-" + token[11:])


@pytest.mark.django_db
def test_only_a_digest_is_stored_and_the_expiry_is_bounded(people):
    row, token = tokens.token_create(user=people["owner"], name="laptop", scopes=["read"])
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    stored = AccessToken.objects.filter(pk=row.pk).values().get()
    assert token not in json.dumps(stored, default=str)
    assert token.startswith(row.shown)
    assert len(row.shown) == 12
    assert abs((row.expires_at - timezone.now()) - dt.timedelta(days=30)) < dt.timedelta(minutes=1)
    for bad, message in [
        (dict(name="x", scopes=["read"], days=366), "1 to 365 days"),
        (dict(name="x", scopes=["read"], days=0), "1 to 365 days"),
        (dict(name="x", scopes=["admin"]), "among: read, upload, manage"),
        (dict(name="x", scopes=[]), "among"),
        (dict(name="  ", scopes=["read"]), "Give the token a name"),
    ]:
        with pytest.raises(tokens.Invalid, match=message):
            tokens.token_create(user=people["owner"], **bad)


@pytest.mark.django_db
def test_bearer_tokens_work_on_the_api_without_csrf_within_their_scopes(people, board, local_aws, jpeg):
    _, reader = tokens.token_create(user=people["owner"], name="reader", scopes=["read"])
    _, uploader = tokens.token_create(user=people["owner"], name="uploader", scopes=["upload", "read"])
    refused = api(reader).post("/api/uploads", ticket_body(board.pk), content_type="application/json")
    assert refused.status_code == 403
    assert refused.json() == {"error": "This access token's scopes (read) do not include “upload”."}
    data = jpeg()
    body = json.dumps({"board": board.pk, "filename": "a.jpg", "content_type": "image/jpeg", "size": len(data)})
    made = api(uploader).post("/api/uploads", body, content_type="application/json")
    assert made.status_code == 201, made.content
    post_to_s3(made.json()["upload"], data)
    done = api(uploader).post(made.json()["image"]["complete_url"])
    assert done.status_code == 200, done.content
    image = Image.objects.get(pk=made.json()["image"]["id"])
    assert image.uploaded_by == people["owner"]
    seen = api(reader).get("/api/images", {"ids": str(image.pk)})
    assert seen.status_code == 200
    assert [t["id"] for t in seen.json()["images"]] == [str(image.pk)]
    # A session request is still CSRF-checked: only the header a browser never sends by itself skips it.
    session = Client(enforce_csrf_checks=True)
    session.force_login(people["owner"])
    assert session.post("/api/uploads", ticket_body(board.pk), content_type="application/json").status_code == 403


@pytest.mark.django_db
def test_a_token_never_has_more_than_its_owners_role_nor_the_account_pages(people, board, local_aws):
    _, token = tokens.token_create(user=people["viewer"], name="viewer", scopes=["read", "upload", "manage"])
    refused = api(token).post("/api/uploads", ticket_body(board.pk), content_type="application/json")
    assert refused.status_code == 403, refused.content  # a viewer may not add photos, whatever the token says
    _, stranger = tokens.token_create(user=people["stranger"], name="s", scopes=["read", "upload"])
    assert api(stranger).post("/api/uploads", ticket_body(board.pk), content_type="application/json").status_code in (
        403,
        404,
    )
    # Account pages ignore the header: no session, so the log-in page.
    for path in ("/profile/", "/boards/mine/", "/notifications/"):
        response = api(token).get(path)
        assert (response.status_code, response["Location"].split("?")[0]) == (302, "/login/"), path
    assert api(token).post("/profile/tokens/", {"name": "more", "scopes": ["read"], "days": 30}).status_code == 403
    # The profile picture is an account setting too, though its API is JSON: no scope covers it.
    _, uploader = tokens.token_create(user=people["contributor"], name="u", scopes=["read", "upload", "manage"])
    body = json.dumps({"filename": "me.jpg", "content_type": "image/jpeg", "size": 1000})
    for response in (
        api(uploader).get("/api/avatar"),
        api(uploader).post("/api/avatar", body, content_type="application/json"),
        api(uploader).post("/api/avatar/x/complete", "{}", content_type="application/json"),
    ):
        assert response.status_code == 403, response.content
        assert "account setting" in response.json()["error"]


@pytest.mark.django_db
def test_revoked_expired_unknown_and_malformed_tokens_are_refused_with_a_reason(people, board):
    row, token = tokens.token_create(user=people["owner"], name="laptop", scopes=["read"])
    assert api(token).get("/api/images", {"ids": "x"}).status_code != 401
    owner = Client()
    owner.force_login(people["owner"])
    assert owner.post(f"/profile/tokens/{row.pk}/revoke/").status_code == 302
    answer = api(token).get("/api/images", {"ids": "x"})  # the very next request
    assert answer.status_code == 401
    assert answer.json() == {"error": "This access token was revoked."}
    assert answer["WWW-Authenticate"].startswith("Bearer ")
    _, old = tokens.token_create(user=people["owner"], name="old", scopes=["read"], days=1)
    AccessToken.objects.filter(name="old").update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert "expired" in api(old).get("/api/images", {"ids": "x"}).json()["error"]
    assert api(tokens.new_token()).get("/api/images", {"ids": "x"}).json() == {"error": "Unknown access token."}
    assert "copied whole" in api(token[:-2]).get("/api/images", {"ids": "x"}).json()["error"]
    basic = Client(HTTP_AUTHORIZATION="Basic b3duZXI6cHc=").get("/api/images", {"ids": "x"})
    assert basic.status_code == 401
    assert "Bearer" in basic.json()["error"]
    people["owner"].is_active = False
    people["owner"].save()
    _, live = tokens.token_create(user=people["owner"], name="live", scopes=["read"])
    assert api(live).get("/api/images", {"ids": "x"}).json() == {"error": "This account is disabled."}


@pytest.mark.django_db
def test_the_profile_page_makes_shows_once_lists_and_revokes_tokens(people):
    owner = Client(REMOTE_ADDR="198.51.100.7")
    owner.force_login(people["owner"])
    made = owner.post("/profile/tokens/", {"name": "backup script", "scopes": ["read", "upload"], "days": 90})
    assert made.status_code == 201
    page = made.content.decode()
    row = AccessToken.objects.get(user=people["owner"])
    token = page.split('<code id="new-token">')[1].split("<")[0]
    assert tokens.digest_of(token) == row.digest
    assert row.scopes == ["read", "upload"]
    assert "not shown again" in page
    later = owner.get("/profile/").content.decode()
    assert token not in later
    assert f"{row.shown}…" in later
    assert "never" in later
    api(token, address="198.51.100.7").get("/api/images", {"ids": "x"})
    assert "from 198.51.100.7" in owner.get("/profile/").content.decode()
    # Someone else's token is not theirs to revoke (nor to know of).
    other = Client()
    other.force_login(people["stranger"])
    assert other.post(f"/profile/tokens/{row.pk}/revoke/").status_code == 404
    assert AccessToken.objects.get(pk=row.pk).revoked_at is None
    bad = owner.post("/profile/tokens/", {"name": "x", "scopes": ["read"], "days": 400})
    assert bad.status_code == 400
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
def test_ticket_issuing_is_rate_limited_per_token_and_per_person(people, board, local_aws, settings):
    settings.UPLOAD_TICKET_RATE_TOKEN = "2/m"
    settings.UPLOAD_TICKET_RATE_USER = "3/m"
    _, first = tokens.token_create(user=people["owner"], name="one", scopes=["upload"])
    _, second = tokens.token_create(user=people["owner"], name="two", scopes=["upload"])
    answers = [api(first).post("/api/uploads", ticket_body(board.pk), content_type="application/json") for _ in "abc"]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert int(answers[2]["Retry-After"]) > 0
    assert "Too many upload requests" in answers[2].json()["error"]
    # Another token of the same person: its own count, but the person's (3 a minute) is reached.
    answers = [api(second).post("/api/uploads", ticket_body(board.pk), content_type="application/json") for _ in "ab"]
    assert [a.status_code for a in answers] == [429, 429]
    assert Image.objects.count() == 2


@pytest.mark.django_db
def test_asking_for_upload_grants_counts_against_the_same_rate(people, board, settings):
    settings.UPLOAD_TICKET_RATE_TOKEN = "2/m"
    _, token = tokens.token_create(user=people["owner"], name="one", scopes=["upload"])
    body = json.dumps({"board": board.pk, "files": 1, "bytes": 1})
    answers = [api(token).post("/api/upload-grants", body, content_type="application/json") for _ in "abc"]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) > 0
