"""The control room's pages, as staff and as anyone else (boardsite/control/views.py)."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest
from django.test import Client
from django.utils import timezone

from boardsite.core import routing
from boardsite.core.models import JobRoute, RouteChange
from tests.control.runs import add_runs
from tests.factories import make_user

ROUTE = "/control/jobs/process_image/route/"
URLS = [
    ("get", "/control/"),
    ("get", "/control/jobs/process_image/"),
    ("get", "/control/jobs/process_image/costs.csv"),
    ("post", "/control/jobs/process_image/route/"),
    ("post", "/control/alerts/1/ack/"),
]


@pytest.fixture
def staff(db, settings):
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "process_image": "celery", "apply_results": "lambda"}
    client = Client()
    client.force_login(make_user("ada", is_staff=True))
    return client


@pytest.mark.django_db
def test_the_room_is_not_there_for_anyone_but_staff():
    anonymous, person = Client(), Client()
    person.force_login(make_user("bob"))
    for client in (anonymous, person):
        for method, url in URLS:
            assert getattr(client, method)(url, {"share": "100", "why": "x"}).status_code == 404, (method, url)
    assert not JobRoute.objects.exists()


def test_staff_move_a_job_in_steps_and_back_and_every_change_is_recorded(staff):
    r = staff.post(
        "/control/jobs/process_image/route/", {"canary": "lambda", "steps": "5,25,100", "bake": "600", "why": "start"}
    )
    assert r.status_code == 302
    assert routing.route("process_image").describe() == "lambda 5 %, celery 95 %"
    page = staff.get(r["Location"]).content.decode()
    assert "lambda 5 %, celery 95 %" in page
    assert "next 25 % → 100 %, 600 s each" in page
    r = staff.post("/control/jobs/process_image/route/", {"action": "back", "why": "not today"})
    assert routing.route("process_image").share == 0
    changes = list(RouteChange.objects.order_by("pk").values_list("by", "source", "why"))
    assert changes == [("ada", "page", "start"), ("ada", "page", "not today")]
    assert "not today" in staff.get("/control/").content.decode()


def test_a_change_without_a_reason_or_with_a_bad_share_is_refused_with_the_reason(staff):
    r = staff.post("/control/jobs/process_image/route/", {"share": "5", "why": ""}, follow=True)
    assert "say why" in r.content.decode()
    r = staff.post("/control/jobs/process_image/route/", {"share": "half", "why": "x"}, follow=True)
    assert "not a share" in r.content.decode()
    assert not RouteChange.objects.exists()


def test_changes_need_the_csrf_token(db, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("ada", is_staff=True))
    assert client.post("/control/jobs/process_image/route/", {"share": "5", "why": "x"}).status_code == 403


def test_a_unit_key_can_be_forced_and_followed_again(staff):
    staff.post(
        "/control/jobs/process_image/route/",
        {"force_key": "originals/1/a.jpg", "force_runtime": "lambda", "why": "try"},
    )
    assert routing.route("process_image").runtime_for("originals/1/a.jpg") == "lambda"
    staff.post(
        "/control/jobs/process_image/route/",
        {"force_key": "originals/1/a.jpg", "force_runtime": "follow", "why": "done"},
    )
    assert routing.route("process_image").forced == {}


def test_the_job_page_shows_numbers_charts_costs_and_a_verdict(staff):
    add_runs("celery", 120, failed=1, ms=400)
    add_runs("lambda", 120, ms=300)
    page = staff.get("/control/jobs/process_image/").content.decode()
    assert page.count("<svg") == 4
    assert "<polyline" in page
    assert "Verdict: <strong>ready to move</strong>" in page
    assert "Break-even" in page
    assert "Lambda arm64" in page
    rows = list(csv.reader(io.StringIO(staff.get("/control/jobs/process_image/costs.csv").content.decode())))
    assert rows[0][:2] == ["job", "runs_a_month"]
    assert [int(r[1]) for r in rows[1:]] == [1042, 10420, 104200]  # 240 runs a week x 30.4 / 7, 10x, 100x


def test_a_scheduled_job_cannot_be_split_and_the_page_says_so(staff):
    page = staff.get("/control/jobs/sweep_uploads/").content.decode()
    assert "cannot be split between runtimes" in page
    assert staff.get("/control/jobs/no_such_job/").status_code == 404


def test_an_automatic_rollback_is_shown_to_staff_on_every_page_until_acknowledged(staff, people):
    routing.route_set(job="process_image", by="ada", source="page", why="go", share=500)
    routing.route_set(
        job="process_image", by="watch", source="watch", why="automatic rollback: boom", share=0, alert=True
    )
    assert "automatic rollback: boom" in staff.get("/").content.decode()
    other = Client()
    other.force_login(people["owner"])
    assert "automatic rollback" not in other.get("/").content.decode()
    alert = RouteChange.objects.get(alert=True)
    for target in ("https://evil.example/", "//evil.example/", "logout", "control-job"):
        r = staff.post("/control/alerts/999999/ack/", {"next": target})
        assert r["Location"] == "/control/", f"{target}: back only to a page of this site, by its path"
    r = staff.post(f"/control/alerts/{alert.pk}/ack/", {"next": "/boards/mine/"})
    assert r["Location"] == "/boards/mine/"
    alert.refresh_from_db()
    assert alert.acknowledged_by == "ada"
    assert "automatic rollback: boom" not in staff.get("/").content.decode()


def _csv_link(page: str) -> str:
    found = re.search(r'<a href="([^"]*costs\.csv[^"]*)">CSV</a>', page)
    assert found, "the page links its CSV"
    return html.unescape(found.group(1))


def _page_costs(page: str) -> list[list[str]]:
    table = page.split('aria-label="Costs"', 1)[1].split("</table>", 1)[0]
    return [re.findall(r'<td class="num">\$?([^<]*)</td>', row) for row in table.split("<tr>")[2:]]


@pytest.mark.parametrize("query", ["?window=24h&free_tier=0", "?window=7d", "?window=1h&free_tier=0"])
def test_the_cost_csv_carries_the_pages_choices_and_says_them(staff, query):
    add_runs("celery", 120, ms=400)
    add_runs("lambda", 120, ms=400, at=timezone.now() - dt.timedelta(hours=3))
    page = staff.get(f"/control/jobs/process_image/{query}").content.decode()
    link = _csv_link(page)
    window = query.split("window=")[1].split("&")[0]
    left_out = "free_tier=0" in query
    assert f"window={window}" in link, link
    assert ("free_tier=0" in link) == left_out, link
    rows = list(csv.DictReader(io.StringIO(staff.get(link).content.decode())))
    shown = _page_costs(page)
    assert [
        [r["runs_a_month"], r["lambda_x86_64_usd"], r["lambda_arm64_usd"], r["celery_usd"], r["celery_workers"]]
        for r in rows
    ] == shown
    if left_out:
        assert rows[0]["lambda_arm64_usd"] != "0.00", "without the free tier Lambda costs something"
    assert {r["free_tier"] for r in rows} == {"left out" if left_out else "counted"}
    assert {r["window"] for r in rows} == {window}
    for arch in ("arm64", "x86_64"):
        (value,) = {r[f"break_even_{arch}_runs_a_month"] for r in rows}
        assert f"{arch} {value} runs a month" in page or (value.startswith("never") and "never below" in page)


def test_the_cost_csv_alone_counts_the_free_tier_and_honours_free_tier_0(staff):
    add_runs("lambda", 240, ms=400)  # 1,042 runs a month: $0.0056 of arm64 GB-s without the free tier
    counted = list(csv.DictReader(io.StringIO(staff.get("/control/jobs/process_image/costs.csv").content.decode())))
    left_out = list(
        csv.DictReader(io.StringIO(staff.get("/control/jobs/process_image/costs.csv?free_tier=0").content.decode()))
    )
    assert [r["lambda_arm64_usd"] for r in counted] == ["0.00", "0.00", "0.00"]
    assert [r["free_tier"] for r in counted] == ["counted"] * 3
    assert [r["free_tier"] for r in left_out] == ["left out"] * 3
    assert all(r["lambda_arm64_usd"] != "0.00" for r in left_out), left_out


def _change_cells(page: str) -> list[list[str]]:
    table = page.split('aria-label="Changes"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    return [[html.unescape(c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]


def test_the_audit_shows_the_route_before_and_after_a_change_the_same_way_and_complete(staff):
    from boardsite.control import watch

    routing.route_set(
        job="process_image",
        by="ada",
        source="page",
        why="move it",
        canary="lambda",
        steps=[500, 2500, 10_000],
        bake_seconds=600,
        shadow_share=1000,
        force={"originals/3/a.jpg": "lambda"},
    )
    assert watch.watch(now=timezone.now() + dt.timedelta(seconds=601))["advanced"] == ["process_image"]
    page = staff.get("/control/jobs/process_image/").content.decode()
    step, first = _change_cells(page)[:2]
    rest = "shadow 10 %, at most 1000 a day; forced originals/3/a.jpg → lambda"
    before = f"lambda 5 % / celery, then 25 % → 100 %, 600 s each; {rest}"
    after = f"lambda 25 % / celery, then 100 %, 600 s each; {rest}"
    assert first[3:5] == ["(its mode)", before]
    assert step[3:5] == [before, after]
    assert _change_cells(staff.get("/control/").content.decode())[1][3:5] == first[3:5], "the overview's too"
