"""Is a job ready to move to Lambda? A verdict a person can act on, from the last day's runs and the costs.

Each check says what it found; the job is "ready to move" when every check passes:

- evidence: at least ``READY_MIN_RUNS`` runs on Lambda (a canary share) in the window;
- errors: Lambda's failure rate at most ``READY_ERROR_POINTS`` points above the baseline's;
- latency: Lambda's p95 duration at most ``READY_P95_FACTOR`` times the baseline's (within the job's
  ``p95_budget_ms`` for a job whose runtimes do different work by design);
- cost: Lambda (the cheaper architecture, the free tier left out) at today's volume costs no more than the Celery
  fleet the job needs at that volume.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from boardsite.control import costs, stats
from offload import registry

WINDOW = dt.timedelta(days=1)
READY_MIN_RUNS = 100
READY_ERROR_POINTS = 1.0
READY_P95_FACTOR = 1.5


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: not enough data to say
    found: str


@dataclass(frozen=True)
class Verdict:
    ready: bool
    summary: str
    checks: list[Check]


def verdict(job: str, baseline: str, *, now: dt.datetime | None = None) -> Verdict:
    now = now or timezone.now()
    since = now - WINDOW
    canary = stats.runtime_stats(job, "lambda", since)
    base = stats.runtime_stats(job, baseline, since) if baseline != "lambda" else stats.RuntimeStats(baseline)
    checks = [Check("evidence", canary.runs >= READY_MIN_RUNS, f"{canary.runs} runs on Lambda in the last day")]
    both = f"needs runs on both Lambda and {baseline}"
    if canary.runs and base.runs:
        delta = canary.failure_rate - base.failure_rate
        checks.append(
            Check(
                "errors",
                delta <= READY_ERROR_POINTS,
                f"Lambda {canary.failure_rate:.1f} % failed, {baseline} {base.failure_rate:.1f} % "
                f"({delta:+.1f} points)",
            )
        )
    else:
        checks.append(Check("errors", None, both))
    budget = registry.get(job).p95_budget_ms
    if budget is not None:  # runtimes that do different work by design: held to the job's budget, not a ratio
        if canary.p95_ms is None:
            checks.append(Check("latency", None, "needs successful runs on Lambda"))
        else:
            other = f", {base.p95_ms:.0f} ms on {baseline}" if base.p95_ms else ""
            found = f"p95 {canary.p95_ms:.0f} ms on Lambda (budget {budget} ms){other}"
            checks.append(Check("latency", canary.p95_ms <= budget, found))
    elif canary.p95_ms and base.p95_ms:
        ratio = canary.p95_ms / base.p95_ms
        found = f"p95 {canary.p95_ms:.0f} ms on Lambda, {base.p95_ms:.0f} ms on {baseline} ({ratio:.2f}x)"
        checks.append(Check("latency", ratio <= READY_P95_FACTOR, found))
    else:
        checks.append(Check("latency", None, both))
    per_run = stats.per_run(job, since)
    if per_run is None:
        checks.append(Check("cost", None, "no runs to price"))
    else:
        volume = stats.monthly_volume(job, now=now)
        cheaper = min(
            (costs.lambda_cost(volume, per_run, arch, free_tier=False) for arch in ("arm64", "x86_64")),
            key=lambda c: c.total,
        )
        fleet = costs.celery_cost(volume, per_run)
        checks.append(
            Check(
                "cost",
                cheaper.total <= fleet,
                f"${cheaper.total} a month on Lambda ({cheaper.architecture}), ${fleet} for the fleet, "
                f"at {volume:,} runs a month",
            )
        )
    ready = all(c.passed for c in checks)
    failing = [c.name for c in checks if c.passed is False]
    unknown = [c.name for c in checks if c.passed is None]
    if ready:
        summary = "ready to move"
    elif failing:
        summary = "not ready: " + ", ".join(failing)
    else:
        summary = "not enough data yet: " + ", ".join(unknown)
    return Verdict(ready, summary, checks)
