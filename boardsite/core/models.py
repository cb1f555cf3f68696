"""Where each job's work runs at run time (``boardsite/core/routing.py`` reads these; the door applies them)."""

from __future__ import annotations

from django.db import models

from offload.registry import MODES

RUNTIME_CHOICES = [(m, m) for m in MODES]


class JobRoute(models.Model):
    """A job's routing, set by staff (control page, ``manage.py route``) or by the watch (steps, rollback).

    ``share`` of the 10,000 buckets of (job, unit key) run on ``canary``; the rest on ``baseline``. ``steps`` are
    the shares still to come, each after ``bake_seconds`` at the current one; ``forced`` sends single unit keys to a
    runtime whatever the share."""

    job = models.CharField(max_length=64, primary_key=True)
    baseline = models.CharField(max_length=16, choices=RUNTIME_CHOICES)
    canary = models.CharField(max_length=16, choices=RUNTIME_CHOICES)
    share = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list, blank=True)
    bake_seconds = models.PositiveIntegerField(default=300)
    step_started_at = models.DateTimeField(null=True, blank=True)
    # When the current move began (the share left 0, or the canary or baseline changed): the watch judges the
    # canary on its runs since then, never on an earlier move's (one rolled back, say).
    moved_at = models.DateTimeField(null=True, blank=True)
    forced = models.JSONField(default=dict, blank=True)
    # Shadow runs: this share of the job's work also runs on the other runtime, outputs compared, never used.
    shadow_share = models.PositiveIntegerField(default=0)
    shadow_daily_cap = models.PositiveIntegerField(default=1000)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # routing.BUCKETS (not imported: routing reads these models)
            models.CheckConstraint(condition=models.Q(share__lte=10_000), name="route_share_at_most_all"),
        ]

    def __str__(self) -> str:
        return f"{self.job}: {self.canary} {self.share / 100:g} % / {self.baseline}"


class RouteChange(models.Model):
    """One change of a job's routing: who, when, from what, to what, and why (the audit)."""

    job = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    by = models.CharField(max_length=150)  # a username, or what acted on its own ("watch", "command:<os user>")
    source = models.CharField(max_length=16)  # page, command, watch
    before = models.JSONField()
    after = models.JSONField()
    why = models.TextField()
    # A change staff must hear of (an automatic rollback): shown on every page to staff until one acknowledges it.
    alert = models.BooleanField(default=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.job} by {self.by}: {self.why}"


class JobRun(models.Model):
    """One run of one job (offload/runs.py measures it; boardsite/core/runs.py records it)."""

    run_id = models.CharField(max_length=36, unique=True)  # a record delivered twice is kept once
    job = models.CharField(max_length=64)
    runtime = models.CharField(max_length=16, choices=RUNTIME_CHOICES)
    outcome = models.CharField(max_length=16)  # ok, failed
    error_class = models.CharField(max_length=120, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    billed_ms = models.PositiveIntegerField()
    init_ms = models.FloatField(default=0)
    peak_memory_mb = models.FloatField(null=True)
    memory_mb = models.PositiveIntegerField()
    cold = models.BooleanField(default=False)
    queue_wait_ms = models.FloatField(null=True)
    shadow = models.BooleanField(default=False)
    unit = models.CharField(max_length=255, blank=True)  # what it worked on (offload.runs.unit_of)

    class Meta:
        indexes = [
            models.Index(fields=["job", "started_at"], name="jobrun_job_started"),
            models.Index(fields=["unit"], name="jobrun_unit"),
        ]

    def __str__(self) -> str:
        return f"{self.job} on {self.runtime}: {self.outcome} in {self.duration_ms:.0f} ms"


class ShadowPair(models.Model):
    """A unit of work run twice: for real (``primary_runtime``) and in shadow (``shadow_runtime``; the same runtime
    for a ``noise`` pair, which measures how much two runs differ when nothing differs). Created when the shadow's
    report arrives; compared once the real run has settled (boardsite/control/shadow.py)."""

    pair_id = models.CharField(max_length=36, unique=True)
    job = models.CharField(max_length=64)
    unit = models.CharField(max_length=255)
    primary_runtime = models.CharField(max_length=16, choices=RUNTIME_CHOICES)
    shadow_runtime = models.CharField(max_length=16, choices=RUNTIME_CHOICES)
    noise = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    shadow_result = models.JSONField()
    compared_at = models.DateTimeField(null=True, blank=True)
    agreed = models.BooleanField(null=True)
    comparison = models.JSONField(default=dict, blank=True)  # per check: what was found
    outputs_deleted = models.BooleanField(default=False)  # its scratch outputs expired

    class Meta:
        indexes = [models.Index(fields=["job", "created_at"], name="shadowpair_job_created")]

    def __str__(self) -> str:
        return f"{self.job} {self.unit}: {self.primary_runtime} vs {self.shadow_runtime}"


class InvokeEvent(models.Model):
    """A throttle of a Lambda invocation the site made, a fallback it took, a circuit breaker it opened
    (boardsite/core/invoke.py): what the control room counts."""

    job = models.CharField(max_length=64)
    kind = models.CharField(max_length=16)  # throttle, fallback, breaker_open
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.job} {self.kind}"
