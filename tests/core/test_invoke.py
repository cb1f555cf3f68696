"""The site's own Lambda invocations under throttling (boardsite/core/invoke.py).

moto's Lambda never throttles, so the invoke call is answered by botocore's Stubber (the one mock here, and only of
Lambda's answers): 429 TooManyRequestsException with Lambda's retryAfterSeconds, then success."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from django.test import Client

from boardsite import aws
from boardsite.core import invoke
from boardsite.core.models import InvokeEvent
from tests.factories import make_user

FUNCTION = "boardsite-functions"


@pytest.fixture
def stubbed(monkeypatch, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # never reached: the stub answers
    client = aws.make_client("lambda", settings.AWS_REGION, "http://127.0.0.1:9")
    stub = Stubber(client)
    monkeypatch.setattr(invoke.aws, "make_client", lambda *a, **kw: client)
    monkeypatch.setattr(invoke, "_breakers", {})
    with stub:
        yield stub
    stub.assert_no_pending_responses()


def throttle(stub: Stubber, after: str = "0.2") -> None:
    stub.add_client_error(
        "invoke",
        service_error_code="TooManyRequestsException",
        service_message="Rate Exceeded.",
        http_status_code=429,
        modeled_fields={
            "retryAfterSeconds": after,
            "Type": "User",
            "message": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        },
    )


def ok(stub: Stubber) -> None:
    stub.add_response("invoke", {"StatusCode": 202})


@pytest.mark.django_db
def test_a_throttle_is_retried_after_lambdas_hint_with_jitter(stubbed):
    throttle(stubbed, "0.2")
    throttle(stubbed, "0.3")
    ok(stubbed)
    slept: list[float] = []
    where = invoke.invoke_async(
        job="process_image", function=FUNCTION, event={}, idempotency_key="k", sleep=slept.append
    )
    assert where == "lambda"
    assert 0.2 <= slept[0] <= 0.24
    assert 0.3 <= slept[1] <= 0.36
    assert InvokeEvent.objects.filter(kind="throttle").count() == 2


@pytest.mark.django_db
def test_with_a_fallback_the_work_moves_within_a_second_and_only_once(stubbed):
    throttle(stubbed, "2")  # waiting 2 s would pass the 1 s: move now
    moved: list[str] = []
    where = invoke.invoke_async(
        job="process_image", function=FUNCTION, event={}, idempotency_key="unit-1", fallback=lambda: moved.append("x")
    )
    assert (where, moved) == ("fallback", ["x"])
    throttle(stubbed, "2")  # the same unit again (a second redelivery): not moved twice
    where = invoke.invoke_async(
        job="process_image", function=FUNCTION, event={}, idempotency_key="unit-1", fallback=lambda: moved.append("y")
    )
    assert (where, moved) == ("fallback-done", ["x"])
    assert InvokeEvent.objects.filter(kind="fallback").count() == 1


@pytest.mark.django_db
def test_short_hints_are_waited_out_before_falling_back(stubbed):
    for _ in range(3):
        throttle(stubbed, "0.4")
    ok(stubbed)
    clock = [0.0]
    moved: list[str] = []

    def sleep(seconds):
        clock[0] += seconds

    where = invoke.invoke_async(
        job="process_image",
        function=FUNCTION,
        event={},
        idempotency_key="u",
        fallback=lambda: moved.append("x"),
        sleep=sleep,
        clock=lambda: clock[0],
    )
    # 0.4 + 0.4 (+ up to 20 % jitter each: 0.96 at most) fit in the second; a third wait would not (0.8 + 0.4 at
    # least): it falls back after the third throttle, whatever the jitter.
    assert where == "fallback"
    assert moved == ["x"]
    assert clock[0] <= invoke.FALLBACK_WITHIN_SECONDS
    stubbed._queue.clear()  # the success answer was never asked for


@pytest.mark.django_db
def test_the_breaker_stops_calling_lambda_after_repeated_throttles(stubbed):
    for _ in range(invoke.BREAKER_THROTTLES):
        throttle(stubbed, "0")
    with pytest.raises(invoke.Throttled, match="circuit breaker is open"):
        invoke.invoke_async(job="process_image", function=FUNCTION, event={}, idempotency_key="a", sleep=lambda s: None)
    # Open: no call at all (the stub has no answer left: a call would fail the test).
    moved: list[str] = []
    where = invoke.invoke_async(
        job="process_image", function=FUNCTION, event={}, idempotency_key="b", fallback=lambda: moved.append("b")
    )
    assert (where, moved) == ("fallback", ["b"])
    assert InvokeEvent.objects.filter(kind="breaker_open").count() == 1


@pytest.mark.django_db
def test_the_control_room_counts_them(settings):
    settings.OFFLOAD_FALLBACKS = {"process_image": "celery"}
    for kind in ("throttle", "throttle", "fallback", "breaker_open"):
        InvokeEvent.objects.create(job="process_image", kind=kind)
    staff = Client()
    staff.force_login(make_user("ada", is_staff=True))
    page = staff.get("/control/jobs/process_image/").content.decode()
    assert "2 throttled, 1 moved to celery, circuit breaker opened 1 time." in page


def test_a_bad_fallback_is_a_system_check_error(settings):
    from django.core.checks import run_checks

    settings.OFFLOAD_FALLBACKS = {"process_image": "lambda"}
    assert [e.id for e in run_checks() if e.id.startswith("boardsite.")] == ["boardsite.E009"]
