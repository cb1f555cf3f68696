"""The site's pages: accounts, boards, members, the image page; deletes remove every S3 object."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from boardsite.boards.models import Board, Membership
from boardsite.images.models import Image
from tests.helpers import upload


@pytest.fixture
def owner(people):
    c = Client()
    c.force_login(people["owner"])
    return c


def keys_under(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="boardsite-media", Prefix=prefix).get("Contents", [])]


def test_sign_up_log_out_log_in_and_edit_profile(db):
    c = Client()
    r = c.post(
        "/signup/",
        {
            "username": "grace",
            "display_name": "Grace H.",
            "email": "grace@example.com",
            "password": "cobol-is-fine-1959",
            "password_again": "cobol-is-fine-1959",
        },
    )
    assert r.status_code == 302
    assert "Grace H." in c.get("/").content.decode()
    c.post("/profile/", {"display_name": "Admiral Grace", "bio": "Found a moth."})
    user = get_user_model().objects.get(username="grace")
    assert (user.profile.display_name, user.profile.bio) == ("Admiral Grace", "Found a moth.")
    c.post("/logout/")
    assert c.get("/profile/").status_code == 302
    assert c.post("/login/", {"username": "grace", "password": "cobol-is-fine-1959"}).status_code == 302
    assert "Admiral Grace" in c.get("/").content.decode()


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"username": "owner", "password": "a-fine-long-secret", "password_again": "a-fine-long-secret"}, "taken"),
        ({"username": "x1", "password": "a-fine-long-secret", "password_again": "different-secret!"}, "differ"),
        ({"username": "x2", "password": "123", "password_again": "123"}, "too short"),
    ],
)
def test_sign_up_refusals_are_explained(people, form, says):
    r = Client().post("/signup/", {"email": "someone@example.com", **form})
    assert r.status_code == 200
    assert says in r.content.decode()


def test_board_create_edit_and_members(owner, people, local_aws):
    r = owner.post("/boards/new/", {"title": "Trip", "description": "Summer", "visibility": "private"})
    board = Board.objects.get(title="Trip")
    assert r["Location"] == f"/boards/{board.pk}/"
    owner.post(f"/boards/{board.pk}/edit/", {"title": "Trip 2026", "description": "", "visibility": "public"})
    board.refresh_from_db()
    assert (board.title, board.visibility) == ("Trip 2026", "public")
    owner.post(f"/boards/{board.pk}/members/", {"username": "Viewer", "role": "contributor"})
    assert Membership.objects.get(board=board, user=people["viewer"]).role == "contributor"
    page = owner.post(f"/boards/{board.pk}/members/", {"username": "nobody", "role": "viewer"}, follow=True)
    assert "No user called" in page.content.decode()
    owner.post(f"/boards/{board.pk}/members/remove/", {"username": "viewer"})
    assert not Membership.objects.filter(board=board, user=people["viewer"]).exists()


def test_image_delete_removes_the_row_and_every_s3_object(
    owner, board, s3, jpeg, settings, django_capture_on_commit_callbacks
):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    kept = upload(owner, board.pk, jpeg())
    gone = upload(owner, board.pk, jpeg())
    gone_id = gone["image"]["id"]
    assert len(keys_under(s3, f"variants/{board.pk}/{gone_id}/")) == 7  # 3 sizes x 2 formats + result.json
    gone_original = gone["upload"]["fields"]["key"]
    assert keys_under(s3, gone_original) == [gone_original]
    with django_capture_on_commit_callbacks(execute=True):  # objects are deleted once the row's deletion commits
        r = owner.post(f"/images/{gone_id}/delete/")
    assert r["Location"] == f"/boards/{board.pk}/"
    assert not Image.objects.filter(pk=gone_id).exists()
    assert keys_under(s3, f"variants/{board.pk}/{gone_id}/") == []
    assert keys_under(s3, gone_original) == []
    assert len(keys_under(s3, f"variants/{board.pk}/{kept['image']['id']}/")) == 7  # the other photo is untouched


def test_board_delete_removes_every_image_object(owner, board, s3, jpeg, settings, django_capture_on_commit_callbacks):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    upload(owner, board.pk, jpeg())
    assert keys_under(s3, "originals/")
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(f"/boards/{board.pk}/delete/")["Location"] == "/"
    assert not Board.objects.filter(pk=board.pk).exists()
    assert keys_under(s3, "originals/") == []
    assert keys_under(s3, "variants/") == []


def test_image_page_shows_the_large_variant_through_a_short_lived_url(owner, board, local_aws, jpeg, settings):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    body = upload(owner, board.pk, jpeg())
    owner.post(f"/images/{body['image']['id']}/", {"caption": "  Sunset <b>!</b> "})
    html = owner.get(f"/images/{body['image']['id']}/").content.decode()
    assert "Sunset &lt;b&gt;!&lt;/b&gt;" in html  # escaped
    image = Image.objects.get(pk=body["image"]["id"])
    large = image.variants.get(name="large", format="jpeg")
    assert f'width="{large.width}" height="{large.height}"' in html
    src = html.split('<img src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert urlparse(src).path.endswith(large.key)
    assert '<source type="image/webp" srcset="' in html
    assert image.variants.get(name="large", format="webp").key.split("/")[-1] in html
    assert int(parse_qs(urlparse(src).query)["X-Amz-Expires"][0]) == settings.IMAGE_URL_SECONDS <= 3600


def test_pages_and_json_are_compressed_for_clients_that_accept_it(local_aws, client, board, people):
    import gzip
    import json

    from tests.factories import add_images

    add_images(board, people["owner"], 30, status="processing")
    client.force_login(people["owner"])
    plain = client.get(f"/boards/{board.pk}/")
    packed = client.get(f"/boards/{board.pk}/", HTTP_ACCEPT_ENCODING="gzip")
    assert "Content-Encoding" not in plain
    assert packed["Content-Encoding"] == "gzip"
    assert len(packed.content) * 4 < len(plain.content)
    assert b"processing" in gzip.decompress(packed.content)
    ids = ",".join(str(i.pk) for i in board.images.all())
    api = client.get("/api/images", {"ids": ids}, HTTP_ACCEPT_ENCODING="gzip")
    assert api["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(api.content))["images"]) == 30
