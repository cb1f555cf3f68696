"""Where each unit of a job's work runs, decided at run time: the door (``boardsite/core/jobs.py``) asks here.

A job's route is its ``OFFLOAD_MODES`` mode until staff give it a ``JobRoute`` (the control page, ``manage.py
route``): a share of its work on one runtime (the canary), the rest on another (the baseline). Which side a unit of
work takes is a stable hash of (job, unit key) into ``BUCKETS`` buckets, the canary taking the buckets below its
share: the same unit always takes the same runtime (retries and redeliveries included), and raising a share keeps
every unit already moved. An upload's runtime is decided once, when its form is signed, and written into its key
(``registry.S3Trigger.pin``): a share changed while bytes are in flight moves nothing already placed.

``OFFLOAD_PINNED`` (jobs named there) keeps a job on its ``OFFLOAD_MODES`` mode: nothing at run time changes it.

Each process reads the routes at most every ``REFRESH_SECONDS`` (one query for all jobs), so a change reaches every
web process and worker within that without a restart; a process that changes a route sees it at once. Routing never
stops work: when the routes cannot be read, the last ones read (else the modes) hold.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from offload import registry
from offload.buckets import BUCKETS, bucket
from offload.config import ORIGINALS_PREFIX
from offload.results import parse_avatar_key, parse_key
from offload.text import visible_text_error

if TYPE_CHECKING:
    from boardsite.core.models import JobRoute

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0  # well inside the 5 s a change may take to reach every process
NOISE_EVERY = 10  # one shadow sample in this many runs on the same runtime twice
WHY_MAX = 1000  # characters of a change's reason (shown on every control page with the change)
MAX_BAKE_SECONDS = 30 * 24 * 3600
MAX_SHADOW_CAP = 1_000_000


@dataclass(frozen=True)
class Route:
    job: str
    baseline: str
    canary: str
    share: int = 0  # buckets on the canary
    forced: dict[str, str] = field(default_factory=dict)
    steps: tuple[int, ...] = ()
    bake_seconds: int = 300
    pinned: bool = False
    shadow_share: int = 0  # buckets of the work that also run in shadow
    shadow_daily_cap: int = 1000

    def runtime_for(self, unit: str) -> str:
        if (forced := self.forced.get(unit)) is not None:
            return forced
        if self.share <= 0:
            return self.baseline
        if self.share >= BUCKETS:
            return self.canary
        return self.canary if bucket(self.job, unit) < self.share else self.baseline

    def names(self, runtime: str) -> bool:
        """Whether the route still runs work on ``runtime`` (at any share): work placed for it stays there."""
        return runtime in (self.baseline, self.canary, *self.forced.values())

    def describe(self) -> str:
        if self.pinned:
            return f"{self.baseline} (pinned by OFFLOAD_PINNED)"
        if self.share <= 0 or self.canary == self.baseline:
            where = self.baseline
        elif self.share >= BUCKETS:
            where = self.canary
        else:
            where = f"{self.canary} {self.share / 100:g} %, {self.baseline} {(BUCKETS - self.share) / 100:g} %"
        return where + (f"; shadow {self.shadow_share / 100:g} %" if self.shadow_share else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "canary": self.canary,
            "share": self.share,
            "steps": list(self.steps),
            "bake_seconds": self.bake_seconds,
            "forced": dict(self.forced),
            "shadow_share": self.shadow_share,
            "shadow_daily_cap": self.shadow_daily_cap,
        }

    def shadow_for(self, unit: str) -> tuple[str, bool] | None:
        """Where the unit's shadow run goes and whether it is a noise pair (the same runtime twice), or None when
        the unit is not sampled. One sample in ``NOISE_EVERY`` is a noise pair."""
        if self.shadow_share <= 0 or self.pinned:
            return None
        sample = bucket(self.job + "#shadow", unit)
        if sample >= self.shadow_share:
            return None
        primary = self.runtime_for(unit)
        if sample % NOISE_EVERY == 0:
            return primary, True
        other = self.canary if primary == self.baseline else self.baseline
        return (other, False) if other != primary else (primary, True)


FORCED_SHOWN = 3  # forced keys an audit line names; more are counted


def audit_text(state: Mapping[str, Any] | None) -> str:
    """A route as a change records it (``Route.as_dict``), whole, for the audit: the same words before and after a
    change, so that every field a change can touch shows on both sides. ``None`` or ``{}``: no route yet."""
    if not state:
        return "(its mode)"
    text = f"{state.get('canary')} {state.get('share', 0) / 100:g} % / {state.get('baseline')}"
    if steps := state.get("steps"):
        text += f", then {' → '.join(f'{s / 100:g} %' for s in steps)}, {state.get('bake_seconds')} s each"
    if state.get("shadow_share"):
        text += f"; shadow {state['shadow_share'] / 100:g} %, at most {state.get('shadow_daily_cap')} a day"
    if forced := state.get("forced"):
        named = [f"{key} → {runtime}" for key, runtime in sorted(forced.items())[:FORCED_SHOWN]]
        more = len(forced) - len(named)
        text += "; forced " + ", ".join(named) + (f" and {more} more key{'s' * (more != 1)}" if more else "")
    return text


class RouteError(ValueError):
    """A route that cannot be set: the message says why, for a person."""


# --- reading -------------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_rows: dict[str, Route] = {}
_read_at = float("-inf")
_shadowed: dict[str, int] = {}  # shadow runs started today per job: as last read, plus this process's since


def forget() -> None:
    """Read the routes again on the next ask (after a change made in this process, and between tests)."""
    global _read_at
    with _lock:
        _read_at = float("-inf")


def _stored() -> dict[str, Route]:
    global _rows, _read_at
    now = time.monotonic()
    if now - _read_at < REFRESH_SECONDS:
        return _rows
    with _lock:
        if now - _read_at < REFRESH_SECONDS:
            return _rows
        try:
            from boardsite.core.models import JobRoute  # this module loads before the apps (the Celery app's import)

            _rows = {row.job: _from_row(row) for row in JobRoute.objects.all()}
            _shadowed.clear()
            if any(r.shadow_share for r in _rows.values()):
                _shadowed.update(_shadow_counts())
        except Exception as exc:  # the database away, or not migrated yet: the last routes read hold
            log.warning("job routes could not be read (%s); keeping the last ones", exc)
        _read_at = now
        return _rows


def _from_row(row: JobRoute) -> Route:
    return Route(
        job=row.job,
        baseline=row.baseline,
        canary=row.canary,
        share=row.share,
        forced=dict(row.forced or {}),
        steps=tuple(row.steps or ()),
        bake_seconds=row.bake_seconds,
        shadow_share=row.shadow_share,
        shadow_daily_cap=row.shadow_daily_cap,
    )


def _shadow_counts() -> dict[str, int]:
    from django.db.models import Count
    from django.utils import timezone

    from boardsite.core.models import ShadowPair

    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    rows = ShadowPair.objects.filter(created_at__gte=midnight).values("job").annotate(n=Count("pk"))
    return {row["job"]: row["n"] for row in rows}


def shadow_slot(route: Route) -> bool:
    """Take one of today's shadow runs of the job, if its daily cap leaves one (counted per process between reads of
    the routes: processes together may pass the cap by what they start within REFRESH_SECONDS)."""
    with _lock:
        taken = _shadowed.get(route.job, 0)
        if taken >= route.shadow_daily_cap:
            return False
        _shadowed[route.job] = taken + 1
        return True


def pinned(job: str) -> bool:
    return job in settings.OFFLOAD_PINNED


def configured_mode(job: str) -> str:
    return settings.OFFLOAD_MODES.get(job, registry.get(job).default_mode)


def route(job: str) -> Route:
    """The job's route now."""
    mode = configured_mode(job)
    if pinned(job) or not routable(registry.get(job)):
        return Route(job=job, baseline=mode, canary=mode, pinned=pinned(job))
    return _stored().get(job) or Route(job=job, baseline=mode, canary=mode)


def runtime_for(job: str, unit: str) -> str:
    return route(job).runtime_for(unit)


def routable(job: registry.Job) -> bool:
    """Whether a job's work can be split between runtimes: each unit of it passes the door (a schedule fires on one
    runtime at a time; S3's events reach only Lambda unless the site starts the job too)."""
    if isinstance(job.trigger, registry.ScheduleTrigger):
        return False
    if isinstance(job.trigger, registry.SQSTrigger) and job.trigger.topic and job.trigger.topic.publisher != "site":
        return False  # fed by AWS itself (SES's feedback): nothing of its work passes the door
    return not isinstance(job.trigger, registry.S3Trigger) or job.trigger.started_by_site


# --- changing ------------------------------------------------------------------------------------------------------


def deployed_problem(job: registry.Job, runtime: str, environ: Mapping[str, str] | None = None) -> str | None:
    """What keeps the deployed web stage from running the job's work on ``runtime`` (None locally, where every runtime
    runs): a route must not send work where nothing would run it."""
    environ = os.environ if environ is None else environ
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    if runtime == "celery":
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            return "the stage has no Celery broker (set CELERY_BROKER_URL, package and deploy again; DEPLOY.md §12)"
        if importlib.util.find_spec("celery") is None:
            return "the stage's package has no Celery (package and deploy again with CELERY_BROKER_URL set)"
    if runtime == "inline" and job.side == "offload":
        missing = [name for name in job.packages if importlib.util.find_spec(name) is None]
        if missing:
            return f"the web stage's package does not ship {', '.join(missing)} (the functions stage does)"
    return None


# What the unit keys of an S3 job look like, by its prefix: what its handler accepts (offload/results.py).
UPLOAD_KEYS = {
    ORIGINALS_PREFIX: (
        lambda key: _parses(parse_key, key) or parse_avatar_key(key) is not None,
        "originals/<board>/<image id>.<ext> (a photo) or originals/avatars/<user>/<avatar id>.<ext> (a picture)",
    )
}
PERSON_UNIT = re.compile(r"user:[0-9]+")  # an HTTP job's unit: the person asking (``jobs.endpoint``)


def _parses(parser: Any, key: str) -> bool:
    try:
        parser(key)
    except ValueError:
        return False
    return True


def unit_shape(job: registry.Job) -> str:
    """What a unit key of ``job`` looks like, for a person."""
    trigger = job.trigger
    if isinstance(trigger, registry.S3Trigger):
        known = UPLOAD_KEYS.get(trigger.prefix)
        return (known[1] if known else f"an object's key under {trigger.prefix}") + (
            f", with or without the runtime part the site wrote into it ({trigger.prefix}lambda/…)"
            if trigger.started_by_site
            else ""
        )
    if isinstance(trigger, registry.HTTPTrigger):
        return "user:<user id>, the person asking (such as user:42)"
    return "a message id (what its sender named the message)"


def _unit_key(job: registry.Job, unit: str, *, removing: bool = False) -> str:
    """A unit key as the door sees it (an upload's key without the runtime it was placed for), or RouteError when it
    cannot name a unit of the job. A key to remove is not checked for its shape: one stored before keys were checked
    must stay removable."""
    unit = unit.strip()
    if not unit or len(unit) > 255 or any(c.isspace() for c in unit) or visible_text_error(unit, field="key"):
        raise RouteError("a unit key is up to 255 visible characters, no spaces (an upload's key, a message id)")
    trigger = job.trigger
    key = trigger.unit(unit) if isinstance(trigger, registry.S3Trigger) else unit
    if removing:
        return key
    if isinstance(trigger, registry.S3Trigger):
        known = UPLOAD_KEYS.get(trigger.prefix)
        fits = key.startswith(trigger.prefix) and not key.endswith("/") and len(key) > len(trigger.prefix)
        fits = fits and (known is None or known[0](key))
    elif isinstance(trigger, registry.HTTPTrigger):
        fits = PERSON_UNIT.fullmatch(key) is not None
    else:
        fits = True  # a message id is whatever its sender chose
    if not fits:
        raise RouteError(f"{unit!r} cannot name a unit of {job.name}: its unit keys look like {unit_shape(job)}")
    return key


def parse_share(text: str) -> int:
    """``"5"``, ``"5%"``, ``"12.5 %"`` -> buckets (500, 500, 1250)."""
    cleaned = text.strip().removesuffix("%").strip()
    try:
        percent = float(cleaned)
    except ValueError:
        raise RouteError(f"{text!r} is not a share: give a percentage such as 5 or 12.5") from None
    if not 0 <= percent <= 100:
        raise RouteError(f"a share is between 0 and 100 %, not {percent:g}")
    buckets = round(percent * BUCKETS / 100)
    if abs(buckets * 100 / BUCKETS - percent) > 1e-9:
        raise RouteError(f"{percent:g} %: a share is counted in steps of {100 / BUCKETS:g} %")
    return buckets


def route_set(
    *,
    job: str,
    by: str,
    source: str,
    why: str,
    baseline: str | None = None,
    canary: str | None = None,
    share: int | None = None,
    steps: list[int] | None = None,
    bake_seconds: int | None = None,
    force: dict[str, str | None] | None = None,
    now: Any = None,
    alert: bool = False,
    shadow_share: int | None = None,
    shadow_daily_cap: int | None = None,
) -> Route:
    """Change a job's route (fields not given keep their value) and record who, when, from, to and why.

    ``steps``: the shares to reach one after the other, each after ``bake_seconds`` at the one before (the watch
    advances them, ``route_advance``). ``force``: unit key -> runtime (None: follow the share again)."""
    from django.utils import timezone

    from boardsite.core.models import JobRoute, RouteChange

    if not why.strip():
        raise RouteError("say why: every change of a route is recorded with its reason")
    if len(why) > WHY_MAX:
        raise RouteError(f"a reason is at most {WHY_MAX} characters")
    if problem := visible_text_error(why, field="reason", multiline=True):
        raise RouteError(problem)
    try:
        entry = registry.get(job)
    except KeyError:
        raise RouteError(f"there is no job {job!r}; the jobs are: {', '.join(registry.JOBS)}") from None
    if steps is not None:
        for value in steps:
            _check_share(value)
        if any(value <= 0 for value in steps) or any(b <= a for a, b in itertools.pairwise(steps)):
            raise RouteError("steps go up: each share above the one before and above 0, such as 5,25,100")
    if bake_seconds is not None and not 0 <= bake_seconds <= MAX_BAKE_SECONDS:
        raise RouteError(f"a bake time is from 0 to {MAX_BAKE_SECONDS} seconds (30 days)")
    if shadow_daily_cap is not None and not 0 <= shadow_daily_cap <= MAX_SHADOW_CAP:
        raise RouteError(f"the daily cap of shadow runs is a whole number from 0 to {MAX_SHADOW_CAP}")
    if pinned(job):
        raise RouteError(f"{job} is pinned to {configured_mode(job)} by OFFLOAD_PINNED: nothing at run time moves it")
    if not routable(entry):
        raise RouteError(f"{job} cannot be split between runtimes: {_why_not_routable(entry)}")
    force = {_unit_key(entry, unit, removing=runtime is None): runtime for unit, runtime in (force or {}).items()}
    now = now or timezone.now()
    with transaction.atomic():
        row = JobRoute.objects.select_for_update().filter(job=job).first()
        if row is None:
            mode = configured_mode(job)
            row = JobRoute(job=job, baseline=mode, canary="lambda" if mode != "lambda" else "celery")
        before = None if row._state.adding else _from_row(row).as_dict()
        if baseline is not None:
            row.baseline = baseline
        if canary is not None:
            row.canary = canary
        if steps is not None:
            for value in steps:
                _check_share(value)
            if share is None and steps:
                share, steps = steps[0], steps[1:]
            row.steps = list(steps)
        if share is not None and steps is None:
            row.steps = []  # a share set by hand replaces the steps still to come (the way back stays back)
        if share is not None:
            _check_share(share)
            if share != row.share or steps is not None:
                row.step_started_at = now
            row.share = share
        was = before or {}
        if row.share and (not was.get("share") or (was["canary"], was["baseline"]) != (row.canary, row.baseline)):
            row.moved_at = now
        if bake_seconds is not None:
            if bake_seconds < 0:
                raise RouteError("a bake time is a number of seconds, 0 or more")
            row.bake_seconds = bake_seconds
        if shadow_share is not None:
            _check_share(shadow_share)
            if shadow_share and not entry.shadow:
                raise RouteError(f"{job} cannot run in shadow (its registry entry declares no shadow comparison)")
            row.shadow_share = shadow_share
        if shadow_daily_cap is not None:
            if isinstance(shadow_daily_cap, bool) or not isinstance(shadow_daily_cap, int) or shadow_daily_cap < 0:
                raise RouteError("the daily cap of shadow runs is a whole number, 0 or more")
            row.shadow_daily_cap = shadow_daily_cap
        forced = dict(row.forced or {})
        for unit, runtime in force.items():
            if runtime is not None:
                forced[unit] = runtime
            elif forced.pop(unit, None) is None:
                raise RouteError(
                    f"there is no forced key {unit!r} to remove; "
                    + (f"the forced keys are {', '.join(sorted(forced))}" if forced else f"no key of {job} is forced")
                )
        row.forced = forced
        for runtime in {row.baseline, row.canary, *forced.values()}:
            if runtime not in registry.MODES:
                raise RouteError(f"{runtime!r} is not a runtime; use one of {', '.join(registry.MODES)}")
        if (row.share or row.steps) and row.canary == row.baseline:
            # Nothing would move: refused, so that the audit never records a move that is none. A share of 0 (the
            # way back) passes whatever the runtimes are.
            shares = " → ".join(f"{s / 100:g} %" for s in [row.share, *row.steps] if s)
            raise RouteError(
                f"the canary and the baseline are both {row.canary}: {shares} on it would move nothing; choose "
                "another canary, or a share of 0"
            )
        # Only the runtimes that would get work: the way back (a share of 0) is never refused.
        working = {row.baseline, *forced.values()}
        if row.share or row.steps or row.shadow_share:
            working.add(row.canary)
        for runtime in sorted(working):
            if problem := deployed_problem(entry, runtime):
                raise RouteError(f"{job} cannot run in {runtime} on this stage: {problem}")
            # Only what this runtime would break: a problem the settings already have is the system check's.
            problem = registry.modes_problem({**settings.OFFLOAD_MODES, job: runtime})
            if problem and problem != registry.modes_problem(settings.OFFLOAD_MODES):
                raise RouteError(f"{job} cannot run in {runtime} here: {problem}")
        after = _from_row(row)
        if before == after.as_dict():
            return after
        row.save()
        RouteChange.objects.create(
            job=job, by=by, source=source, before=before or {}, after=after.as_dict(), why=why, alert=alert
        )
    forget()
    return after


def _check_share(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BUCKETS:
        raise RouteError(f"a share is a number of buckets from 0 to {BUCKETS}, not {value!r}")


def _why_not_routable(job: registry.Job) -> str:
    if isinstance(job.trigger, registry.ScheduleTrigger):
        return "it runs on a schedule (switch it with OFFLOAD_MODES)"
    if isinstance(job.trigger, registry.SQSTrigger):
        return "AWS feeds its queue, not the site (switch it with OFFLOAD_MODES)"
    return "S3's events start it, the site does not (its trigger has no started_by_site)"
