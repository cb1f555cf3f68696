"""Routing a share of a job's work to another runtime at run time (boardsite/core/routing.py, the door in jobs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from boardsite.core import jobs, routing
from boardsite.core.models import JobRoute, RouteChange
from boardsite.core.routing import BUCKETS
from offload import registry
from tests.helpers import database_url

ROOT = Path(__file__).resolve().parents[2]


def keys(n: int, seed: str = "k") -> list[str]:
    # Deterministic, shaped like the unit keys of uploads.
    return [f"originals/{i % 97}/{uuid.uuid5(uuid.NAMESPACE_URL, f'{seed}{i}')}.jpg" for i in range(n)]


def share_of(route: routing.Route, units: list[str], runtime: str) -> float:
    return 100 * sum(route.runtime_for(u) == runtime for u in units) / len(units)


@pytest.mark.parametrize("percent", [0.5, 5, 25, 50, 95])
def test_the_observed_share_is_as_close_as_a_fair_draw_allows(percent):
    """A hash per unit makes each unit a fair draw: at 10,000 units the observed share is binomial, sigma =
    sqrt(p(1-p)/n) (0.5 points at 50 %, 0.22 at 5 %). So: over 100,000 units within 0.5 points at every share, and
    over 20 sets of 10,000 no more spread than a fair draw's (a biased or clumping hash fails both)."""
    route = routing.Route(job="process_image", baseline="celery", canary="lambda", share=round(percent * 100))
    assert abs(share_of(route, keys(100_000, "all"), "lambda") - percent) <= 0.5
    observed = [share_of(route, keys(10_000, f"set{i}"), "lambda") for i in range(20)]
    sigma = (percent * (100 - percent) / 10_000) ** 0.5
    mean = sum(observed) / len(observed)
    spread = (sum((o - mean) ** 2 for o in observed) / (len(observed) - 1)) ** 0.5
    assert abs(mean - percent) <= 3 * sigma / len(observed) ** 0.5, (mean, observed)
    assert spread <= 1.6 * sigma, (spread, sigma, observed)
    within = sum(abs(o - percent) <= 0.5 for o in observed)
    assert within >= {0.5: 20, 5: 19, 25: 14, 50: 11, 95: 19}[percent], observed


def test_buckets_spread_evenly_and_differ_per_job():
    units = keys(20_000)
    counts = [0] * 10
    for u in units:
        counts[routing.bucket("process_image", u) * 10 // BUCKETS] += 1
    assert max(counts) - min(counts) < 0.1 * len(units) / 10, counts
    same = sum(routing.bucket("process_image", u) == routing.bucket("send_email", u) for u in units[:2000])
    assert same < 20, "two jobs' canaries would take the same units"


def test_raising_a_share_keeps_every_unit_already_moved_and_nothing_flips_back():
    units = keys(5000)
    moved_before: set[str] = set()
    for share in (500, 2500, 5000, 10_000):
        route = routing.Route(job="process_image", baseline="celery", canary="lambda", share=share)
        moved = {u for u in units if route.runtime_for(u) == "lambda"}
        assert moved_before <= moved, f"at {share / 100} % some units went back"
        moved_before = moved
    assert moved_before == set(units)


def test_the_bucket_is_the_same_in_another_process():
    # Python's own hash() changes per process (PYTHONHASHSEED): the bucket must not.
    units = keys(50)
    code = "import sys; from boardsite.core.routing import bucket; print([bucket('process_image', u) for u in sys.argv[1:]])"  # noqa: E501
    env = {**os.environ, "PYTHONHASHSEED": "123", "DJANGO_SETTINGS_MODULE": "boardsite.settings"}
    setup = "import django; django.setup(); "
    out = subprocess.run(
        [sys.executable, "-c", setup + code, *units], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str([routing.bucket("process_image", u) for u in units])


def test_a_forced_unit_goes_where_it_is_forced_whatever_the_share():
    unit = keys(1)[0]
    for share in (0, 5000, 10_000):
        for runtime in ("lambda", "celery"):
            route = routing.Route("process_image", "celery", "lambda", share=share, forced={unit: runtime})
            assert route.runtime_for(unit) == runtime


@pytest.mark.django_db
def test_a_change_is_recorded_with_who_when_from_to_and_why(settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    routing.route_set(job="process_image", by="ada", source="page", why="first canary", share=500)
    routing.route_set(job="process_image", by="ada", source="page", why="looks good", share=2500)
    first, second = RouteChange.objects.order_by("pk")
    assert (first.by, first.source, first.why, first.before) == ("ada", "page", "first canary", {})
    assert (first.after["baseline"], first.after["canary"], first.after["share"]) == ("celery", "lambda", 500)
    assert (second.before["share"], second.after["share"], second.why) == (500, 2500, "looks good")
    assert second.at >= first.at
    # The same change again changes nothing and records nothing.
    routing.route_set(job="process_image", by="ada", source="page", why="again", share=2500)
    assert RouteChange.objects.count() == 2
    assert routing.route("process_image").describe() == "lambda 25 %, celery 75 %"


@pytest.mark.django_db
def test_what_cannot_be_routed_is_refused_with_a_reason_and_changes_nothing(settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    cases = [
        (dict(job="process_image", share=500, why=""), "say why"),
        (dict(job="no_such_job", share=500, why="x"), "there is no job 'no_such_job'"),
        (dict(job="sweep_uploads", share=500, why="x"), "runs on a schedule"),
        (dict(job="apply_mail_feedback", share=500, why="x"), "AWS feeds its queue"),
        (dict(job="process_image", share=10_001, why="x"), "from 0 to 10000"),
        (dict(job="process_image", canary="k8s", share=1, why="x"), "'k8s' is not a runtime"),
        # Lambda-run jobs report to the results queue, which only a Lambda-run apply_results reads.
        (dict(job="apply_results", canary="celery", share=500, why="x"), "cannot run in celery"),
    ]
    for kwargs, message in cases:
        with pytest.raises(routing.RouteError, match=message):
            routing.route_set(by="ada", source="page", **kwargs)
    assert not JobRoute.objects.exists()
    assert not RouteChange.objects.exists()


@pytest.mark.django_db
def test_a_deployed_stage_refuses_a_runtime_it_cannot_run_and_always_allows_the_way_back(settings, monkeypatch):
    """On the deployed web stage (AWS_LAMBDA_FUNCTION_NAME set) a route must not send work where nothing runs it:
    Celery without a broker, or photos inline where the package has no Pillow (its absence simulated here: this
    machine has Pillow installed)."""
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "lambda", "send_email": "lambda"}
    settings.CELERY_BROKER_URL = "filesystem://"
    job = registry.get("process_image")
    assert routing.deployed_problem(job, "celery") is None  # locally every runtime runs
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "boardsite-web")
    assert "no Celery broker" in routing.deployed_problem(job, "celery")
    assert routing.deployed_problem(job, "inline") is None  # Pillow is here
    real_find_spec = routing.importlib.util.find_spec
    monkeypatch.setattr(
        routing.importlib.util, "find_spec", lambda name: None if name == "PIL" else real_find_spec(name)
    )
    assert "does not ship PIL" in routing.deployed_problem(job, "inline")
    assert routing.deployed_problem(registry.get("send_email"), "inline") is None  # boto3 is all it needs
    with pytest.raises(routing.RouteError, match="cannot run in celery on this stage: the stage has no Celery broker"):
        routing.route_set(job="process_image", canary="celery", share=500, by="ada", source="page", why="x")
    with pytest.raises(routing.RouteError, match="cannot run in inline on this stage"):
        routing.route_set(job="process_image", force={"originals/1/x.jpg": "inline"}, by="ada", source="page", why="x")
    assert not RouteChange.objects.exists()
    # A broker configured: the share moves; and the way back is taken even once the broker is gone again.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    routing.route_set(job="process_image", canary="celery", share=500, by="ada", source="page", why="canary")
    settings.CELERY_BROKER_URL = "filesystem://"
    assert routing.route_set(job="process_image", share=0, by="ada", source="page", why="back").share == 0


@pytest.mark.django_db
def test_a_pinned_job_keeps_its_mode_whatever_is_stored(settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery"}
    JobRoute.objects.create(job="process_image", baseline="celery", canary="lambda", share=BUCKETS)
    routing.forget()
    assert routing.runtime_for("process_image", "originals/1/x.jpg") == "lambda"
    settings.OFFLOAD_PINNED = frozenset({"process_image"})
    assert routing.runtime_for("process_image", "originals/1/x.jpg") == "celery"
    with pytest.raises(routing.RouteError, match="pinned to celery by OFFLOAD_PINNED"):
        routing.route_set(job="process_image", by="ada", source="page", why="x", share=0)


@pytest.mark.django_db
def test_steps_start_at_their_first_share_and_keep_the_rest(settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery"}
    route = routing.route_set(
        job="process_image", by="ada", source="page", why="move", steps=[500, 2500, 10_000], bake_seconds=600
    )
    assert (route.share, route.steps, route.bake_seconds) == (500, (2500, 10_000), 600)
    assert JobRoute.objects.get(job="process_image").step_started_at is not None


@pytest.mark.django_db
def test_an_upload_is_placed_for_its_runtime_before_its_bytes_arrive_and_stays_there(settings, monkeypatch):
    """place() writes the runtime into the key; object_created() goes by the key, whatever the share says later."""
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "lambda"}
    ran: list[str] = []
    monkeypatch.setattr(
        jobs, "run_job", lambda name, event, runtime: ran.append(event["Records"][0]["s3"]["object"]["key"])
    )
    natural = keys(2000)
    routing.route_set(job="process_image", by="ada", source="page", why="half", canary="lambda", share=5000)
    placed = {unit: jobs.place(unit) for unit in natural}
    on_lambda = [k for k in placed.values() if k.startswith("originals/lambda/")]
    inline = [k for k in placed.values() if k.startswith("originals/inline/")]
    assert len(on_lambda) + len(inline) == len(natural)
    assert 900 < len(on_lambda) < 1100
    trigger = registry.get("process_image").trigger
    assert all(trigger.unit(k) == u for u, k in placed.items()), "the unit key survives placing"
    # The share moves while the bytes are in flight: every object still runs where it was placed, once.
    routing.route_set(job="process_image", by="ada", source="page", why="all", share=BUCKETS)
    for key in [*on_lambda, *inline]:
        jobs.object_created(key, size=1, etag='"e"')
    assert sorted(ran) == sorted(inline), "lambda-placed keys are S3's to start; inline-placed ones run here, once"
    routing.route_set(job="process_image", by="ada", source="page", why="back", share=0)
    ran.clear()
    jobs.object_created(on_lambda[0], size=1, etag='"e"')
    assert ran == []
    # A key placed before routing (no runtime in it) takes the route's runtime for it now.
    jobs.object_created(natural[0], size=1, etag='"e"')
    assert ran == [natural[0]]


@pytest.mark.django_db
def test_a_message_takes_the_runtime_its_id_hashes_to(settings, monkeypatch):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    ran: list[str] = []
    monkeypatch.setattr(jobs, "run_job", lambda name, event, runtime: ran.append(event["Records"][0]["messageId"]))
    published: list[str] = []

    class SNS:
        def publish(self, **kw):  # the SNS call only: which messages went to Lambda (moto's SNS is tested elsewhere)
            published.append(kw["Message"])

    monkeypatch.setattr(jobs.aws, "client", lambda name, **kw: SNS())
    routing.route_set(job="send_email", by="ada", source="page", why="canary", canary="lambda", share=2000)
    route = routing.route("send_email")
    ids = [f"notification-{i}" for i in range(500)]
    for message_id in ids:
        jobs.publish(registry.MAIL, {"id": message_id}, message_id=message_id)
    assert ran == [i for i in ids if route.runtime_for(i) == "inline"]
    assert [eval_id(m) for m in published] == [i for i in ids if route.runtime_for(i) == "lambda"]
    assert 60 < len(published) < 140


def eval_id(message: str) -> str:
    import json

    return json.loads(message)["id"]


@pytest.mark.django_db(transaction=True)
def test_a_change_reaches_another_process_within_5_seconds(settings, tmp_path):
    """Another process (as a Celery worker or a second web process is) sees a route change without a restart."""
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery"}
    unit = keys(1)[0]
    script = (
        "import sys, time, django; django.setup()\n"
        "from boardsite.core import routing\n"
        "print('started', flush=True)\n"
        "while True:\n"
        f"    print(routing.runtime_for('process_image', {unit!r}), flush=True); time.sleep(0.05)\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "OFFLOAD_MODES": "process_image=celery",
        "DJANGO_SETTINGS_MODULE": "boardsite.settings",
    }
    out = tmp_path / "watcher.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while "celery" not in out.read_text():
            assert proc.poll() is None, out.read_text()[-2000:]
            assert time.monotonic() < deadline, out.read_text()[-2000:]
            time.sleep(0.05)
        routing.route_set(job="process_image", by="ada", source="page", why="all of it", share=BUCKETS)
        changed = time.monotonic()  # committed
        while not out.read_text().rstrip().endswith("lambda"):
            assert proc.poll() is None, out.read_text()[-2000:]
            assert time.monotonic() - changed < 5, f"not seen within 5 s: {out.read_text()[-1000:]}"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.django_db
def test_the_route_command_shows_changes_and_refuses_clearly(settings, capsys):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    call_command("route", "process_image", "--steps", "5,25,100", "--bake", "60", "--why", "move it")
    out = capsys.readouterr().out
    assert "process_image: lambda 5 %, celery 95 %; next 25 % -> 100 %, 60 s each" in out
    call_command("route")
    assert "process_image: lambda 5 %, celery 95 %" in capsys.readouterr().out
    call_command("route", "process_image", "--force", "originals/1/a.jpg=celery", "--why", "keep this one")
    assert routing.route("process_image").forced == {"originals/1/a.jpg": "celery"}
    call_command("route", "process_image", "--history")
    history = capsys.readouterr().out
    assert "command:" in history
    assert "move it" in history
    assert "keep this one" in history
    # The way back is one command: a share set by hand drops the steps still to come.
    call_command("route", "process_image", "--share", "0", "--why", "back")
    assert routing.route("process_image").steps == ()
    with pytest.raises(CommandError, match="there is no job 'nosuch'"):
        call_command("route", "nosuch")
    for args, message in [
        (["--share", "5"], "say why"),
        (["--share", "five", "--why", "x"], "'five' is not a share"),
        (["--share", "0.001", "--why", "x"], "steps of 0.01 %"),
        (["--force", "nokey", "--why", "x"], "KEY=RUNTIME"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("route", "process_image", *args)


@pytest.mark.django_db
def test_the_route_history_shows_the_whole_route_before_and_after(settings, capsys):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    call_command("route", "process_image", "--steps", "5,25,100", "--bake", "60", "--shadow", "10", "--why", "go")
    call_command("route", "process_image", "--bake", "120", "--why", "slower")
    capsys.readouterr()
    call_command("route", "process_image", "--history")
    history = capsys.readouterr().out
    steps = "lambda 5 % / celery, then 25 % → 100 %, {} s each; shadow 10 %, at most 1000 a day"
    assert f"from {steps.format(60)}\n    to   {steps.format(120)}\n" in history
    assert f"from (its mode)\n    to   {steps.format(60)}\n" in history


def test_an_audit_line_names_a_few_forced_keys_and_counts_the_rest():
    state = routing.Route("process_image", "celery", "lambda").as_dict()
    assert routing.audit_text(state) == "lambda 0 % / celery"
    forced = {f"originals/1/{n}.jpg": "lambda" for n in range(5)}
    assert routing.audit_text({**state, "forced": forced}) == (
        "lambda 0 % / celery; forced originals/1/0.jpg → lambda, originals/1/1.jpg → lambda, "
        "originals/1/2.jpg → lambda and 2 more keys"
    )
    assert routing.audit_text({}) == routing.audit_text(None) == "(its mode)"
