"""The control room's pages: staff only (anyone else gets 404), every change a POST with CSRF and an audit row."""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from boardsite.control import charts, costs, deadletters, shadow, stats, verdict
from boardsite.control.models import Action
from boardsite.core import routing
from boardsite.core.errors import Invalid
from boardsite.core.models import InvokeEvent, RouteChange
from boardsite.images.models import Image, Status
from boardsite.images.selectors import presigned_get
from boardsite.images.services import image_process_again
from offload import registry

WINDOWS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(days=1), "7d": dt.timedelta(days=7)}


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anyone but staff gets 404, before anything else is checked: a CSRF failure (a 403) first would tell a stranger
    that the address exists. CSRF is then checked here, as the middleware would have."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise Http404  # the room's existence is not advertised
        refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view, args, kwargs)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return wrapped


def _job(name: str) -> registry.Job:
    try:
        return registry.get(name)
    except KeyError:
        raise Http404 from None


@staff_only
def overview(request: HttpRequest) -> HttpResponse:
    since = timezone.now() - WINDOWS["24h"]
    rows = []
    for job in registry.JOBS.values():
        numbers = [s for s in stats.job_stats(job.name, since).values() if s.runs]
        rows.append({"job": job, "route": routing.route(job.name), "stats": numbers, "routable": routing.routable(job)})
    return render(request, "control/overview.html", {"rows": rows, "changes": RouteChange.objects.all()[:20]})


@staff_only
def job_page(request: HttpRequest, name: str) -> HttpResponse:
    job = _job(name)
    window, free_tier = _choices(request)
    now = timezone.now()
    since = now - WINDOWS[window]
    route = routing.route(name)
    numbers = stats.job_stats(name, since)
    ran = [r for r, s in numbers.items() if s.runs]
    points = {runtime: stats.series(name, runtime, since, now) for runtime in ran}
    ends = (f"{window} ago", "now")
    chart_list = [
        charts.line_chart("p95 duration", "ms", {r: [p.p95_ms for p in ps] for r, ps in points.items()}, ends),
        charts.line_chart(
            "failed runs", "%", {r: [p.failure_rate if p.runs else None for p in ps] for r, ps in points.items()}, ends
        ),
        charts.line_chart("p95 queue wait", "ms", {r: [p.wait_p95_ms for p in ps] for r, ps in points.items()}, ends),
        charts.line_chart("runs", "", {r: [float(p.runs) for p in ps] for r, ps in points.items()}, ends),
    ]
    priced = _costs(name, since, free_tier, now)
    context = {
        "job": job,
        "route": route,
        "routable": routing.routable(job),
        "pinned": routing.pinned(name),
        "unit_shape": routing.unit_shape(job),
        "modes": registry.MODES,
        "numbers": [numbers[r] for r in registry.MODES],
        "charts": chart_list,
        "window": window,
        "windows": list(WINDOWS),
        **priced,
        "free_tier": free_tier,
        "costs_query": urlencode({"window": window, "free_tier": int(free_tier)}),
        "prices_date": settings.PRICES_DATE,
        "verdict": verdict.verdict(name, _compared_with(job, route), now=now),
        "changes": RouteChange.objects.filter(job=name)[:50],
        "steps_text": ",".join(f"{s / 100:g}" for s in route.steps),
        "share_percent": f"{route.share / 100:g}",
        "shadow_percent": f"{route.shadow_share / 100:g}",
        "shadow": _shadow_view(job, since),
        "shadow_keep_hours": shadow.SHADOW_KEEP_HOURS,
        "invoke_events": dict(
            InvokeEvent.objects.filter(job=name, at__gte=since).values_list("kind").annotate(n=Count("pk"))
        ),
        "fallback": settings.OFFLOAD_FALLBACKS.get(name),
    }
    return render(request, "control/job.html", context)


@staff_only
@require_POST
def route_change(request: HttpRequest, name: str) -> HttpResponse:
    _job(name)
    post = request.POST
    current = routing.route(name)
    dropped = False
    try:
        change: dict[str, Any] = {}
        if post.get("action") == "back":
            change = {"share": 0, "steps": []}
        else:
            if post.get("baseline"):
                change["baseline"] = post["baseline"]
            if post.get("canary"):
                change["canary"] = post["canary"]
            if post.get("steps", "").strip():
                change["steps"] = [routing.parse_share(s) for s in post["steps"].split(",")]
            elif post.get("share", "").strip():
                # The field shows the current share: only a new one is a change (which replaces the steps to come).
                if (share := routing.parse_share(post["share"])) != current.share:
                    change["share"], change["steps"] = share, []
                    dropped = bool(current.steps)
            if post.get("bake", "").strip():
                try:
                    change["bake_seconds"] = int(post["bake"])
                except ValueError:
                    raise routing.RouteError("the bake time is a whole number of seconds") from None
            if post.get("shadow_share", "").strip():
                change["shadow_share"] = routing.parse_share(post["shadow_share"])
            if post.get("shadow_cap", "").strip():
                try:
                    change["shadow_daily_cap"] = int(post["shadow_cap"])
                except ValueError:
                    raise routing.RouteError("the daily cap of shadow runs is a whole number") from None
            if post.get("force_key", "").strip():
                runtime = post.get("force_runtime") or None
                change["force"] = {post["force_key"].strip(): None if runtime == "follow" else runtime}
        route = routing.route_set(
            job=name, by=request.user.get_username(), source="page", why=post.get("why", ""), **change
        )
    except routing.RouteError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{name}: {route.describe()}" + ("; the steps still to come were dropped" * dropped))
    return redirect("control-job", name=name)


@staff_only
@require_POST
def alert_ack(request: HttpRequest, pk: int) -> HttpResponse:
    RouteChange.objects.filter(pk=pk, alert=True, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=request.user.get_username()
    )
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if not (safe and target.startswith("/")):
        target = reverse("control")  # only back to a page of this site, by its path
    return redirect(target)


@staff_only
def costs_csv(request: HttpRequest, name: str) -> HttpResponse:
    """The job page's cost table, with the page's choices (``window``: the runs a run's cost is taken from;
    ``free_tier=0``: the free tier left out) and the break-even volumes, each row saying which it counted."""
    _job(name)
    window, free_tier = _choices(request)
    now = timezone.now()
    priced = _costs(name, now - WINDOWS[window], free_tier, now)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-costs.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "job",
            "runs_a_month",
            "lambda_x86_64_usd",
            "lambda_arm64_usd",
            "celery_usd",
            "celery_workers",
            "break_even_x86_64_runs_a_month",
            "break_even_arm64_runs_a_month",
            "free_tier",
            "window",
            "prices_of",
        ]
    )
    never = f"never below {costs.BREAK_EVEN_LIMIT}"
    break_even = {arch: never if v is None else v for arch, v in priced["break_even"].items()}
    for row in priced["projection"]:
        writer.writerow(
            [
                name,
                row.runs,
                row.lambda_x86.total,
                row.lambda_arm.total,
                row.celery,
                row.workers,
                break_even["x86_64"],
                break_even["arm64"],
                "counted" if free_tier else "left out",
                window,
                settings.PRICES_DATE,
            ]
        )
    return response


def _choices(request: HttpRequest) -> tuple[str, bool]:
    """The job page's choices, as its links carry them: the window of runs, and whether the free tier counts."""
    window = request.GET.get("window", "24h")
    return (window if window in WINDOWS else "24h"), request.GET.get("free_tier", "1") != "0"


def _costs(name: str, since: dt.datetime, free_tier: bool, now: dt.datetime) -> dict[str, Any]:
    """What the job costs a month (volume: the last 7 days; a run's cost: the runs since ``since``), and from which
    volume Lambda costs more than the fleet: the page and its CSV from the same figures."""
    per_run = stats.per_run(name, since)
    if per_run is None:
        return {"per_run": None, "projection": [], "break_even": {}}
    return {
        "per_run": per_run,
        "projection": costs.project(stats.monthly_volume(name, now=now), per_run, free_tier=free_tier),
        "break_even": {arch: costs.break_even(per_run, arch, free_tier=free_tier) for arch in ("arm64", "x86_64")},
    }


@staff_only
def dead_letters(request: HttpRequest) -> HttpResponse:
    again = Image.objects.filter(
        status=Status.FAILED,
        retryable_until__gt=timezone.now(),
        deleting_until__isnull=True,  # not being deleted
    ).order_by("-created_at")
    return render(
        request,
        "control/dead_letters.html",
        {
            "queues": deadletters.queues(),
            "modes": registry.MODES,
            "actions": Action.objects.all()[:20],
            "photos": again[:50],
        },
    )


@staff_only
@require_POST
def dead_letter_action(request: HttpRequest) -> HttpResponse:
    post, by = request.POST, request.user.get_username()
    try:
        if post.get("action") == "discard":
            deadletters.discard(queue=post.get("queue", ""), message_id=post.get("message_id", ""), by=by)
            messages.success(request, "Discarded.")
        else:
            runtime = post.get("runtime", "")
            deadletters.retry(
                queue=post.get("queue", ""), message_id=post.get("message_id", ""), runtime=runtime, by=by
            )
            messages.success(request, f"Handed to {runtime}.")
    except deadletters.DeadLetterError as exc:
        messages.error(request, str(exc))
    return redirect("control-dead-letters")


@staff_only
def dead_letters_retry_set(request: HttpRequest) -> HttpResponse:
    """GET: what would be retried, and a confirmation; POST (confirmed): retry them at a bounded rate."""
    source = request.POST if request.method == "POST" else request.GET
    queue, error, runtime = source.get("queue", ""), source.get("error", ""), source.get("runtime", "")
    try:
        if runtime not in registry.MODES:  # before the confirmation: never ask to confirm what cannot be done
            raise deadletters.DeadLetterError(f"{runtime!r} is not a runtime; use one of {', '.join(registry.MODES)}")
        letters = deadletters.matching(queue=queue, error=error)
    except deadletters.DeadLetterError as exc:
        messages.error(request, str(exc))
        return redirect("control-dead-letters")
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        done, problems = deadletters.retry_matching(
            queue=queue, error=error, runtime=runtime, by=request.user.get_username()
        )
        report = messages.warning if problems else messages.success
        report(request, f"Retried {done} on {runtime}." + (f" Not retried: {'; '.join(problems)}" if problems else ""))
        return redirect("control-dead-letters")
    context = {
        "queue": queue,
        "error": error,
        "runtime": runtime,
        "letters": letters[: deadletters.RETRY_MAX],
        "more": max(0, len(letters) - deadletters.RETRY_MAX),
        "rate": deadletters.RETRY_RATE,
    }
    return render(request, "control/retry_set.html", context)


def _compared_with(job: registry.Job, route: routing.Route) -> str:
    """The runtime Lambda is weighed against: the route's other one; with none, where the job would otherwise run
    (the site's own view for a job answering requests, which Celery cannot answer; else Celery)."""
    for runtime in (route.baseline, route.canary):
        if runtime != "lambda":
            return runtime
    return "inline" if isinstance(job.trigger, registry.HTTPTrigger) else "celery"


def _shadow_view(job: registry.Job, since: dt.datetime) -> dict[str, Any] | None:
    """The shadow comparison's numbers, and each disagreement's outputs side by side (short-lived URLs)."""
    if job.shadow is None:
        return None
    found = shadow.summary(job.name, since=since)
    found["disagreements"] = [
        {
            "pair": pair,
            "variants": [
                {**v, "primary_url": presigned_get(v["primary_key"]), "shadow_url": presigned_get(v["shadow_key"])}
                for v in pair.comparison.get("variants", [])
                if not pair.outputs_deleted
            ],
        }
        for pair in found["disagreements"]
    ]
    return found


@staff_only
@require_POST
def photo_again(request: HttpRequest, pk: str) -> HttpResponse:
    """Process again a photo that failed for a passing reason (its original was kept)."""
    try:
        uuid.UUID(pk)
        image = image_process_again(image_id=pk)
    except ValueError:
        messages.error(request, "That is not a photo's id.")
    except Invalid as exc:
        messages.error(request, exc.message)
    else:
        job = registry.s3_job_for(image.original_key)
        Action.objects.create(
            by=request.user.get_username(),
            action="process_again",
            job=job.name if job else "",
            detail={"image": str(image.pk), "status": image.status},
        )
        messages.success(request, f"{image.filename}: {image.status}.")
    return redirect("control-dead-letters")
