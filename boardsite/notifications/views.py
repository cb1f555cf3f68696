"""Notification pages: the preferences page, the unsubscribe link every mail carries, and the notifications listed
in the site (the page, mark one read, mark all read)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from boardsite.core.views import page_errors
from boardsite.notifications import selectors, services
from boardsite.notifications.models import MAILED_ELSEWHERE, Delivery, Kind


def _choices(kind: Kind) -> list[tuple[str, str]]:
    if kind == Kind.DIGEST:
        return [(Delivery.IMMEDIATELY.value, "Send me the weekly digest"), (Delivery.OFF.value, "No digest")]
    return [(d.value, d.label) for d in Delivery]


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    """Per kind: mailed straight away, only in the weekly digest, or not mailed (the site lists them all)."""
    if request.method == "POST":
        refused = [
            kind.label
            for kind in Kind
            if request.POST.get(kind.value) is not None and request.POST[kind.value] not in dict(_choices(kind))
        ]
        if refused:
            messages.error(request, f"Nothing was saved: choose one of the offered answers for {', '.join(refused)}.")
            return redirect("notification-preferences")
        for kind in Kind:
            if kind not in MAILED_ELSEWHERE and (chosen := request.POST.get(kind.value)) is not None:
                services.preference_set(user=request.user, kind=kind, delivery=chosen)
        messages.success(request, "Your notification choices are saved.")
        return redirect("notification-preferences")
    current = services.preferences_for(request.user)
    rows = [
        {"kind": kind.value, "label": kind.label, "choices": _choices(kind), "value": current[kind]}
        for kind in Kind
        if kind not in MAILED_ELSEWHERE
    ]
    address = services.mail_address(request.user)
    suppressed = services.is_suppressed(request.user.email) if request.user.email else None
    return render(
        request, "notifications/preferences.html", {"rows": rows, "address": address, "suppressed": suppressed}
    )


# No CSRF token: the link's signature is the authority, and mail providers send RFC 8058's one-click POST
# ("List-Unsubscribe=One-Click") with no cookie or token. Unsubscribing is all it can do, and doing it twice is fine.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page with a button (link scanners that fetch it change nothing). POST: that kind is no longer mailed.
    No log-in needed."""
    try:
        user_id, kind = services.read_unsubscribe_token(token)
    except services.BadUnsubscribeLink as exc:
        return render(request, "notifications/unsubscribe.html", {"error": str(exc)}, status=400)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return render(request, "notifications/unsubscribe.html", {"error": services.UNSUBSCRIBE_INVALID}, status=400)
    context = {"kind_label": Kind(kind).label, "token": token}
    if request.method == "POST":
        services.preference_set(user=user, kind=kind, delivery=Delivery.OFF)
        return render(request, "notifications/unsubscribe.html", {**context, "done": True})
    return render(request, "notifications/unsubscribe.html", context)


# --- in the site ---------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "HEAD"])
def notification_list(request: HttpRequest) -> HttpResponse:
    """The person's notifications, newest first, 20 a page."""
    page = selectors.notification_page(user=request.user, page=request.GET.get("page"))
    pages = list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))
    return render(request, "notifications/list.html", {"page": page, "pages": pages})


@login_required
@require_POST
@page_errors
def notification_read(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark one read and go where it leads (somebody else's: 404, nothing changed)."""
    target = selectors.notification_target(user=request.user, notification_id=pk)
    services.notification_mark_read(user=request.user, notification_id=pk)
    return redirect(target or "notification-list")


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponse:
    marked = services.notifications_mark_all_read(user=request.user)
    if marked:
        messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
    return redirect("notification-list")
