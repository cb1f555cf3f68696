"""The automatic rollback and the steps of a route (boardsite/control/watch.py), over recorded runs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from boardsite.control import watch
from boardsite.core import routing
from boardsite.core.models import JobRoute, JobRun, RouteChange
from tests.control.runs import add_runs


@pytest.fixture
def canary(db, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    routing.route_set(
        job="process_image", by="ada", source="page", why="move", steps=[500, 2500, 10_000], bake_seconds=600
    )
    # The move began before the runs the tests add (add_runs spreads them over the seconds before now).
    JobRoute.objects.filter(job="process_image").update(moved_at=timezone.now() - dt.timedelta(minutes=10))


def share() -> int:
    return JobRoute.objects.get(job="process_image").share


def test_errors_two_points_above_the_baseline_roll_back_with_50_runs(canary):
    add_runs("celery", 200, failed=2)  # 1 %
    add_runs("lambda", 49, failed=2)  # 4.1 %, but fewer than 50 runs: not yet
    assert watch.watch()["rolled_back"] == []
    add_runs("lambda", 1)  # 50 runs, 4 %: 3 points above
    assert watch.watch()["rolled_back"] == ["process_image"]
    route = JobRoute.objects.get(job="process_image")
    assert (route.share, route.steps) == (0, [])
    change = RouteChange.objects.filter(source="watch").get()
    assert change.alert
    assert change.by == "watch"
    assert "lambda failed 4.0 % of 50 runs, celery 1.0 % of 200" in change.why


def test_errors_within_two_points_do_not(canary):
    add_runs("celery", 100, failed=1)
    add_runs("lambda", 100, failed=3)  # 3 % vs 1 %: 2 points, not more
    assert watch.watch()["rolled_back"] == []
    assert share() == 500


def test_a_p95_more_than_twice_the_baseline_rolls_back(canary):
    add_runs("celery", 100, ms=100)
    add_runs("lambda", 60, ms=150)
    assert watch.watch()["rolled_back"] == []
    add_runs("lambda", 60, ms=250)
    assert watch.watch()["rolled_back"] == ["process_image"]
    assert "p95 was 250 ms, celery's 100 ms" in RouteChange.objects.filter(source="watch").get().why


def test_runs_outside_the_window_do_not_count(canary):
    add_runs("celery", 100)
    add_runs("lambda", 100, failed=100, at=timezone.now() - dt.timedelta(minutes=16))
    assert watch.watch()["rolled_back"] == []


def test_a_healthy_route_takes_its_next_step_after_its_bake_time(canary):
    now = timezone.now()
    assert watch.watch(now=now + dt.timedelta(seconds=599))["advanced"] == []
    assert watch.watch(now=now + dt.timedelta(seconds=601))["advanced"] == ["process_image"]
    assert (share(), JobRoute.objects.get(job="process_image").steps) == (2500, [10_000])
    assert watch.watch(now=now + dt.timedelta(seconds=1202))["advanced"] == ["process_image"]
    assert share() == 10_000
    assert watch.watch(now=now + dt.timedelta(seconds=1900))["advanced"] == []
    whys = list(RouteChange.objects.filter(source="watch").order_by("pk").values_list("why", flat=True))
    assert whys == ["step: 5 % baked 600 s without a rollback", "step: 25 % baked 600 s without a rollback"]


def test_a_pinned_job_is_left_alone(canary, settings):
    add_runs("celery", 100)
    add_runs("lambda", 100, failed=100)
    settings.OFFLOAD_PINNED = frozenset({"process_image"})
    assert watch.watch()["rolled_back"] == []


def test_old_run_records_are_pruned(db):
    add_runs("celery", 3, at=timezone.now() - dt.timedelta(days=31))
    add_runs("celery", 2)
    assert watch.watch()["pruned"] == 3
    assert JobRun.objects.count() == 2


def test_failed_runs_do_not_make_a_runtime_look_fast(canary):
    # A crashing canary fails at once: its latency is that of the runs that did the work.
    add_runs("celery", 100, ms=100)
    add_runs("lambda", 30, failed=30, ms=1)
    add_runs("lambda", 30, ms=300)
    from boardsite.control import stats

    since = timezone.now() - dt.timedelta(hours=1)
    assert stats.runtime_stats("process_image", "lambda", since).p50_ms == 300


def test_a_new_move_is_judged_on_its_own_runs_not_on_a_move_rolled_back_before_it(canary):
    add_runs("celery", 100, ms=100)
    add_runs("lambda", 60, ms=300)
    assert watch.watch()["rolled_back"] == ["process_image"]
    # Moved again at once: the rolled-back move's slow runs are still in the window, but they are not this move's.
    routing.route_set(job="process_image", by="ada", source="page", why="again", share=500)
    moved = JobRoute.objects.get(job="process_image").moved_at
    assert moved is not None
    assert moved > timezone.now() - dt.timedelta(seconds=30)
    assert watch.watch()["rolled_back"] == []
    assert share() == 500
    # Its own runs count: slow again, back again, and the reason says from when.
    add_runs("lambda", 60, ms=300, at=timezone.now() + dt.timedelta(minutes=2))
    assert watch.watch(now=timezone.now() + dt.timedelta(minutes=2))["rolled_back"] == ["process_image"]
    why = RouteChange.objects.filter(source="watch").order_by("-pk").first().why
    assert "p95 was 300 ms, celery's 100 ms" in why
    assert "since this move began" in why


def test_a_step_or_a_share_raised_by_hand_keeps_the_move_and_its_evidence(canary):
    moved = JobRoute.objects.get(job="process_image").moved_at
    routing.route_set(job="process_image", by="ada", source="page", why="faster", share=2500)
    assert JobRoute.objects.get(job="process_image").moved_at == moved
    add_runs("celery", 100, ms=100)
    add_runs("lambda", 60, ms=300)  # runs since the move began (10 minutes ago), at 5 % and at 25 %
    assert watch.watch()["rolled_back"] == ["process_image"]


def test_a_job_whose_runtimes_do_different_work_is_held_to_its_budget_not_to_a_multiple(db, settings):
    """The upload ticket: the site answers from its database in a few ms, the function makes S3 requests; 30 times
    the site's p95 is no regression, a p95 over the job's budget (registry ``p95_budget_ms``) is."""
    from boardsite.control import verdict as ready
    from offload import registry

    budget = registry.get("issue_upload_ticket").p95_budget_ms
    assert budget == 1000
    routing.route_set(job="issue_upload_ticket", by="ada", source="page", why="move", share=10_000)
    JobRoute.objects.filter(job="issue_upload_ticket").update(moved_at=timezone.now() - dt.timedelta(minutes=10))
    add_runs("lambda", 100, ms=300, job="issue_upload_ticket")
    latency = {c.name: c for c in ready.verdict("issue_upload_ticket", "inline").checks}["latency"]
    assert latency.passed  # the budget needs no runs of the site's
    add_runs("inline", 100, ms=10, job="issue_upload_ticket")
    assert watch.watch()["rolled_back"] == []  # 30x the site's p95, within the budget
    checks = {c.name: c for c in ready.verdict("issue_upload_ticket", "inline").checks}
    assert checks["latency"].passed
    assert "budget 1000 ms" in checks["latency"].found
    add_runs("lambda", 100, ms=1500, job="issue_upload_ticket")
    assert watch.watch()["rolled_back"] == ["issue_upload_ticket"]
    why = RouteChange.objects.filter(source="watch").get().why
    assert "p95 was 1500 ms" in why
    assert "over issue_upload_ticket's budget of 1000 ms" in why


def test_a_baseline_without_runs_is_said_so_in_the_reason(canary):
    add_runs("lambda", 60, failed=10)
    assert watch.watch()["rolled_back"] == ["process_image"]
    assert "celery no runs (counted as 0 %)" in RouteChange.objects.filter(source="watch").get().why
