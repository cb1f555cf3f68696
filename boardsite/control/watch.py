"""The ``watch_routes`` job (every minute): the automatic rollback, the steps of a route, and old run records.

For each job with work on a canary runtime it compares the canary's runs with the baseline's over the last
``ROLLBACK_WINDOW_SECONDS`` (the canary's since its current move began, if later: ``JobRoute.moved_at``). Once the
canary has ``ROLLBACK_MIN_RUNS`` runs there, an error rate more than ``ROLLBACK_ERROR_POINTS`` points above the
baseline's, or a p95 duration more than ``ROLLBACK_P95_FACTOR`` times the baseline's (over the job's
``p95_budget_ms``, for a job whose runtimes do different work by design), sets its share to 0 and drops its remaining
steps, records why (a ``RouteChange`` by "watch", flagged as an alert: every staff page shows it until someone
acknowledges it). A healthy route whose current step has baked ``bake_seconds`` moves to its next step.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from boardsite import secrets
from boardsite.control import shadow, stats
from boardsite.core import routing
from boardsite.core.models import JobRoute, JobRun, ShadowPair
from offload import registry

log = logging.getLogger(__name__)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    secrets.require()  # a schedule bypasses the middleware
    return watch()


def verdict(job: str, canary: str, baseline: str, now: dt.datetime, moved_at: dt.datetime | None = None) -> str | None:
    """Why the canary must go back (None: it may stay). The canary is judged on its runs of the current move only
    (since ``moved_at``, within the window): a move started again after a rollback starts with no evidence."""
    since = now - dt.timedelta(seconds=settings.ROLLBACK_WINDOW_SECONDS)
    canary_since = max(since, moved_at) if moved_at else since
    new = stats.runtime_stats(job, canary, canary_since)
    old = stats.runtime_stats(job, baseline, since)
    if new.runs < settings.ROLLBACK_MIN_RUNS:
        return None
    window = f"over the last {settings.ROLLBACK_WINDOW_SECONDS // 60} minutes"
    if canary_since > since:
        window += f" ({canary} since this move began, {canary_since:%H:%M:%S} UTC)"
    if new.failure_rate > old.failure_rate + settings.ROLLBACK_ERROR_POINTS:
        ran = f"{old.failure_rate:.1f} % of {old.runs}" if old.runs else "no runs (counted as 0 %)"
        return (
            f"automatic rollback: {canary} failed {new.failure_rate:.1f} % of {new.runs} runs, {baseline} "
            f"{ran} {window} (more than {settings.ROLLBACK_ERROR_POINTS:g} points)"
        )
    budget = registry.get(job).p95_budget_ms
    if budget is not None:
        if new.p95_ms and new.p95_ms > budget:
            return (
                f"automatic rollback: {canary}'s p95 was {new.p95_ms:.0f} ms {window}, over {job}'s budget of "
                f"{budget} ms (its runtimes do different work: the budget, not {baseline}'s p95, is the measure)"
            )
        return None
    if old.p95_ms and new.p95_ms and new.p95_ms > settings.ROLLBACK_P95_FACTOR * old.p95_ms:
        return (
            f"automatic rollback: {canary}'s p95 was {new.p95_ms:.0f} ms, {baseline}'s {old.p95_ms:.0f} ms {window} "
            f"(more than {settings.ROLLBACK_P95_FACTOR:g} times)"
        )
    return None


def _watch_route(route: JobRoute, now: dt.datetime) -> str | None:
    """Roll the route back ("back"), move it to its next step ("step"), or leave it (None)."""
    if why := verdict(route.job, route.canary, route.baseline, now, route.moved_at):
        # Shadow copies stop too: nothing more goes to the runtime that failed until a person sends it again.
        routing.route_set(
            job=route.job,
            by="watch",
            source="watch",
            why=why,
            share=0,
            steps=[],
            shadow_share=0,
            alert=True,
            now=now,
        )
        log.warning("%s: %s", route.job, why)
        return "back"
    baked = route.step_started_at and now >= route.step_started_at + dt.timedelta(seconds=route.bake_seconds)
    if route.steps and baked:
        following = list(route.steps)
        why = f"step: {route.share / 100:g} % baked {route.bake_seconds} s without a rollback"
        routing.route_set(
            job=route.job, by="watch", source="watch", why=why, share=following[0], steps=following[1:], now=now
        )
        return "step"
    return None


def watch(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    rolled_back, advanced = [], []
    for route in JobRoute.objects.filter(share__gt=0).exclude(canary=F("baseline")):  # a canary moves work
        if routing.pinned(route.job):
            continue
        try:
            moved = _watch_route(route, now)
        except Exception:  # one route's trouble must not stop the watch over the others
            log.exception("watching the route of %s failed", route.job)
            continue
        (rolled_back if moved == "back" else advanced if moved == "step" else []).append(route.job)
    compared = shadow.compare_waiting(now=now)
    expired = shadow.expire(now=now)
    kept_from = now - dt.timedelta(days=settings.RUNS_KEEP_DAYS)
    pruned, _ = JobRun.objects.filter(started_at__lt=kept_from).delete()
    ShadowPair.objects.filter(created_at__lt=kept_from).delete()
    return {
        "rolled_back": rolled_back,
        "advanced": advanced,
        "compared": compared,
        "expired": expired,
        "pruned": pruned,
    }
