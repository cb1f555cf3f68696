"""Invitations by email in a real browser: an owner invites a new address, the mail arrives at the local SES, its
link leads through sign-up onto the board. The pages on the way pass the axe-core audit; no script is needed."""

from __future__ import annotations

import re

import pytest

from boardsite.boards.models import Membership, Role
from boardsite.boards.services import board_create
from boardsite.invitations import services
from tests.e2e.browser import axe_problems, csp_problems, log_in, watch
from tests.factories import make_user
from tests.mail_helpers import BACKEND, parts, sent_mail

pytestmark = pytest.mark.e2e

ADDRESS = "grace@example.org"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
def test_an_owner_invites_a_new_address_who_signs_up_through_the_mailed_link(
    browser, live_server, local_aws, settings, script
):
    settings.EMAIL_BACKEND = BACKEND
    settings.SITE_URL = live_server.url  # the mailed link leads to this server
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "send_email": "inline"}
    owner = make_user("owner1")
    board = board_create(user=owner, title="Garden", visibility="private")

    context = browser.new_context(java_script_enabled=script)
    page = context.new_page()
    page.set_default_timeout(20_000)
    console = watch(page)
    log_in(page, live_server, "owner1")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    page.fill("#invite-email", ADDRESS)
    page.select_option("#invite-role", Role.VIEWER)
    page.click("text=Send invitation")
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/#members")
    assert page.locator(".messages").inner_text().strip() == f"Invitation sent to {ADDRESS}."
    assert page.locator(f"ul.invitations li:has-text('{ADDRESS}')").count() == 1
    problems = axe_problems(page) if script else []  # axe runs as a script in the page

    [msg] = [m for m in sent_mail(local_aws) if m["To"] == ADDRESS]
    [link] = re.findall(r"https?://\S+", parts(msg)["text/plain"])
    context.clear_cookies()  # the invited person, in a browser of their own
    page.goto(link)
    assert page.locator("#id_invited_email").input_value() == ADDRESS
    if script:
        problems += axe_problems(page)
    page.fill("#id_username", "grace")
    page.fill("#id_password", "correct-horse-battery")
    page.fill("#id_password_again", "correct-horse-battery")
    page.click("text=Create account and join")
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/")
    assert page.locator("h1").inner_text().startswith("Garden")
    assert "you are now a viewer of this board" in page.locator(".messages").inner_text()
    assert Membership.objects.get(board=board, user__username="grace").role == Role.VIEWER

    page.goto(link)  # a second time: refused, with the reason
    assert "accepted already" in page.locator("[role=alert]").inner_text()
    if script:
        problems += axe_problems(page)

    # A second board's invitation: listed in the site for the now confirmed address, accepted there.
    second = board_create(user=owner, title="Orchard", visibility="private")
    services.invitation_create(board=second, user=owner, address=ADDRESS, role=Role.CONTRIBUTOR)
    page.goto(f"{live_server.url}/")
    page.click("text=1 invitation to a board for your address")
    page.wait_for_url(f"{live_server.url}/invitations/")
    if script:
        problems += axe_problems(page)
    page.click("main form button:text-is('Accept')")
    page.wait_for_url(f"{live_server.url}/boards/{second.pk}/")
    assert Membership.objects.get(board=second, user__username="grace").role == Role.CONTRIBUTOR
    assert problems == [], "\n".join(problems)
    if script:
        assert csp_problems(page, console) == []
    context.close()
