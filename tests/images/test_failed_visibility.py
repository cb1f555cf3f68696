"""Failed uploads and their reason are shown to the uploader and the board's owners, and to nobody else."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from boardsite.boards.models import Membership, Role
from boardsite.images.models import Image
from tests.factories import make_user
from tests.helpers import upload

REASON = "not an image"  # what the processor says about these bytes


@pytest.fixture
def failed(people, board, settings, local_aws):
    """A contributor's upload that failed (processed inline, for real); the board has a second contributor, "other"."""
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    Membership.objects.create(board=board, user=make_user("other"), role=Role.CONTRIBUTOR)
    body = upload(client_for(people["contributor"]), board.pk, b"these bytes are not a photo", name="oops.jpg")
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "failed"
    assert REASON in image.error
    return image


def client_for(user) -> Client:
    c = Client()
    if user is not None:
        c.force_login(user)
    return c


@pytest.mark.parametrize("who", ["owner", "contributor"])
def test_the_owner_and_the_uploader_see_the_failure_and_its_reason(who, people, board, failed):
    c = client_for(people[who])
    page = c.get(f"/boards/{board.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "oops.jpg" in html
    assert REASON in html
    r = c.get(f"/api/images/{failed.pk}")
    assert r.status_code == 200
    assert r.json()["status"] == "failed"
    assert REASON in r.json()["error"]
    assert c.get(f"/images/{failed.pk}/").status_code == 200


@pytest.mark.parametrize("who", ["viewer", "other", "stranger", "anonymous"])
@pytest.mark.parametrize("visibility", ["private", "public"])
def test_nobody_else_sees_it(who, visibility, people, board, failed):
    board.visibility = visibility
    board.save()
    c = client_for(get_user_model().objects.filter(username=who).first())  # anonymous: nobody logged in
    page = c.get(f"/boards/{board.pk}/")
    if visibility == "private" and who in ("stranger", "anonymous"):
        assert page.status_code == 404
    else:
        assert page.status_code == 200
        assert "oops.jpg" not in page.content.decode()
        assert REASON not in page.content.decode()
    r = c.get(f"/api/images/{failed.pk}")
    assert r.status_code == 404
    assert "failed" not in r.content.decode()
    assert c.get(f"/images/{failed.pk}/").status_code == 404
