"""The OpenAPI 3.1 document of the JSON API (``GET /api/openapi.json``). tests/api/test_openapi.py checks it is a valid
document and that real answers of every operation match the schemas here, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from boardsite.accounts.tokens import SCOPES
from offload.config import ALLOWED_CONTENT_TYPES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error: a sentence a person can read.")
_ERRORS = {
    "400": _ERROR,
    "401": {**_ERROR, "description": "The access token is unknown, mistyped, expired or revoked."},
    "403": {**_ERROR, "description": "Not allowed: the token's scopes, or your role on the board."},
    "404": {**_ERROR, "description": "No such board or photo (or not one you may see)."},
}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_ID = {"name": "id", "in": "path", "required": True}


def _op(summary: str, scope: str | None, ok: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        **({"x-scope": scope} if scope else {}),
        "responses": {**ok, **_ERRORS, **more.pop("errors", {})},
        **more,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Batch": {
        "type": "object",
        "required": ["batch", "action", "ids", "count", "undo_until", "undo_url", "finish_url"],
        "properties": {
            "batch": {"type": "string", "format": "uuid"},
            "action": {"enum": ["delete", "move"]},
            "ids": {"type": "array", "items": {"type": "string"}, "description": "The photos it acted on"},
            "count": {"type": "integer"},
            "undo_until": {"type": "string", "format": "date-time"},
            "undo_url": {"type": "string"},
            "finish_url": {"type": "string"},
            "restored": {"type": "integer", "description": "(undo) How many photos came back"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["username", "token"],
        "properties": {
            "username": {"type": "string"},
            "token": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["name", "scopes", "expires_at"],
                        "properties": {
                            "name": {"type": "string"},
                            "scopes": {"type": "array", "items": {"enum": list(SCOPES)}},
                            "expires_at": {"type": "string", "format": "date-time"},
                        },
                    },
                ]
            },
        },
    },
    "Board": {
        "type": "object",
        "required": ["id", "title", "description", "visibility", "role", "photo_count", "page_url", "images_url"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "visibility": {"enum": ["private", "public"]},
            "role": {"enum": ["owner", "contributor", "viewer"]},
            "photo_count": {"type": "integer", "minimum": 0},
            "page_url": {"type": "string"},
            "images_url": {"type": "string"},
        },
    },
    "Variant": {
        "type": "object",
        "required": ["width", "height", "url", "formats"],
        "properties": {
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "url": {"type": "string"},
            "formats": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Image": {
        "type": "object",
        "required": ["id", "status", "error", "width", "height", "caption", "filename", "sha256", "variants"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "board": {"type": "integer", "description": "absent in the batched status answer"},
            "status": {"enum": ["pending", "processing", "ready", "failed"]},
            "error": {**_STRING_OR_NULL, "description": "why it failed, for a person"},
            "width": _INT_OR_NULL,
            "height": _INT_OR_NULL,
            "caption": {"type": "string"},
            "filename": {"type": "string"},
            "sha256": {**_STRING_OR_NULL, "description": "SHA-256 of the original's bytes, once processed"},
            "placeholder": _STRING_OR_NULL,
            "dominant_color": _STRING_OR_NULL,
            "variants": {"type": "object", "additionalProperties": _ref("Variant")},
            "page_url": {"type": "string"},
        },
    },
    "Ticket": {
        "type": "object",
        "required": ["image", "upload"],
        "properties": {
            "image": {
                "type": "object",
                "required": ["id", "status", "status_url", "complete_url", "abandon_url"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "status": {"const": "pending"},
                    "status_url": {"type": "string"},
                    "complete_url": {
                        **_STRING_OR_NULL,
                        "description": "null when the upload-ticket function placed it for Lambda: S3 starts its "
                        "processing, nothing to report",
                    },
                    "abandon_url": {"type": "string"},
                },
            },
            "upload": {
                "type": "object",
                "required": ["url", "fields", "expires_at"],
                "description": "POST every field, then the file as the field `file` (last), to `url`",
                "properties": {
                    "url": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "expires_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
    "UploadGrant": {
        "type": "object",
        "required": ["runtime", "ticket_url", "grant"],
        "description": "Where this batch's tickets come from: the site (inline), or the upload-ticket function "
        "with this grant (lambda), sent as the `grant` field of each ticket request",
        "properties": {
            "runtime": {"enum": ["inline", "lambda"]},
            "ticket_url": {"type": "string"},
            "grant": _STRING_OR_NULL,
            "board": {"type": "integer"},
            "tickets": {"type": "integer"},
            "bytes": {"type": "integer"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
    "Download": {
        "type": "object",
        "required": ["url", "expires_at", "filename", "variant", "content_type"],
        "properties": {
            "url": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
            "filename": {"type": "string"},
            "variant": {"type": "string", "description": "the variant's name (`large`), or `original`"},
            "content_type": {"type": "string"},
        },
    },
}


def document() -> dict[str, Any]:
    throttled = {
        "429": {
            **_ERROR,
            "description": "Too many tickets: wait the Retry-After header's seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
        "413": {**_ERROR, "description": "The file, or a byte quota, is too large."},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "boardsite API",
            "version": "1",
            "description": "Photo boards for programs. Authenticate with a personal access token (made on your "
            "profile page): `Authorization: Bearer bst_…`. Each operation's `x-scope` is the token scope it needs. "
            f"Upload tickets: at most {settings.UPLOAD_TICKET_RATE_USER} per person and "
            f"{settings.UPLOAD_TICKET_RATE_TOKEN} per token.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/me": {"get": _op("Who the request acts as", None, {"200": _json(_ref("Me"), "You")})},
            "/api/boards": {
                "get": _op(
                    "The boards you own or are a member of",
                    "read",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["boards"],
                                "properties": {"boards": {"type": "array", "items": _ref("Board")}},
                            },
                            "Your boards, newest first",
                        )
                    },
                ),
                "post": _op(
                    "Create a board (you become its owner)",
                    "manage",
                    {
                        "201": _json(
                            {"type": "object", "required": ["board"], "properties": {"board": _ref("Board")}},
                            "The new board",
                        )
                    },
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["title"],
                            "properties": {
                                "title": {"type": "string", "maxLength": 120},
                                "description": {"type": "string", "maxLength": 2000},
                                "visibility": {"enum": ["private", "public"], "default": "private"},
                            },
                        }
                    ),
                ),
            },
            "/api/boards/{id}/images": {
                "get": _op(
                    "A board's photos, newest first, a page at a time (keyset: pass `next` as `after`)",
                    "read",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["images", "next"],
                                "properties": {
                                    "images": {"type": "array", "items": _ref("Image")},
                                    "next": _STRING_OR_NULL,
                                },
                            },
                            "One page",
                        )
                    },
                    parameters=[
                        {**_ID, "schema": {"type": "integer"}},
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    ],
                )
            },
            "/api/boards/{id}/lookup": {
                "post": _op(
                    "Which of these contents (SHA-256 of a file's bytes) the board has already",
                    "read",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["found"],
                                "properties": {"found": {"type": "object", "additionalProperties": {"type": "string"}}},
                            },
                            "Digest -> photo id, for those found",
                        )
                    },
                    parameters=[{**_ID, "schema": {"type": "integer"}}],
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["sha256"],
                            "properties": {
                                "sha256": {
                                    "type": "array",
                                    "maxItems": 500,
                                    "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                }
                            },
                        }
                    ),
                )
            },
            "/api/uploads": {
                "post": _op(
                    "A ticket to upload one file straight to storage",
                    "upload",
                    {"201": _json(_ref("Ticket"), "The ticket")},
                    errors=throttled,
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["board", "filename", "content_type", "size"],
                            "properties": {
                                "board": {"type": "integer"},
                                "filename": {"type": "string"},
                                "content_type": {"enum": list(ALLOWED_CONTENT_TYPES)},
                                "size": {"type": "integer", "minimum": 1},
                            },
                        }
                    ),
                )
            },
            "/api/upload-grants": {
                "post": _op(
                    "Where to ask for a batch's upload tickets: the site, or the upload-ticket function with a grant",
                    "upload",
                    {
                        "200": _json(_ref("UploadGrant"), "The site answers tickets (inline)"),
                        "201": _json(_ref("UploadGrant"), "A grant for the function (lambda)"),
                    },
                    errors=throttled,
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["board", "files", "bytes"],
                            "properties": {
                                "board": {"type": "integer"},
                                "files": {"type": "integer", "minimum": 1},
                                "bytes": {"type": "integer", "minimum": 1},
                            },
                        }
                    ),
                )
            },
            "/api/images": {
                "get": _op(
                    "The status of many photos at once",
                    "read",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["images", "missing"],
                                "properties": {
                                    "images": {"type": "array", "items": _ref("Image")},
                                    "missing": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "Those you may see; the others as missing",
                        )
                    },
                    parameters=[
                        {"name": "ids", "in": "query", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "verify",
                            "in": "query",
                            "description": "1: each ready photo also says whether its files are in storage (at most "
                            "10 ids; rate-limited)",
                            "schema": {"enum": ["0", "1"]},
                        },
                    ],
                )
            },
            "/api/images/{id}": {
                "get": _op(
                    "One photo",
                    "read",
                    {"200": _json(_ref("Image"), "The photo")},
                    parameters=[{**_ID, "schema": {"type": "string"}}],
                ),
                "delete": _op(
                    "Delete a photo (its uploader, or an owner of the board)",
                    "manage",
                    {"204": {"description": "Deleted, with every stored file of it"}},
                    parameters=[{**_ID, "schema": {"type": "string"}}],
                ),
            },
            "/api/images/{id}/complete": {
                "post": _op(
                    "Say the file was sent: the photo is processed",
                    "upload",
                    {"200": _json(_ref("Image"), "The photo")},
                    parameters=[{**_ID, "schema": {"type": "string"}}],
                )
            },
            "/api/images/{id}/abandon": {
                "post": _op(
                    "Say the file could not be sent: the photo ends failed with the reason",
                    "upload",
                    {"200": _json(_ref("Image"), "The photo")},
                    parameters=[{**_ID, "schema": {"type": "string"}}],
                    requestBody=_body({"type": "object", "properties": {"reason": {"type": "string"}}}),
                )
            },
            "/api/boards/{id}/photos": {
                "post": _op(
                    "Delete or move many of the board's photos in one request, undoable for a few seconds (deleting:"
                    " owners any photo, members their own; moving: owners of both boards). Ids one may not act on "
                    "are left out",
                    "manage",
                    {"201": _json(_ref("Batch"), "Done; deleted photos are hidden and go once the undo window ends")},
                    parameters=[{**_ID, "schema": {"type": "integer"}}],
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["action", "ids"],
                            "properties": {
                                "action": {"enum": ["delete", "move"]},
                                "ids": {
                                    "type": "array",
                                    "maxItems": settings.BULK_MAX_PHOTOS,
                                    "items": {"type": "string"},
                                },
                                "target": {"type": "integer", "description": "move: the board to move them to"},
                            },
                        }
                    ),
                )
            },
            "/api/batches/{id}/undo": {
                "post": _op(
                    "Undo one's own delete or move within its window",
                    "manage",
                    {"200": _json(_ref("Batch"), "Undone")},
                    parameters=[{**_ID, "schema": {"type": "string", "format": "uuid"}}],
                )
            },
            "/api/batches/{id}/finish": {
                "post": _op(
                    "Delete now what one's own batch hid, once its undo window has ended (else the sweep does)",
                    "manage",
                    {
                        "200": _json(
                            {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "integer"}}},
                            "How many photos were deleted now",
                        )
                    },
                    parameters=[{**_ID, "schema": {"type": "string", "format": "uuid"}}],
                )
            },
            "/api/images/{id}/download": {
                "get": _op(
                    "A short-lived link to the photo's largest variant, or with original=1 its original (owners and "
                    "the uploader)",
                    "read",
                    {"200": _json(_ref("Download"), "The link")},
                    errors={"409": {**_ERROR, "description": "The stored original was replaced after processing"}},
                    parameters=[
                        {**_ID, "schema": {"type": "string"}},
                        {"name": "original", "in": "query", "schema": {"enum": ["0", "1"]}},
                    ],
                )
            },
        },
    }
