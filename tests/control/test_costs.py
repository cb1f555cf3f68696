"""The cost projection's arithmetic, against figures worked out by hand (boardsite/control/costs.py)."""

from __future__ import annotations

from decimal import Decimal

from boardsite.control import costs

# A photo job: 800 ms billed, 790 ms busy, 1 GB, 2 % cold starts of 600 ms INIT.
PHOTO = costs.PerRun(billed_ms=800, duration_ms=790, memory_mb=1024, cold_share=0.02, init_ms=600)


def test_lambda_at_three_million_runs_a_month_with_the_free_tier():
    # billed s = 3e6 x (800 + 0.02 x 600) / 1000 = 2,436,000 s at 1 GB = 2,436,000 GB-s; 400,000 free -> 2,036,000
    x86 = costs.lambda_cost(3_000_000, PHOTO, "x86_64")
    arm = costs.lambda_cost(3_000_000, PHOTO, "arm64")
    assert x86.requests == Decimal("0.40")  # (3,000,000 - 1,000,000) x $0.20 / 1M
    assert x86.compute == Decimal("33.93")  # 2,036,000 x 0.0000166667 = 33.9334...
    assert arm.compute == Decimal("27.15")  # 2,036,000 x 0.0000133334 = 27.1468...
    assert (x86.total, arm.total) == (Decimal("34.33"), Decimal("27.55"))


def test_lambda_without_the_free_tier():
    x86 = costs.lambda_cost(3_000_000, PHOTO, "x86_64", free_tier=False)
    arm = costs.lambda_cost(3_000_000, PHOTO, "arm64", free_tier=False)
    assert x86.requests == Decimal("0.60")
    assert x86.compute == Decimal("40.60")  # 2,436,000 x 0.0000166667 = 40.6000...
    assert arm.compute == Decimal("32.48")  # 2,436,000 x 0.0000133334 = 32.4801...


def test_inside_the_free_tier_lambda_is_free():
    assert costs.lambda_cost(100_000, PHOTO).total == Decimal("0.00")


def test_the_celery_fleet_in_whole_workers():
    # One worker: 730 h x 2 processes x 0.6 = 3,153,600 busy seconds a month; 3e6 runs x 0.79 s = 2,370,000 -> 1.
    assert costs.celery_workers(3_000_000, PHOTO) == 1
    assert costs.celery_cost(3_000_000, PHOTO) == Decimal("12.26")  # 730 x $0.0168 = 12.264
    # 100x: 237,000,000 s / 3,153,600 = 75.2 -> 76 workers, 76 x 730 x 0.0168 = 932.064
    assert costs.celery_workers(300_000_000, PHOTO) == 76
    assert costs.celery_cost(300_000_000, PHOTO) == Decimal("932.06")


def test_the_projection_at_today_10x_and_100x():
    rows = costs.project(3_000_000, PHOTO)
    assert [r.runs for r in rows] == [3_000_000, 30_000_000, 300_000_000]
    assert rows[0].lambda_arm.total == Decimal("27.55")
    # 30e6: 24,360,000 GB-s - 400,000 = 23,960,000 x 0.0000133334 = 319.468264; requests 29e6 x 2e-7 = 5.80
    assert rows[1].lambda_arm.total == Decimal("325.27")
    assert rows[2].workers == 76


def test_break_even_where_lambda_overtakes_one_worker():
    # arm64: 2e-7 (V - 1e6) + 1.33334e-5 (0.812 V - 400,000) = 12.26 -> V = 17.79336 / 1.1026721e-5 = 1,613,658
    # (each part is rounded to the cent: the crossing moves by at most ~900 runs).
    volume = costs.break_even(PHOTO, "arm64")
    assert abs(volume - 1_613_658) < 1000
    assert costs.lambda_cost(volume, PHOTO).total > costs.celery_cost(volume, PHOTO)
    assert costs.lambda_cost(volume - 1, PHOTO).total <= costs.celery_cost(volume - 1, PHOTO)


def test_a_job_lambda_never_overtakes():
    tiny = costs.PerRun(billed_ms=1, duration_ms=5000, memory_mb=128)  # cheap on Lambda, heavy for a worker
    assert costs.break_even(tiny) is None
