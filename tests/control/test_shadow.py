"""Shadow runs of process_image: sampled at the door, run again on another runtime with scratch output only, and
compared with the real run (boardsite/core/jobs.py ``shadow``, boardsite/control/shadow.py)."""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from pathlib import PurePosixPath

import pytest
from django.test import Client
from django.utils import timezone
from PIL import Image as PILImage

from boardsite.control import shadow, watch
from boardsite.core import jobs, routing
from boardsite.core.models import JobRun, ShadowPair
from boardsite.images.models import Image
from devstack import runner
from offload import aws, registry
from offload.config import SHADOW_PREFIX
from tests.factories import make_user
from tests.helpers import Now, upload


@pytest.fixture
def inline_site(settings, people, board, local_aws, monkeypatch):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "inline", "apply_results": "inline"}
    monkeypatch.setattr(jobs, "SHADOW_EXECUTOR", Now())
    client = Client()
    client.force_login(people["contributor"])
    return client


def keys_under(prefix: str) -> list[str]:
    return aws.list_keys(aws.config.load().bucket, prefix)


def test_a_noise_pair_runs_twice_inline_writes_only_scratch_and_agrees(inline_site, board, jpeg, settings):
    # baseline = canary = inline: every sampled unit is a noise pair (the same runtime twice).
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    body = upload(inline_site, board.pk, jpeg())
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.status == "ready"
    pair = ShadowPair.objects.get()
    assert (pair.primary_runtime, pair.shadow_runtime, pair.noise) == ("inline", "inline", True)
    assert pair.unit == registry.unplaced(image.original_key)
    assert pair.agreed is True, pair.comparison
    assert all(v["identical"] for v in pair.comparison["variants"])
    assert {c for c, v in pair.comparison["checks"].items() if v["passed"]} == {
        "outcome",
        "variants",
        "dimensions",
        "bytes",
        "pixels",
    }
    scratch = keys_under(f"{SHADOW_PREFIX}{pair.pair_id}/")
    assert len(scratch) == 6, scratch  # 3 sizes x 2 formats, no manifest: nothing else written
    assert JobRun.objects.filter(job="process_image", shadow=True).count() == 1
    assert JobRun.objects.filter(job="process_image", shadow=False).count() == 1
    assert JobRun.objects.filter(job="apply_results", shadow=False).count() == 2  # the real result and the shadow's


def test_a_shadow_on_lambda_goes_through_its_queue_and_changes_no_row(inline_site, board, jpeg, settings):
    # The results job on Lambda: Lambda-run jobs report on its queue (the shadow runs here).
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "apply_results": "lambda"}
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="lambda", shadow_share=10_000)
    bodies = [upload(inline_site, board.pk, jpeg()) for _ in range(12)]
    process, apply = registry.get("process_image"), registry.get("apply_results")
    while runner.poll_once(apply, wait_seconds=0):  # the real results
        pass
    rows = {str(i.pk): (i.status, i.width, i.placeholder) for i in Image.objects.all()}
    assert {status for status, _, _ in rows.values()} == {"ready"}
    # Lambda's part, locally: the runner takes the shadow events from the uploads queue, the results job their reports.
    while runner.poll_once(process, wait_seconds=0):
        pass
    while runner.poll_once(apply, wait_seconds=0):
        pass
    pairs = list(ShadowPair.objects.all())
    assert len(pairs) == 12
    lambda_pairs = [p for p in pairs if not p.noise]
    assert lambda_pairs, "one sample in ten is noise: 12 give at least one real pair"
    assert {(p.primary_runtime, p.shadow_runtime) for p in lambda_pairs} == {("inline", "lambda")}
    assert all(p.agreed for p in pairs), [p.comparison for p in pairs if not p.agreed]
    assert {str(i.pk): (i.status, i.width, i.placeholder) for i in Image.objects.all()} == rows, "no row changed"
    assert len(bodies) == 12


def test_a_different_output_is_a_disagreement_shown_side_by_side(inline_site, board, jpeg, settings):
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    upload(inline_site, board.pk, jpeg())
    pair = ShadowPair.objects.get()
    # What a different runtime might write: other pixels for one variant.
    thumb = next(v for v in pair.shadow_result["variants"] if v["key"].endswith("/thumb.jpg"))
    out = io.BytesIO()
    PILImage.new("RGB", (thumb["width"], thumb["height"]), (255, 0, 0)).save(out, "JPEG")
    aws.client("s3").put_object(Bucket=settings.BOARDSITE_BUCKET, Key=thumb["key"], Body=out.getvalue())
    assert shadow.compare(pair)
    pair.refresh_from_db()
    assert pair.agreed is False
    assert pair.comparison["checks"]["pixels"]["passed"] is False
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    page = staff.get("/control/jobs/process_image/").content.decode()
    assert "0.0 %</strong> of 0 compared" not in page
    assert f"{pair.unit}: inline vs inline" in page
    assert page.count("(shadow)") >= 2, "both outputs of each variant shown"


def test_a_disagreement_shows_each_variants_two_outputs_on_one_row_and_which_dimensions_differ(
    inline_site, board, jpeg
):
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    upload(inline_site, board.pk, jpeg())
    pair = ShadowPair.objects.get()
    # What a different runtime might write: the medium variant one pixel shorter, in both formats.
    variants = [
        {**v, "height": v["height"] - 1} if PurePosixPath(v["key"]).stem == "medium" else v
        for v in pair.shadow_result["variants"]
    ]
    medium = next(v for v in variants if v["key"].endswith("/medium.jpg"))
    pair.shadow_result = {**pair.shadow_result, "variants": variants}
    pair.save()
    assert shadow.compare(pair)
    pair.refresh_from_db()
    dimensions = pair.comparison["checks"]["dimensions"]
    assert dimensions["passed"] is False
    w, h = medium["width"], medium["height"]
    assert dimensions["found"] == f"medium: {w}×{h + 1} vs {w}×{h}"
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    page = staff.get("/control/jobs/process_image/").content.decode()
    assert f"dimensions: differs — medium: {w}×{h + 1} vs {w}×{h}" in page
    section = page.split(f"{pair.unit}: inline vs inline", 1)[1].split("<h2>", 1)[0]
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", section, re.S) if "<img" in r]
    names = sorted(v["name"] for v in pair.comparison["variants"])
    assert len(rows) == len(names) == 6, "one row per variant"
    for name, row in zip(names, rows, strict=True):
        assert re.findall(r'<img [^>]*alt="([^"]*)"', row) == [
            f"{name} from inline (the real run)",
            f"{name} from inline (shadow)",
        ], row
    header = re.search(r"<thead>(.*?)</thead>", section, re.S).group(1)
    assert "inline (the real run)" in header
    assert "inline (shadow)" in header


def test_pixels_are_measured_by_the_shadow_run_where_the_comparing_process_has_no_pillow(
    inline_site, board, jpeg, monkeypatch
):
    # The deployed web stage has no Pillow (its absence simulated: _psnr says it cannot measure); the shadow run,
    # which has it, measured each variant against the real run's.
    monkeypatch.setattr(shadow, "_psnr", lambda *args: None)
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    upload(inline_site, board.pk, jpeg())
    pair = ShadowPair.objects.get()
    assert len(pair.shadow_result["pixels"]) == 6
    assert set(pair.shadow_result["pixels"].values()) == {"identical"}
    assert pair.comparison["checks"]["pixels"]["passed"] is True
    assert all(v["identical"] for v in pair.comparison["variants"])
    # Measured different by the shadow run: a disagreement, not "not measured".
    name = next(iter(pair.shadow_result["pixels"]))
    pair.shadow_result = {**pair.shadow_result, "pixels": {**pair.shadow_result["pixels"], name: 21.5}}
    pair.save()
    assert shadow.compare(pair)
    pair.refresh_from_db()
    assert pair.comparison["checks"]["pixels"]["passed"] is False
    assert "21.5 dB" in pair.comparison["checks"]["pixels"]["found"]


def test_a_shadow_run_that_finishes_first_waits_for_the_real_run_then_gives_up(local_aws, monkeypatch):
    from offload.functions import process_image

    monkeypatch.setattr(process_image, "SHADOW_WAIT_SECONDS", 0.5)
    result = {"status": "ready", "variants": [{"key": "shadow/p/variants/1/x/thumb.jpg"}]}
    started = time.monotonic()
    assert process_image.pixels_against_real_run(aws.config.load().bucket, "originals/lambda/1/x.jpg", result) == {}
    assert 0.5 <= time.monotonic() - started < 3
    assert process_image.pixels_against_real_run("b", "originals/1/x.jpg", {"status": "failed"}) == {}


def test_the_daily_cap_stops_shadow_runs(inline_site, board, jpeg):
    routing.route_set(
        job="process_image", by="ada", source="page", why="s", canary="inline", shadow_share=10_000, shadow_daily_cap=2
    )
    for _ in range(4):
        upload(inline_site, board.pk, jpeg())
    assert ShadowPair.objects.count() == 2
    assert Image.objects.filter(status="ready").count() == 4


def test_a_job_without_a_comparison_cannot_shadow(db, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "apply_results": "lambda"}
    assert registry.get("apply_results").shadow is None
    with pytest.raises(routing.RouteError, match="cannot run in shadow"):
        routing.route_set(job="apply_results", by="ada", source="page", why="s", shadow_share=100)


def test_shadow_outputs_expire(inline_site, board, jpeg):
    routing.route_set(job="process_image", by="ada", source="page", why="shadow", canary="inline", shadow_share=10_000)
    upload(inline_site, board.pk, jpeg())
    pair = ShadowPair.objects.get()
    assert keys_under(f"{SHADOW_PREFIX}{pair.pair_id}/")
    assert watch.watch(now=timezone.now() + dt.timedelta(hours=23))["expired"] == 0
    assert watch.watch(now=timezone.now() + dt.timedelta(hours=25))["expired"] == 1
    assert keys_under(f"{SHADOW_PREFIX}{pair.pair_id}/") == []
    assert keys_under(registry.unplaced(Image.objects.get().original_key).replace("originals/", "variants/", 1)[:-4])


def test_sampling_takes_the_share_asked_for():
    route = routing.Route("process_image", "celery", "lambda", share=2500, shadow_share=1000)
    units = [f"originals/1/{i:08d}.jpg" for i in range(10_000)]
    sampled = [u for u in units if route.shadow_for(u)]
    assert 900 < len(sampled) < 1100
    noise = [u for u in sampled if route.shadow_for(u)[1]]
    assert 60 < len(noise) < 140
    for unit in sampled:
        target, is_noise = route.shadow_for(unit)
        assert (target == route.runtime_for(unit)) == is_noise
