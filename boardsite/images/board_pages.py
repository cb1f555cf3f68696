"""The pages that show boards with their photos: the home page and the board lists (cards with covers and counts),
a board's page and its tiles. Here, in images, because they read photos; the board forms and the pages that only
change a board or its members are ``boards.views``."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from boardsite.boards.models import Board, Role
from boardsite.boards.selectors import (
    HOME_LIST_MAX,
    board_get_visible,
    board_list_owned,
    board_list_public,
    board_list_shared_with,
    board_members,
    can_upload,
    ownership_offer_open,
)
from boardsite.boards.views import MemberForm
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.views import api_view, json_body, page_errors
from boardsite.images import bulk, cdn
from boardsite.images.models import BatchAction, PhotoBatch
from boardsite.images.selectors import TILE_VARIANTS, board_cards, board_tiles_page, image_picture
from boardsite.invitations.services import invitation_list_pending, invitation_list_received


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
            "invitations_received": len(invitation_list_received(user=user)),
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
            "offer": ownership_offer_open(board=board) if role else None,
            "member_form": MemberForm(),
            # Owners only: the list shows addresses (boardsite/invitations).
            "invitations": invitation_list_pending(board=board, user=request.user) if role == Role.OWNER else [],
            "invite_roles": Role.choices,
            **_selection_context(request, board, role),
            # Without script, a confirmed delete or move comes back here with its batch, to offer its Undo.
            "undo": bulk.undo_offer(user=request.user, batch_id=request.GET.get("batch")),
        },
    )


def _selection_context(request: HttpRequest, board: Board, role: str | None) -> dict:
    """What the tiles' checkboxes and the selection bar need. Which checkboxes show is only a convenience: the
    services decide what a request may delete or move."""
    user = request.user
    return {
        # Owners and contributors (viewers add nothing, so they have next to nothing of their own to select).
        "can_select": can_upload(role) and user.is_authenticated,
        "select_all": role == Role.OWNER,  # the others may select their own photos (the single delete's rule)
        "select_user": user.pk if user.is_authenticated else None,
        "move_targets": bulk.move_targets(user=user, board=board) if role == Role.OWNER else [],
        "undo_seconds": settings.BULK_UNDO_SECONDS,
    }


@login_required
@require_POST
@page_errors
def board_photos(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /boards/<id>/photos/`` (the page's form, without script): ``action`` (delete or move), the chosen
    ``image`` ids and a ``target`` board. First a confirmation page naming what would happen; with ``confirm`` the
    action itself, then back to the board, which offers its Undo for the window."""
    action, ids, target = request.POST.get("action", ""), request.POST.getlist("image"), request.POST.get("target")
    if not request.POST.get("confirm"):
        selection = bulk.photos_selected(user=request.user, board_id=pk, image_ids=ids, action=action, target_id=target)
        return render(
            request,
            "boards/photos_confirm.html",
            {"selection": selection, "action": action, "board": selection.board, "target": selection.target},
        )
    if action == BatchAction.MOVE:
        batch = bulk.photos_move(user=request.user, board_id=pk, image_ids=ids, target_id=target)
    elif action == BatchAction.DELETE:
        batch = bulk.photos_delete(user=request.user, board_id=pk, image_ids=ids)
    else:  # never a delete by default: a mangled form deletes nothing
        raise Invalid(f"The action is one of: {', '.join(BatchAction.values)}.")
    return redirect(f"{reverse('board-detail', args=[pk])}?batch={batch.pk}")


@login_required
@require_POST
@page_errors
def batch_undo(request: HttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """``POST /batches/<id>/undo/``: undo one's own delete or move within its window, back to the board."""
    batch, _ = bulk.photos_undo(user=request.user, batch_id=batch_id)
    return redirect("board-detail", pk=batch.board_id)


def _batch_payload(batch: PhotoBatch) -> dict:
    return {
        "batch": str(batch.pk),
        "action": batch.action,
        "ids": batch.image_ids,
        "count": len(batch.image_ids),
        "undo_until": batch.undo_until.isoformat(),
        "undo_url": reverse("api-batch-undo", args=[batch.pk]),
        "finish_url": reverse("api-batch-finish", args=[batch.pk]),
    }


@api_view("POST", scope="manage")
def api_board_photos(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /api/boards/<id>/photos`` ``{"action": "delete"|"move", "ids": [...], "target": <board>}``: the
    page's selection (with script) deleted or moved in one request; 201 with the batch and where to undo it."""
    body = json_body(request)
    action, ids = body.get("action"), body.get("ids")
    if action == BatchAction.MOVE:
        batch = bulk.photos_move(user=request.user, board_id=pk, image_ids=ids, target_id=body.get("target"))
    elif action == BatchAction.DELETE:
        batch = bulk.photos_delete(user=request.user, board_id=pk, image_ids=ids)
    else:
        raise Invalid(f"action is one of: {', '.join(BatchAction.values)}.")
    return JsonResponse(_batch_payload(batch), status=201)


@api_view("POST", scope="manage")
def api_batch_undo(request: HttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """``POST /api/batches/<id>/undo``: undo it within its window; how many photos came back."""
    batch, restored = bulk.photos_undo(user=request.user, batch_id=batch_id)
    return JsonResponse({**_batch_payload(batch), "restored": restored})


@api_view("POST", scope="manage")
def api_batch_finish(request: HttpRequest, batch_id: uuid.UUID) -> HttpResponse:
    """``POST /api/batches/<id>/finish``: the page's undo toast closed: delete what is due now rather than at the
    sweep's next run (nothing before the window ends)."""
    return JsonResponse({"deleted": bulk.photos_batch_finish(user=request.user, batch_id=batch_id)})


@api_view("GET", scope="read")
def board_tiles(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET /boards/<id>/tiles?after=<position>``: the next page of tiles as HTML, with the position after it
    (``next``, null on the last page). The board's access rules: a stranger to a private board gets a 404."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    cdn.grant(board.pk)
    page = board_tiles_page(board=board, user=request.user, role=role, after=request.GET.get("after") or None)
    context = {"tiles": _tiles(page.images), **_selection_context(request, board, role)}
    html = render_to_string("boards/_tiles.html", context, request=request)
    return JsonResponse({"html": html, "next": page.next_cursor, "last": page.last_cursor})
