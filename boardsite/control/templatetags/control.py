from __future__ import annotations

from typing import Any

from django import template

from boardsite.core import routing

register = template.Library()


@register.filter
def share(buckets: Any) -> str:
    """10,000 buckets -> "100 %", 50 -> "0.5 %"."""
    try:
        return f"{int(buckets) / 100:g} %"
    except (TypeError, ValueError):
        return ""


@register.filter
def shares(values: Any) -> str:
    return " → ".join(share(v) for v in values or [])


@register.filter
def route_text(state: Any) -> str:
    """A route as a change recorded it (before or after), whole: ``routing.audit_text``."""
    return routing.audit_text(state if isinstance(state, dict) else None)
