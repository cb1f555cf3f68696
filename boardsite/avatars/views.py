"""The profile picture's pages and API: a ticket, completion, abandon and status for the page's script, and a
plain form post (the file through the site) for browsers without it."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from boardsite.accounts.avatars import face
from boardsite.accounts.models import Avatar
from boardsite.avatars import services
from boardsite.core.errors import ApplicationError, NotAuthenticated
from boardsite.core.views import SESSION_ONLY, api_view, json_body
from boardsite.images.views import ticket_wait
from offload import tickets


def _state(request: HttpRequest) -> dict:
    avatar = Avatar.objects.filter(user=request.user).first()
    shown = face(request.user, 128)
    return {
        "state": (avatar.pending_state if avatar and avatar.pending_id else "") or "idle",
        "error": (avatar.error if avatar else "") or None,
        "src": shown.src or None,
    }


@api_view("GET", "POST", scope=SESSION_ONLY)
def api_avatar(request: HttpRequest) -> HttpResponse:
    """``GET /api/avatar``: the upload in flight (``state``), the last refusal, the picture on show.
    ``POST /api/avatar`` ``{"filename", "content_type", "size"}``: a ticket for a new one."""
    if not request.user.is_authenticated:
        raise NotAuthenticated("Log in first.")
    if request.method == "GET":
        return JsonResponse(_state(request))
    body = json_body(request)
    if wait := ticket_wait(request):  # counts with photo tickets: one rate per person
        response = JsonResponse({"error": f"Too many upload requests; try again in {wait} s."}, status=429)
        response["Retry-After"] = str(wait)
        return response
    avatar, ticket = services.avatar_upload_start(
        user=request.user, filename=body.get("filename"), content_type=body.get("content_type"), size=body.get("size")
    )
    return JsonResponse(
        {
            "avatar": {
                "id": str(avatar.pending_id),
                "status_url": reverse("api-avatar"),
                "complete_url": reverse("api-avatar-complete", args=[avatar.pending_id]),
                "abandon_url": reverse("api-avatar-abandon", args=[avatar.pending_id]),
            },
            "upload": ticket,
        },
        status=201,
    )


@api_view("POST", scope=SESSION_ONLY)
def api_avatar_complete(request: HttpRequest, pk: str) -> HttpResponse:
    services.avatar_upload_complete(user=request.user, avatar_id=pk)
    return JsonResponse(_state(request))


@api_view("POST", scope=SESSION_ONLY)
def api_avatar_abandon(request: HttpRequest, pk: str) -> HttpResponse:
    services.avatar_upload_abandon(user=request.user, avatar_id=pk)
    return JsonResponse(_state(request))


class AvatarForm(forms.Form):
    picture = forms.FileField(label="Choose a picture")


# What a form around a file of AVATAR_MAX_BYTES adds at most (the CSRF token, the part headers, a long file name).
FORM_OVERHEAD_BYTES = 16 * 1024


@csrf_exempt  # checked below, once the body's size is known: the CSRF check would read (and spool) the whole body
@login_required
@require_POST
def avatar_upload(request: HttpRequest) -> HttpResponse:
    """Without script: the file comes through the site (capped at ``AVATAR_MAX_BYTES``, well under API Gateway's
    10 MB body limit), is stored as a ticket would store it and goes through the same job. A body larger than that
    is refused by its Content-Length before a byte of it is read (Django's documented pattern for upload limits)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.AVATAR_MAX_BYTES + FORM_OVERHEAD_BYTES:
        limit = tickets.size_text(settings.AVATAR_MAX_BYTES)  # as the ticket says it
        messages.error(request, f"That file is larger than the {limit} a profile picture may have.")
        return redirect(reverse("profile") + "#avatar")
    return _avatar_upload(request)


@csrf_protect
def _avatar_upload(request: HttpRequest) -> HttpResponse:
    form = AvatarForm(request.POST, request.FILES)
    if not form.is_valid():  # none chosen, or an empty file: Django's sentence says which
        messages.error(request, " ".join(form.errors.get("picture", [])) or "Choose a picture to upload.")
        return redirect(reverse("profile") + "#avatar")
    upload = form.cleaned_data["picture"]
    try:
        if upload.size > settings.AVATAR_MAX_BYTES:  # before storing anything: the ticket's check, said the same way
            services.avatar_upload_start(
                user=request.user, filename=upload.name, content_type=upload.content_type, size=upload.size
            )
        services.avatar_upload_file(
            user=request.user, file=upload, filename=upload.name, content_type=upload.content_type, size=upload.size
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("profile") + "#avatar")


@login_required
@require_POST
def avatar_remove(request: HttpRequest) -> HttpResponse:
    services.avatar_remove(user=request.user)
    return redirect(reverse("profile") + "#avatar")
