"""The program API's own endpoints (see ``boardsite/api/openapi.py`` for the document of the whole API)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from boardsite.api import openapi, services
from boardsite.boards import services as board_services
from boardsite.boards.models import Board, Role, Visibility
from boardsite.boards.selectors import board_get_visible
from boardsite.core.errors import Invalid, NotAuthenticated
from boardsite.core.views import api_view, json_body
from boardsite.images import cdn
from boardsite.images.selectors import board_tiles_page, image_payload

PAGE_DEFAULT, PAGE_MAX = 50, 100


def _signed_in(request: HttpRequest) -> None:
    if not request.user.is_authenticated:
        raise NotAuthenticated("Sign in, or send an access token: Authorization: Bearer <token>.")


def board_payload(board: Board, role: str, photo_count: int) -> dict:
    return {
        "id": board.pk,
        "title": board.title,
        "description": board.description,
        "visibility": board.visibility,
        "role": role,
        "photo_count": photo_count,
        "page_url": reverse("board-detail", args=[board.pk]),
        "images_url": reverse("api-board-images", args=[board.pk]),
    }


@api_view("GET", scope=None)
def me(request: HttpRequest) -> HttpResponse:
    """``GET /api/me``: who the request acts as, and with which token."""
    _signed_in(request)
    token = getattr(request, "access_token", None)
    return JsonResponse(
        {
            "username": request.user.get_username(),
            "token": None
            if token is None
            else {"name": token.name, "scopes": token.scopes, "expires_at": token.expires_at.isoformat()},
        }
    )


@api_view("GET", "POST", scope={"GET": "read", "POST": "manage"})
def boards(request: HttpRequest) -> HttpResponse:
    """``GET /api/boards``: the boards one owns or is a member of; ``POST``: create one (its owner)."""
    _signed_in(request)
    if request.method == "POST":
        body = json_body(request)
        title, visibility = body.get("title"), body.get("visibility", Visibility.PRIVATE)
        description = body.get("description", "")
        if not isinstance(title, str) or not isinstance(description, str):
            raise Invalid("Give the board a title (text), and optionally a description.")
        if visibility not in Visibility.values:
            raise Invalid(f"visibility is one of: {', '.join(Visibility.values)}.")
        board = board_services.board_create(
            user=request.user, title=title, description=description, visibility=visibility
        )
        return JsonResponse({"board": board_payload(board, Role.OWNER, 0)}, status=201)
    rows = services.boards_of(user=request.user)
    return JsonResponse({"boards": [board_payload(board, role, count) for board, role, count in rows]})


@api_view("GET", scope="read")
def board_images(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET /api/boards/<id>/images?after=<cursor>&limit=<n>``: the board's photos, newest first, by keyset."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    raw = request.GET.get("limit", str(PAGE_DEFAULT))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= PAGE_MAX:
        raise Invalid(f"limit is a whole number from 1 to {PAGE_MAX}.")
    page = board_tiles_page(
        board=board, user=request.user, role=role, after=request.GET.get("after") or None, size=int(raw)
    )
    cdn.grant(board.pk)
    return JsonResponse({"images": [image_payload(i) for i in page.images], "next": page.next_cursor})


@api_view("POST", scope="read")
def board_lookup(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /api/boards/<id>/lookup`` ``{"sha256": [...]}``: which of these contents the board has already."""
    board, _ = board_get_visible(board_id=pk, user=request.user)
    found = services.images_by_content(board=board, digests=json_body(request).get("sha256"))
    return JsonResponse({"found": found})


@api_view("GET", scope="read")
def image_download(request: HttpRequest, pk: str) -> HttpResponse:
    """``GET /api/images/<id>/download[?original=1]``: a short-lived link to its largest variant (or original)."""
    original = request.GET.get("original", "").strip().lower() in ("1", "true", "yes")
    return JsonResponse(services.image_download(user=request.user, image_id=pk, original=original))


@api_view("GET", scope=None)
def openapi_document(request: HttpRequest) -> HttpResponse:
    """``GET /api/openapi.json``: the API's OpenAPI 3.1 document (public: it describes, it grants nothing)."""
    return JsonResponse(openapi.document(), json_dumps_params={"indent": 1})
