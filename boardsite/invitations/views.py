from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from boardsite.accounts.emails import normalize_address
from boardsite.accounts.throttle import (
    in_words,
    rate_wait,
    remember_device,
    retry_after,
    signup_throttled_message,
    signup_wait,
)
from boardsite.accounts.views import BACKEND, pad_to
from boardsite.boards.models import role_phrase
from boardsite.boards.selectors import board_get_visible, require_owner
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.views import page_errors
from boardsite.invitations import services
from boardsite.invitations.forms import InvitationSignupForm, InviteForm

THROTTLED = "Too many invitations from you, or from you to this address. Try again in {wait}."


def _invite_wait(request: HttpRequest, address: str) -> int | None:
    """Count one invitation per owner, then per owner and address (one mailbox, however many boards). Not per address
    from every owner: anyone could then use up an address's invitations and keep the people it knows from inviting
    it (found by the outside review), and learn that others had invited it."""
    if wait := rate_wait(
        request, group="invitations.owner", key=f"user:{request.user.pk}", rate=settings.INVITE_RATE_OWNER
    ):
        return wait  # over already: no counter per address (made-up addresses would only fill the cache)
    mailbox = normalize_address(address).lower()[:254]  # bücher.example and xn--bcher-kva.example: one mailbox
    key = f"user:{request.user.pk}:{mailbox}"
    return rate_wait(request, group="invitations.address", key=key, rate=settings.INVITE_RATE_ADDRESS)


@login_required
@require_POST
@page_errors
def invitation_create(request: HttpRequest, pk: int) -> HttpResponse:
    board, role = board_get_visible(board_id=pk, user=request.user)
    require_owner(role)  # before counting: nobody else uses up an owner's or an address's invitations
    back = redirect(reverse("board-detail", args=[board.pk]) + "#members")
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_sentence())
        return back
    address = form.cleaned_data["email"].strip()
    if wait := _invite_wait(request, address):
        messages.error(request, THROTTLED.format(wait=in_words(wait)))
        return retry_after(back, wait)
    started = time.monotonic()
    try:
        sent = services.invitation_create(
            board=board, user=request.user, address=address, role=form.cleaned_data["role"]
        )
    except Invalid as exc:
        messages.error(request, exc.message)
        return back
    # Whoever holds the address, or nobody: the same sentence, after the same time.
    if settings.INVITATION_MIN_SECONDS > 0:
        pad_to(started, settings.INVITATION_MIN_SECONDS, what="an invitation")
    messages.success(request, f"Invitation sent to {sent.invitation.email}.")
    return back


@login_required
@require_POST
@page_errors
def invitation_revoke(request: HttpRequest, pk: int, invitation_id: int) -> HttpResponse:
    board, _ = board_get_visible(board_id=pk, user=request.user)
    try:
        invitation = services.invitation_revoke(board=board, user=request.user, invitation_id=invitation_id)
    except NotFound as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"The invitation to {invitation.email} is withdrawn: its link no longer works.")
    return redirect(reverse("board-detail", args=[board.pk]) + "#members")


def invitation_open(request: HttpRequest, token: str) -> HttpResponse:
    """The mailed link. GET shows the invitation and, signed out, a sign-up form for the invited address (or a way
    to log in); signed in, a button to accept into the current account. Nothing is accepted without a POST, so mail
    scanners that fetch links accept nothing, and nobody joins a board with the account they happen to be logged in
    with without seeing which one."""
    try:
        invitation = services.invitation_check(token=token)
    except Invalid as exc:
        return render(request, "invitations/invitation.html", {"error": exc.message}, status=400)
    login_url = f"{reverse('login')}?next={request.path}"
    context = {"invitation": invitation, "login_url": login_url, "logout_url": reverse("logout")}
    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                accepted = services.invitation_accept(token=token, user=request.user)
            except Invalid as exc:
                return render(request, "invitations/invitation.html", {"error": exc.message}, status=400)
            return _to_board(request, accepted)
        return render(request, "invitations/invitation.html", context)
    if request.method == "POST" and (wait := signup_wait(request)):
        typed = {field: request.POST.get(field, "") for field in ("username", "display_name")}  # never the passwords
        context |= {"form": InvitationSignupForm(initial=typed), "throttled": signup_throttled_message(wait)}
        return retry_after(render(request, "invitations/invitation.html", context, status=429), wait)
    form = InvitationSignupForm(request.POST or None)
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        try:
            accepted = services.invitation_signup(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                display_name=form.cleaned_data["display_name"],
            )
        except Invalid as exc:
            form.add_error(None, exc.message)
        except ValidationError as exc:
            for field, errors in getattr(exc, "message_dict", {"password": exc.messages}).items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            user = accepted.membership.user
            login(request, user, backend=BACKEND)
            return remember_device(_to_board(request, accepted), request=request, username=user.get_username())
    status = 400 if request.method == "POST" else 200
    return render(request, "invitations/invitation.html", context, status=status)


def _to_board(request: HttpRequest, accepted: services.Accepted) -> HttpResponse:
    board = accepted.invitation.board
    if accepted.joined:
        messages.success(
            request, f"Welcome to “{board.title}”: you are now {role_phrase(accepted.membership.role)} of this board."
        )
    else:
        messages.info(request, f"You were a member of “{board.title}” already, as {accepted.membership.role}.")
    return redirect("board-detail", pk=board.pk)


@login_required
def invitations_received(request: HttpRequest) -> HttpResponse:
    """The invitations of one's confirmed address, each with an Accept button (a POST)."""
    invitations = services.invitation_list_received(user=request.user)
    return render(request, "invitations/received.html", {"invitations": invitations})


@login_required
@require_POST
@page_errors
def invitation_accept_received(request: HttpRequest, invitation_id: int) -> HttpResponse:
    try:
        accepted = services.invitation_accept_received(invitation_id=invitation_id, user=request.user)
    except Invalid as exc:
        messages.error(request, exc.message)
        return redirect("invitations-received")
    return _to_board(request, accepted)
