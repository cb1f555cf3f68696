from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from boardsite.accounts.throttle import client_address, rate_wait, retry_after
from boardsite.core import jobs
from boardsite.core.errors import ApplicationError, Invalid
from boardsite.core.text import VisibleText
from boardsite.core.views import api_view, json_body, page_errors
from boardsite.images import cdn, grants, services
from boardsite.images.models import Image, Status
from boardsite.images.selectors import (
    PAGE_VARIANTS,
    STATUS_BATCH_MAX,
    STATUS_VERIFY_MAX,
    image_get_visible,
    image_neighbours,
    image_payload,
    image_picture,
    image_tile_payload,
    images_visible,
)


class CaptionForm(forms.Form):
    caption = forms.CharField(
        max_length=500,
        required=False,
        validators=[VisibleText("caption")],
        widget=forms.TextInput(attrs={"placeholder": "Write a caption", "aria-label": "Caption"}),
    )


@api_view("POST", scope="upload")
def api_uploads(request: HttpRequest) -> HttpResponse:
    """``POST /api/uploads``: an upload ticket for one file (see README, "Upload API")."""
    body = json_body(request)
    if wait := ticket_wait(request):
        response = JsonResponse({"error": f"Too many upload requests; try again in {wait} s."}, status=429)
        return retry_after(response, wait)

    def issue() -> tuple[Image, dict]:
        return services.image_upload_start(
            user=request.user,
            board_id=body.get("board"),
            filename=body.get("filename"),
            content_type=body.get("content_type"),
            size=body.get("size"),
        )

    try:
        # issue_upload_ticket's inline runtime: measured like its function's runs (the control room compares them)
        image, ticket = jobs.answer(grants.JOB, issue, refusals=(ApplicationError,))
    except ApplicationError as exc:
        if not getattr(exc, "quota", False):  # the function sees no quotas: nothing to compare
            grants.shadow_ticket(user=request.user, body=body, status=exc.status, answer={"error": exc.message})
        raise
    grants.shadow_ticket(user=request.user, body=body, status=201, answer={})
    return JsonResponse(
        {
            "image": {
                "id": str(image.id),
                "status": image.status,
                "status_url": reverse("api-image", args=[image.id]),
                "complete_url": reverse("api-image-complete", args=[image.id]),
                "abandon_url": reverse("api-image-abandon", args=[image.id]),
            },
            "upload": ticket,
        },
        status=201,
    )


@api_view("POST", scope="upload")
def api_upload_grants(request: HttpRequest) -> HttpResponse:
    """``POST /api/upload-grants`` ``{"board", "files", "bytes"}``: where to ask for this batch's upload tickets (the
    site, or the upload-ticket function with a signed grant: ``boardsite/images/grants.py``)."""
    body = json_body(request)
    if wait := ticket_wait(request):  # grants count with tickets: one script cannot ask for them without end either
        response = JsonResponse({"error": f"Too many upload requests; try again in {wait} s."}, status=429)
        return retry_after(response, wait)
    answer = grants.grant_issue(
        user=request.user, board_id=body.get("board"), files=body.get("files"), size=body.get("bytes")
    )
    return JsonResponse(answer, status=201 if answer["grant"] else 200)


@api_view("GET", "DELETE", scope={"GET": "read", "DELETE": "manage"})
def api_image(request: HttpRequest, pk: str) -> HttpResponse:
    """``GET /api/images/<id>``: one photo; ``DELETE``: delete it (its uploader or a board owner), 204."""
    if request.method == "DELETE":
        services.image_delete(user=request.user, image_id=pk)
        return HttpResponse(status=204)
    image, _ = image_get_visible(image_id=pk, user=request.user)
    cdn.grant(image.board_id)
    return JsonResponse(image_payload(image))


@api_view("GET", scope="read")
def api_images(request: HttpRequest) -> HttpResponse:
    """``GET /api/images?ids=<id>,<id>,…``: the tiles of many images in one request (a board page polling its
    pending tiles). Ids one may not see are listed in ``missing`` exactly like ids that do not exist.

    With ``&verify=1`` (at most ``STATUS_VERIFY_MAX`` ids: a tile whose photo would not load) each ready image also
    says whether its files are in storage: ``"files": "present" | "missing"``, asked of S3, never guessed; at most
    ``STATUS_VERIFY_RATE`` such requests per client address, and each answer kept a short while
    (``STATUS_VERIFY_CACHE_SECONDS``)."""
    ids = [i.strip() for i in request.GET.get("ids", "").split(",") if i.strip()]
    if not ids:
        raise Invalid("Give the images' ids: ?ids=<id>,<id>,…")
    verify = request.GET.get("verify", "").strip().lower() in ("1", "true", "yes")
    if verify and len(ids) > STATUS_VERIFY_MAX:
        raise Invalid(f"At most {STATUS_VERIFY_MAX} ids with verify=1 (each is checked in storage).")
    if len(ids) > STATUS_BATCH_MAX:
        raise Invalid(f"At most {STATUS_BATCH_MAX} ids per request.")
    if verify and (wait := verify_wait(request)):
        response = JsonResponse(
            {"error": f"Too many storage checks from your network; try again in {wait} s."}, status=429
        )
        return retry_after(response, wait)
    images, missing = images_visible(image_ids=ids, user=request.user)
    for board_id in dict.fromkeys(i.board_id for i in images):
        cdn.grant(board_id)
    tiles = []
    for image in images:
        tile = image_tile_payload(image)
        if verify and image.status == Status.READY:
            tile["files"] = services.image_files_state(image)
        tiles.append(tile)
    return JsonResponse({"images": tiles, "missing": missing})


def ticket_wait(request: HttpRequest) -> int | None:
    """Count a ticket asked for by this person (and by this access token): the seconds to wait when over
    ``UPLOAD_TICKET_RATE_USER`` (``UPLOAD_TICKET_RATE_TOKEN``). Nobody signed in: the service refuses."""
    if not request.user.is_authenticated:
        return None
    token = getattr(request, "access_token", None)
    user_rate, token_rate = settings.UPLOAD_TICKET_RATE_USER, settings.UPLOAD_TICKET_RATE_TOKEN
    waits = [rate_wait(request, group="uploads.user", key=str(request.user.pk), rate=user_rate)]
    if token is not None:
        waits.append(rate_wait(request, group="uploads.token", key=str(token.pk), rate=token_rate))
    return max((w for w in waits if w), default=None)


def verify_wait(request: HttpRequest) -> int | None:
    """Count a ``verify=1`` request of this client address: the seconds to wait when over ``STATUS_VERIFY_RATE``."""
    key = client_address(request) or "unknown"
    return rate_wait(request, group="images.verify", key=key, rate=settings.STATUS_VERIFY_RATE)


@api_view("POST", scope="upload")
def api_image_complete(request: HttpRequest, pk: str) -> HttpResponse:
    image = services.image_upload_complete(user=request.user, image_id=pk)
    return JsonResponse(image_payload(image))


@api_view("POST", scope="upload")
def api_image_abandon(request: HttpRequest, pk: str) -> HttpResponse:
    """The browser could not send the file: ``{"reason": "..."}`` ends the image as failed."""
    body = json_body(request)
    image = services.image_upload_abandon(user=request.user, image_id=pk, reason=body.get("reason"))
    return JsonResponse(image_payload(image))


@require_http_methods(["GET", "HEAD", "POST"])
@page_errors
def image_detail(request: HttpRequest, pk: str) -> HttpResponse:
    image, role = image_get_visible(image_id=pk, user=request.user)
    cdn.grant(image.board_id)
    form, status = CaptionForm(initial={"caption": image.caption}), 200
    if request.method == "POST":
        form = CaptionForm(request.POST)
        try:
            # The service decides (who may edit first, then the text); the form only phrases a refusal.
            services.image_caption_update(user=request.user, image_id=pk, caption=request.POST.get("caption", ""))
        except Invalid as exc:
            if form.is_valid():  # the form's sentence names no field ("caption: …"); it sits next to the field
                form.add_error("caption", exc.message)
            status = 400
        else:
            return redirect("image-detail", pk=image.pk)
    picture = image_picture(image, PAGE_VARIANTS, largest_src=True) if image.status == "ready" else None
    newer, older = image_neighbours(image=image, user=request.user, role=role)
    can_edit = request.user.is_authenticated and (role == "owner" or (role and image.uploaded_by_id == request.user.pk))
    return render(
        request,
        "images/image_detail.html",
        {
            "image": image,
            "picture": picture,
            "can_edit": can_edit,
            "can_download_original": image.status == Status.READY
            and services.may_download_original(image, request.user, role),
            "caption_form": form,
            "newer": newer,
            "older": older,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "HEAD"])
@page_errors
def image_original(request: HttpRequest, pk: str) -> HttpResponse:
    """``GET /images/<id>/original``: "Download original" on the image page: a redirect to a link presigned for a
    few minutes (``services.image_original_link`` decides who may: the board's owners and the uploader)."""
    link = services.image_original_link(user=request.user, image_id=pk)
    response = redirect(link["url"])
    response["Cache-Control"] = "no-store"  # the link expires; a cached redirect would outlive it
    return response


@login_required
@require_POST
@page_errors
def image_delete(request: HttpRequest, pk: str) -> HttpResponse:
    board_id = services.image_delete(user=request.user, image_id=pk)
    return redirect("board-detail", pk=board_id)
