"""The pages that show boards with their photos: the home page and the board lists (cards with covers and counts),
a board's page and its tiles. Here, in images, because they read photos; the board forms and the pages that only
change a board or its members are ``boards.views``."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse

from boardsite.boards.models import Board, Role
from boardsite.boards.selectors import (
    HOME_LIST_MAX,
    board_get_visible,
    board_list_owned,
    board_list_public,
    board_list_shared_with,
    board_members,
    can_upload,
)
from boardsite.boards.views import MemberForm
from boardsite.core.errors import NotFound
from boardsite.core.views import api_view, page_errors
from boardsite.images import cdn
from boardsite.images.selectors import TILE_VARIANTS, board_cards, board_tiles_page, image_picture


def home(request: HttpRequest) -> HttpResponse:
    """Your boards, the boards shared with you and public boards: each list capped, with covers and counts, so the
    page costs the same with 10 boards or 10,000."""
    user = request.user
    owned = board_list_owned(user=user)[: HOME_LIST_MAX + 1]
    shared = board_list_shared_with(user=user)[: HOME_LIST_MAX + 1]
    public = _public_from_others(user=user)[: HOME_LIST_MAX + 1]
    sections = {name: board_cards(qs) for name, qs in (("owned", owned), ("shared", shared), ("public", public))}
    return render(
        request,
        "home.html",
        {
            **{name: cards[:HOME_LIST_MAX] for name, cards in sections.items()},
            "owned_more": reverse("boards-mine") if len(sections["owned"]) > HOME_LIST_MAX else "",
            "shared_more": reverse("boards-shared") if len(sections["shared"]) > HOME_LIST_MAX else "",
            "public_more": reverse("boards-public") if len(sections["public"]) > HOME_LIST_MAX else "",
        },
    )


LIST_PAGE_SIZE = 48


def _public_from_others(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Board]:
    """Public boards the user is not a member of (theirs are in the other lists)."""
    return board_list_public().exclude(memberships__user_id=getattr(user, "pk", None))


BOARD_LISTS = {
    "mine": ("My boards", board_list_owned),
    "shared": ("Shared with me", board_list_shared_with),
    "public": ("Public boards", _public_from_others),
}


@page_errors
def board_list(request: HttpRequest, which: str) -> HttpResponse:
    """Every board of one home-page list, a page at a time."""
    if which not in BOARD_LISTS:
        raise NotFound("No such list.")
    if which != "public" and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    title, select = BOARD_LISTS[which]
    page = Paginator(select(user=request.user), LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "boards/board_list.html", {"title": title, "cards": board_cards(page.object_list), "page_obj": page}
    )


def _tiles(images: list) -> list[dict]:
    return [
        {"image": image, "picture": image_picture(image, TILE_VARIANTS) if image.status == "ready" else None}
        for image in images
    ]


@page_errors
def board_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The board's first page of tiles (or, from a link, the page ``?after=`` a position, or every tile ``?until=`` a
    position: where the back button returns to after scrolling, from the top or from ``after``); the rest load as one
    scrolls (``board_tiles``)."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    cdn.grant(board.pk)
    after, until = request.GET.get("after") or None, request.GET.get("until") or None
    # Both: a "More photos" page (opened in its tab) scrolled further: the tiles after ``after`` down to ``until``.
    page = board_tiles_page(board=board, user=request.user, role=role, after=after, until=until)
    return render(
        request,
        "boards/board_detail.html",
        {
            "board": board,
            "role": role,
            "tiles": _tiles(page.images),
            "page": page,
            "paged": bool(after),
            "can_upload": can_upload(role),
            "is_owner": role == Role.OWNER,
            # Each member's picture and name in the same query as the list (accounts.avatars reads them from the row).
            "members": board_members(board=board).select_related("user__avatar", "user__profile") if role else [],
            "member_form": MemberForm(),
        },
    )


@api_view("GET", scope="read")
def board_tiles(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET /boards/<id>/tiles?after=<position>``: the next page of tiles as HTML, with the position after it
    (``next``, null on the last page). The board's access rules: a stranger to a private board gets a 404."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    cdn.grant(board.pk)
    page = board_tiles_page(board=board, user=request.user, role=role, after=request.GET.get("after") or None)
    html = render_to_string("boards/_tiles.html", {"tiles": _tiles(page.images)}, request=request)
    return JsonResponse({"html": html, "next": page.next_cursor, "last": page.last_cursor})
