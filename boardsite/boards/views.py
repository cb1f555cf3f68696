from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from boardsite.boards import services
from boardsite.boards.models import Order, Role, Visibility, role_phrase
from boardsite.boards.selectors import board_get_visible, require_owner
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.text import visible_text_error
from boardsite.core.views import page_errors

# The pages that show a board's photos (home, the board lists, a board and its tiles) are images.board_pages:
# they read images, which sits above boards.


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
            messages.success(request, f"{m.user.username} is now {role_phrase(m.role)} of this board.")
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


@login_required
@page_errors
def board_leave(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what leaving means, and a button; POST: leave (the service refuses the only owner, with what to do)."""
    board, role = board_get_visible(board_id=pk, user=request.user)
    if role is None:
        raise NotFound("You are not a member of this board.")
    if request.method == "POST":
        try:
            services.board_leave(board=board, user=request.user)
        except Invalid as exc:
            messages.error(request, exc.message)
            return redirect("board-detail", pk=board.pk)
        messages.success(request, f"You left “{board.title}”.")
        return redirect("home")
    return render(request, "boards/board_confirm_leave.html", {"board": board, "role": role})


@login_required
@require_POST
@page_errors
def ownership_offer(request: HttpRequest, pk: int) -> HttpResponse:
    board, _ = board_get_visible(board_id=pk, user=request.user)
    try:
        offer = services.ownership_offer(board=board, user=request.user, username=request.POST.get("username", ""))
        messages.success(
            request,
            f"Offered the board to {offer.offered_to.get_username()}. When they accept, they become its owner "
            "and you a contributor.",
        )
    except (Invalid, NotFound) as exc:
        messages.error(request, exc.message)
    return redirect("board-detail", pk=board.pk)


@login_required
@require_POST
@page_errors
def ownership_answer(request: HttpRequest, pk: int) -> HttpResponse:
    """The offer's recipient accepts or declines it (``answer``); an owner withdraws it (``answer=withdraw``)."""
    board, _ = board_get_visible(board_id=pk, user=request.user)
    answer = request.POST.get("answer", "")
    try:
        if answer == "accept":
            services.ownership_accept(board=board, user=request.user)
            messages.success(request, f"You now own “{board.title}”.")
        elif answer == "decline":
            services.ownership_decline(board=board, user=request.user)
            messages.success(request, "Declined the offer.")
        elif answer == "withdraw":
            services.ownership_withdraw(board=board, user=request.user)
            messages.success(request, "Withdrew the offer.")
        else:
            messages.error(request, "Choose accept, decline or withdraw.")
    except (Invalid, NotFound) as exc:
        messages.error(request, exc.message)
    return redirect("board-detail", pk=board.pk)
