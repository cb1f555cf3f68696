from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from boardsite.boards import services
from boardsite.boards.models import Board, Order, Role, Visibility
from boardsite.boards.selectors import (
    HOME_LIST_MAX,
    board_cards,
    board_get_visible,
    board_list_owned,
    board_list_public,
    board_list_shared_with,
    board_members,
    can_upload,
    require_owner,
)
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.text import visible_text_error
from boardsite.core.views import api_view, page_errors
from boardsite.images import cdn
from boardsite.images.selectors import TILE_VARIANTS, board_tiles_page, image_picture


class BoardForm(forms.Form):
    title = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, required=False)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)
    # Optional: a form (or a script) that leaves it out keeps the board's order (a new board: newest added first).
    order = forms.ChoiceField(choices=Order.choices, initial=Order.ADDED, label="Show photos", required=False)


class MemberForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        error_messages={
            "required": "Give the username of the person to add.",
            "max_length": "No username is that long: usernames have at most %(limit_value)d characters "
            "(this one has %(show_value)d).",
        },
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.CONTRIBUTOR,
        widget=forms.Select(attrs={"aria-label": "Role"}),
        error_messages={
            "required": "Choose a role for the new member.",
            "invalid_choice": "Choose a role: owner, contributor or viewer.",
        },
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # NUL gets the sentence naming the character (clean_username), like every other hidden character.
        field = self.fields["username"]
        field.validators = [v for v in field.validators if not isinstance(v, ProhibitNullCharactersValidator)]

    def clean_username(self) -> str:
        name = self.cleaned_data["username"]
        if error := visible_text_error(name, field="username", strict=True):
            raise ValidationError(error)
        return name

    def error_sentence(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)


@login_required
def board_create(request: HttpRequest) -> HttpResponse:
    form = BoardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            board = services.board_create(user=request.user, **form.cleaned_data)
        except Invalid as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("board-detail", pk=board.pk)
    return render(request, "boards/board_form.html", {"form": form, "creating": True})


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
            "members": board_members(board=board) if role else [],
            "member_form": MemberForm(),
        },
    )


@api_view("GET")
def board_tiles(request: HttpRequest, pk: int) -> HttpResponse:
    """``GET /boards/<id>/tiles?after=<position>``: the next page of tiles as HTML, with the position after it
    (``next``, null on the last page). The board's access rules: a stranger to a private board gets a 404."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    cdn.grant(board.pk)
    page = board_tiles_page(board=board, user=request.user, role=role, after=request.GET.get("after") or None)
    html = render_to_string("boards/_tiles.html", {"tiles": _tiles(page.images)}, request=request)
    return JsonResponse({"html": html, "next": page.next_cursor, "last": page.last_cursor})


@login_required
@page_errors
def board_edit(request: HttpRequest, pk: int) -> HttpResponse:
    board, role = board_get_visible(board_id=pk, user=request.user)
    require_owner(role)
    initial = {
        "title": board.title,
        "description": board.description,
        "visibility": board.visibility,
        "order": board.order,
    }
    form = BoardForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.board_update(board=board, user=request.user, **form.cleaned_data)
        except Invalid as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("board-detail", pk=board.pk)
    return render(request, "boards/board_form.html", {"form": form, "board": board})


@login_required
@page_errors
def board_delete(request: HttpRequest, pk: int) -> HttpResponse:
    board, role = board_get_visible(board_id=pk, user=request.user)
    require_owner(role)
    if request.method == "POST":
        title = board.title
        services.board_delete(board=board, user=request.user)
        messages.success(request, f"Deleted the board “{title}” and its photos.")
        return redirect("home")
    return render(request, "boards/board_confirm_delete.html", {"board": board})


@login_required
@require_POST
@page_errors
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    board, _ = board_get_visible(board_id=pk, user=request.user)
    form = MemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_sentence())
    else:
        try:
            m = services.board_member_add(board=board, user=request.user, **form.cleaned_data)
            messages.success(request, f"{m.user.username} is now {m.role} of this board.")
        except (Invalid, NotFound) as exc:
            messages.error(request, exc.message)
    return redirect("board-detail", pk=board.pk)


@login_required
@require_POST
@page_errors
def member_remove(request: HttpRequest, pk: int) -> HttpResponse:
    board, _ = board_get_visible(board_id=pk, user=request.user)
    try:
        services.board_member_remove(board=board, user=request.user, username=request.POST.get("username", ""))
        messages.success(request, "Member removed.")
    except (Invalid, NotFound) as exc:
        messages.error(request, exc.message)
    return redirect("board-detail", pk=board.pk)
