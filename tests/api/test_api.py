"""The JSON API for programs, driven as a program does (a bearer token, no session, CSRF checks on), every answer
checked against the OpenAPI document the site serves (boardsite/api/openapi.py): the document is valid, each
operation it lists is exercised here, and each real answer matches its schema, errors included."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import requests
from django.test import Client
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from boardsite.accounts import tokens
from boardsite.boards.models import Board
from boardsite.images.models import Image
from tests.helpers import post_to_s3


class Api:
    """A token's client that checks each answer against the served document, and remembers what it exercised."""

    def __init__(self, token: str, document: dict) -> None:
        self.client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {token}")
        self.document = document
        self.seen: set[tuple[str, str, str]] = set()

    def call(self, method: str, template: str, path: str | None = None, body: dict | None = None, **query):
        path = path or template
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        if query:
            kwargs = {"data": query}
        response = getattr(self.client, method.lower())(path, **kwargs)
        status = str(response.status_code)
        operation = self.document["paths"][template][method.lower()]
        assert status in operation["responses"], f"{method} {path}: {status} is not documented: {response.content}"
        content = operation["responses"][status].get("content")
        if content:
            schema = {**content["application/json"]["schema"], "components": self.document["components"]}
            errors = sorted(Draft202012Validator(schema).iter_errors(response.json()), key=str)
            assert not errors, f"{method} {path} {status}: {errors[0]}"
        else:
            assert response.content == b"", f"{method} {path} {status} has an undocumented body"
        self.seen.add((method.lower(), template, status))
        return response


@pytest.fixture
def site(settings, people, board, local_aws):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    return people


@pytest.fixture
def document(db):
    return Client().get("/api/openapi.json").json()


def test_the_document_is_valid_openapi_and_public(document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    for path, operations in document["paths"].items():
        assert path.startswith("/api/")
        for method, operation in operations.items():
            assert operation.get("x-scope") in (None, *tokens.SCOPES), (method, path)


def test_every_operation_answers_as_documented(site, board, document, jpeg):
    _, token = tokens.token_create(user=site["owner"], name="script", scopes=["read", "upload", "manage"])
    api = Api(token, document)
    me = api.call("GET", "/api/me").json()
    assert me["username"] == "owner"
    assert me["token"]["scopes"] == ["manage", "read", "upload"]
    made = api.call("POST", "/api/boards", body={"title": "Trip", "visibility": "public"})
    assert made.status_code == 201
    new = made.json()["board"]
    assert (new["role"], new["photo_count"], new["visibility"]) == ("owner", 0, "public")
    assert Board.objects.get(pk=new["id"]).title == "Trip"
    listed = api.call("GET", "/api/boards").json()["boards"]
    assert [b["id"] for b in listed] == [new["id"], board.pk]  # newest first; only boards one is a member of

    where = api.call("POST", "/api/upload-grants", body={"board": board.pk, "files": 1, "bytes": 1000}).json()
    assert where == {"runtime": "inline", "ticket_url": "/api/uploads", "grant": None}
    data = jpeg()
    ticket = api.call(
        "POST",
        "/api/uploads",
        body={"board": board.pk, "filename": "beach.jpg", "content_type": "image/jpeg", "size": len(data)},
    ).json()
    image_id = ticket["image"]["id"]
    post_to_s3(ticket["upload"], data)
    one = f"/api/images/{image_id}"
    done = api.call("POST", "/api/images/{id}/complete", f"{one}/complete").json()
    assert done["status"] == "ready"
    assert done["sha256"] == hashlib.sha256(data).hexdigest(), "the processor's digest of the bytes"
    assert api.call("GET", "/api/images/{id}", one).json()["id"] == image_id
    batch = api.call("GET", "/api/images", ids=f"{image_id},nope").json()
    assert batch["missing"] == ["nope"]

    page = api.call("GET", "/api/boards/{id}/images", f"/api/boards/{board.pk}/images", limit="1").json()
    assert [i["id"] for i in page["images"]] == [image_id]
    assert page["next"] is None
    digest = hashlib.sha256(data).hexdigest()
    found = api.call(
        "POST", "/api/boards/{id}/lookup", f"/api/boards/{board.pk}/lookup", body={"sha256": [digest, "0" * 64]}
    ).json()
    assert found == {"found": {digest: image_id}}

    large = api.call("GET", "/api/images/{id}/download", f"{one}/download").json()
    assert large["variant"] != "original"
    assert requests.get(large["url"], timeout=10).status_code == 200
    original = api.call("GET", "/api/images/{id}/download", f"{one}/download", original="1").json()
    assert original["variant"] == "original"
    assert requests.get(original["url"], timeout=10).content == data
    # The same ticket used again after processing replaces the stored bytes: they are not handed out as the photo's.
    post_to_s3(ticket["upload"], data[:-1] + b"\x00")
    replaced = api.call("GET", "/api/images/{id}/download", f"{one}/download", original="1")
    assert replaced.status_code == 409
    assert "not the one that was processed" in replaced.json()["error"]

    second = api.call(
        "POST", "/api/uploads", body={"board": board.pk, "filename": "b.jpg", "content_type": "image/jpeg", "size": 9}
    ).json()
    gone = api.call(
        "POST",
        "/api/images/{id}/abandon",
        f"/api/images/{second['image']['id']}/abandon",
        body={"reason": "the network went away"},
    ).json()
    assert gone["status"] == "failed"
    assert "(the network went away)" in gone["error"]
    # Many at once: deleted, undone, deleted again and finished once the window has passed.
    many = f"/api/boards/{board.pk}/photos"
    hid = api.call("POST", "/api/boards/{id}/photos", many, body={"action": "delete", "ids": [image_id]}).json()
    assert hid["ids"] == [image_id]
    assert api.call("GET", "/api/images/{id}", one).status_code == 404
    undone = api.call("POST", "/api/batches/{id}/undo", hid["undo_url"]).json()
    assert undone["restored"] == 1
    again = api.call("POST", "/api/boards/{id}/photos", many, body={"action": "delete", "ids": [image_id]}).json()
    assert api.call("POST", "/api/batches/{id}/finish", again["finish_url"]).json() == {"deleted": 0}
    undone = api.call("POST", "/api/batches/{id}/undo", again["undo_url"]).json()
    refused = api.call("POST", "/api/boards/{id}/photos", many, body={"action": "move", "ids": [image_id], "target": 0})
    assert refused.status_code == 403
    assert api.call("DELETE", "/api/images/{id}", one).status_code == 204
    assert not Image.objects.filter(pk=image_id).exists()

    # Errors are documented and shaped too.
    assert api.call("GET", "/api/images/{id}", one).status_code == 404
    assert api.call("GET", "/api/boards/{id}/images", "/api/boards/999999/images").status_code == 404
    assert api.call("GET", "/api/boards/{id}/images", f"/api/boards/{board.pk}/images", limit="0").status_code == 400
    for odd in ("²", "１", "٣"):  # digits to str.isdigit, not numbers a client means
        assert (
            api.call("GET", "/api/boards/{id}/images", f"/api/boards/{board.pk}/images", limit=odd).status_code == 400
        )
    bad_cursor = api.call("GET", "/api/boards/{id}/images", f"/api/boards/{board.pk}/images", after="x.y")
    assert bad_cursor.status_code == 400
    bad = api.call("POST", "/api/boards/{id}/lookup", f"/api/boards/{board.pk}/lookup", body={"sha256": ["xyz"]})
    assert bad.status_code == 400
    assert api.call("POST", "/api/boards", body={"title": "x", "visibility": "secret"}).status_code == 400

    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    exercised = {(m, p) for m, p, status in api.seen if status.startswith("2")}
    assert documented == exercised, f"not exercised: {documented - exercised}"


def test_scopes_roles_and_tokens_are_enforced_on_the_new_endpoints(site, board, document, jpeg):
    _, reader = tokens.token_create(user=site["viewer"], name="r", scopes=["read"])
    api = Api(reader, document)
    assert [b["role"] for b in api.call("GET", "/api/boards").json()["boards"]] == ["viewer"]
    assert api.call("POST", "/api/boards", body={"title": "x"}).status_code == 403  # scope
    _, stranger = tokens.token_create(user=site["stranger"], name="s", scopes=["read", "manage"])
    outsider = Api(stranger, document)
    assert outsider.call("GET", "/api/boards").json() == {"boards": []}
    assert outsider.call("GET", "/api/boards/{id}/images", f"/api/boards/{board.pk}/images").status_code == 404
    lookup = outsider.call("POST", "/api/boards/{id}/lookup", f"/api/boards/{board.pk}/lookup", body={"sha256": []})
    assert lookup.status_code == 404
    # A contributor's photo: the viewer may download its large variant, not its original; the stranger nothing.
    _, contributor = tokens.token_create(user=site["contributor"], name="c", scopes=["upload", "read", "manage"])
    uploader = Api(contributor, document)
    data = jpeg()
    ticket = uploader.call(
        "POST",
        "/api/uploads",
        body={"board": board.pk, "filename": "c.jpg", "content_type": "image/jpeg", "size": len(data)},
    ).json()
    post_to_s3(ticket["upload"], data)
    path = f"/api/images/{ticket['image']['id']}"
    uploader.call("POST", "/api/images/{id}/complete", f"{path}/complete")
    assert api.call("GET", "/api/images/{id}/download", f"{path}/download").status_code == 200
    assert api.call("GET", "/api/images/{id}/download", f"{path}/download", original="1").status_code == 403
    assert outsider.call("GET", "/api/images/{id}/download", f"{path}/download").status_code == 404
    assert api.call("DELETE", "/api/images/{id}", path).status_code == 403  # a viewer's token, with read only
    assert outsider.call("DELETE", "/api/images/{id}", path).status_code == 404
    assert uploader.call("GET", "/api/images/{id}/download", f"{path}/download", original="1").status_code == 200
    assert uploader.call("DELETE", "/api/images/{id}", path).status_code == 204
    # No token, no session: refused, as documented.
    anonymous = Client().get("/api/me")
    assert anonymous.status_code == 403
    assert re.search("access token", anonymous.json()["error"])
