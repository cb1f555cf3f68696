"""The image page's caption form: a refused caption re-shows the page with the typed text and the sentence beside it."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from boardsite.core.errors import Invalid
from boardsite.images import services
from boardsite.images.models import Image
from tests.helpers import ticket


class _CaptionForm(HTMLParser):
    """The caption input's value and the error list's text, as a browser would show them."""

    def __init__(self) -> None:
        super().__init__()
        self.value: str | None = None
        self.errors: list[str] = []
        self._in_errors = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") == "caption":
            self.value = attrs.get("value") or ""
        if tag == "ul" and "errorlist" in (attrs.get("class") or ""):
            self._in_errors += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "ul" and self._in_errors:
            self._in_errors -= 1

    def handle_data(self, data: str) -> None:
        if self._in_errors and data.strip():
            self.errors.append(data.strip())


def caption_form(html: str) -> _CaptionForm:
    parser = _CaptionForm()
    parser.feed(html)
    return parser


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def contributor(people) -> Client:
    return client_for(people["contributor"])


@pytest.fixture
def photo(contributor, board, local_aws, jpeg) -> Image:
    image_id = ticket(contributor, board.pk, jpeg())["image"]["id"]
    Image.objects.filter(pk=image_id).update(status="ready", caption="Old caption")
    return Image.objects.get(pk=image_id)


@pytest.mark.parametrize(
    ("typed", "sentence"),
    [
        (
            "sun\u202eset",
            "The caption contains an invisible or control character, U+202E (RIGHT-TO-LEFT OVERRIDE), which could hide"
            " or disguise what people see; remove it and try again.",
        ),
        ("x" * 501, "Ensure this value has at most 500 characters (it has 501)."),
    ],
)
def test_a_refused_caption_re_shows_the_page_with_the_text_and_the_sentence(contributor, photo, typed, sentence):
    r = contributor.post(f"/images/{photo.pk}/", {"caption": typed})
    assert r.status_code == 400
    html = r.content.decode()
    form = caption_form(html)
    assert form.value == typed  # nothing typed is lost
    assert form.errors == [sentence]  # beside the field, no "caption:" prefix
    assert "caption:" not in html
    assert "Sorry" not in html  # the image page, not the dead-end error page
    assert "Delete photo" in html
    assert re.search(r'aria-invalid="true"', html)
    photo.refresh_from_db()
    assert photo.caption == "Old caption"


def test_a_refusal_the_form_does_not_know_still_sits_beside_the_field(contributor, photo, monkeypatch):
    # Should the service refuse for a reason the form does not check, its sentence is shown the same way.
    def refuse(**kwargs):
        raise Invalid("Captions are closed for maintenance.")

    monkeypatch.setattr(services, "image_caption_update", refuse)
    r = contributor.post(f"/images/{photo.pk}/", {"caption": "fine"})
    assert r.status_code == 400
    form = caption_form(r.content.decode())
    assert (form.value, form.errors) == ("fine", ["Captions are closed for maintenance."])


def test_the_page_shows_the_saved_caption_and_saves_a_good_one(contributor, photo):
    form = caption_form(contributor.get(f"/images/{photo.pk}/").content.decode())
    assert (form.value, form.errors) == ("Old caption", [])
    r = contributor.post(f"/images/{photo.pk}/", {"caption": "  Family 👨\u200d👩\u200d👧  "})
    assert r.status_code == 302
    photo.refresh_from_db()
    assert photo.caption == "Family 👨\u200d👩\u200d👧"


def test_who_may_edit_is_decided_before_the_text(people, photo):
    # A viewer sending a refused caption is told they may not edit, not what is wrong with the text.
    for user, status in ((people["viewer"], 403), (people["stranger"], 404)):
        r = client_for(user).post(f"/images/{photo.pk}/", {"caption": "sun\u202eset"})
        assert r.status_code == status, user
        assert "U+202E" not in r.content.decode()
    photo.refresh_from_db()
    assert photo.caption == "Old caption"


def test_the_image_page_links_newer_and_older_photos_and_says_who_added_it_when(client, board, people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from tests.factories import add_images

    oldest, middle, newest = add_images(board, people["contributor"], 3, ties=1)
    hidden = add_images(board, people["contributor"], 1, status="failed", start=timezone.now())[0]  # newest of all
    client.force_login(people["viewer"])
    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/images/{middle.pk}/")
    html = page.content.decode()
    assert f'href="/images/{newest.pk}/" rel="prev"' in html
    assert f'href="/images/{oldest.pk}/" rel="next"' in html
    assert "Added by contributor on" in html
    assert html.count("<h1>") == 1
    assert sum('"boards_board"' in q["sql"] and "JOIN" not in q["sql"] for q in queries) == 0  # board not re-read
    # The newest photo has no newer one for a viewer: the failed upload after it is not theirs to see.
    html = client.get(f"/images/{newest.pk}/").content.decode()
    assert 'rel="prev"' not in html
    client.force_login(people["owner"])
    assert f'href="/images/{hidden.pk}/" rel="prev"' in client.get(f"/images/{newest.pk}/").content.decode()


def test_head_answers_like_get_without_a_body(contributor, photo):
    get = contributor.get(f"/images/{photo.pk}/")
    head = contributor.head(f"/images/{photo.pk}/")
    assert get.status_code == head.status_code == 200
    assert get["Content-Type"] == head["Content-Type"] == "text/html; charset=utf-8"
    assert head.content == b""
