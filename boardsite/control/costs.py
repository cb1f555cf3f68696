"""What a job costs a month on Lambda and on the Celery fleet, at a given volume: the control room's projection.

Lambda (prices: ``settings.LAMBDA_PRICES``, us-east-1 list prices of ``PRICES_DATE``):
    requests   runs x price per request, less the monthly free requests
    compute    GB-s x price per GB-s of the architecture, less the monthly free GB-s; GB-s = billed seconds x memory
               in GB, billed seconds = the runs' billed duration (whole ms) plus, for cold starts, their INIT time
               (billed since 2025-08-01). AWS Lambda Power Tuning leaves out the requests, the free tier and INIT;
               this does not.
    The free tier is the account's, shared by every function: ``free_tier=False`` leaves it out (an account whose
    other functions already use it).

Celery fleet (``settings.CELERY_FLEET``): workers x hours a month x price per worker-hour, where workers is what the
job's busy time needs at the target utilisation (at least the minimum the fleet keeps running whatever the load).

Both are linear in the volume (the fleet in steps), so a volume is a number of runs a month, and the per-run figures
(mean billed ms, mean duration, cold share) come from recorded runs (``boardsite/control/stats.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

HOURS_A_MONTH = 730  # AWS's own convention for monthly prices
BREAK_EVEN_LIMIT = 1_000_000_000  # runs a month: past it, no break-even is searched for
SECONDS_A_MONTH = HOURS_A_MONTH * 3600


@dataclass(frozen=True)
class PerRun:
    """What one run of a job uses, on average (from recorded runs)."""

    billed_ms: float  # Lambda's billed duration (whole ms)
    duration_ms: float  # how long it keeps a worker busy
    memory_mb: int  # configured
    cold_share: float = 0.0  # runs that start a new instance
    init_ms: float = 0.0  # INIT duration of a cold start


@dataclass(frozen=True)
class LambdaCost:
    architecture: str
    requests: Decimal
    compute: Decimal

    @property
    def total(self) -> Decimal:
        return self.requests + self.compute


def money(value: float | Decimal) -> Decimal:
    """Dollars to the cent, rounded half up (as a bill is)."""
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def lambda_cost(runs: float, per_run: PerRun, architecture: str = "arm64", *, free_tier: bool = True) -> LambdaCost:
    prices = settings.LAMBDA_PRICES
    billed_seconds = runs * (per_run.billed_ms + per_run.cold_share * per_run.init_ms) / 1000
    gb_seconds = billed_seconds * per_run.memory_mb / 1024
    free_requests = prices["free_requests"] if free_tier else 0
    free_gb_seconds = prices["free_gb_seconds"] if free_tier else 0
    requests = max(0.0, runs - free_requests) * prices["per_request"]
    compute = max(0.0, gb_seconds - free_gb_seconds) * prices["per_gb_second"][architecture]
    return LambdaCost(architecture, money(requests), money(compute))


def celery_workers(runs: float, per_run: PerRun) -> int:
    fleet = settings.CELERY_FLEET
    busy_seconds = runs * per_run.duration_ms / 1000
    capacity = SECONDS_A_MONTH * fleet["concurrency"] * fleet["target_utilisation"]
    return max(fleet["min_workers"], math.ceil(busy_seconds / capacity))


def celery_cost(runs: float, per_run: PerRun) -> Decimal:
    return money(celery_workers(runs, per_run) * HOURS_A_MONTH * settings.CELERY_FLEET["worker_hourly"])


def break_even(per_run: PerRun, architecture: str = "arm64", *, free_tier: bool = True) -> int | None:
    """The smallest monthly volume at which Lambda costs more than the fleet (None: not below ``BREAK_EVEN_LIMIT``).

    Lambda grows without bound and the fleet in steps, so the first crossing is searched for by bisection on the
    ranges where the fleet size is constant."""

    def lambda_dearer(runs: int) -> bool:
        return lambda_cost(runs, per_run, architecture, free_tier=free_tier).total > celery_cost(runs, per_run)

    low, high = 0, BREAK_EVEN_LIMIT
    if not lambda_dearer(high):
        return None
    if lambda_dearer(low):
        return 0
    # Scan doubling volumes for the first dearer one, then bisect inside (the cost difference can change sign
    # more than once as workers are added: report the first).
    previous, runs = 0, 1
    while not lambda_dearer(runs):
        previous, runs = runs, runs * 2
    low, high = previous, runs
    while high - low > 1:
        middle = (low + high) // 2
        if lambda_dearer(middle):
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class Projection:
    runs: int
    lambda_x86: LambdaCost
    lambda_arm: LambdaCost
    celery: Decimal
    workers: int


def project(runs_a_month: float, per_run: PerRun, *, free_tier: bool = True) -> list[Projection]:
    """Today's volume, 10x and 100x."""
    out = []
    for factor in (1, 10, 100):
        runs = round(runs_a_month * factor)
        out.append(
            Projection(
                runs=runs,
                lambda_x86=lambda_cost(runs, per_run, "x86_64", free_tier=free_tier),
                lambda_arm=lambda_cost(runs, per_run, "arm64", free_tier=free_tier),
                celery=celery_cost(runs, per_run),
                workers=celery_workers(runs, per_run),
            )
        )
    return out
