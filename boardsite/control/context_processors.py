from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def alerts(request: HttpRequest) -> dict[str, Any]:
    """Automatic rollbacks no staff member acknowledged yet: shown on every page to staff (one query, staff only)."""
    user = getattr(request, "user", None)
    if not (user is not None and user.is_authenticated and user.is_staff):
        return {}
    from boardsite.core.models import RouteChange

    return {"control_alerts": list(RouteChange.objects.filter(alert=True, acknowledged_at__isnull=True)[:5])}
