"""Many photos at once, in a real browser: select with clicks, shift-click and the keyboard, delete after the
dialog, undo from the toast; and, after the window, the page has the deletion done. The axe audit runs on each
state (a selection, the dialog, the toast)."""

from __future__ import annotations

import pytest

from boardsite.images.models import Image
from tests.e2e.browser import add_variants, axe_problems, csp_problems, log_in, wait_until, watch

pytestmark = pytest.mark.e2e

SELECTED = "document.querySelectorAll('#grid input.select:checked').length"
TILES = "document.querySelectorAll('#grid .tile').length"


@pytest.mark.django_db(transaction=True)
def test_select_with_click_shift_click_and_keys_delete_and_undo(page, live_server, local_aws, settings):
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    settings.BULK_UNDO_SECONDS = 3
    owner = make_user("selector")
    board = board_create(user=owner, title="Many", visibility="private")
    photos = add_images(board, owner, 5, ties=1)  # oldest first: the page shows photos[4] first
    for image in photos:
        add_variants(image, files=True)
    shown = [str(p.pk) for p in reversed(photos)]
    page.set_default_timeout(20_000)
    console = watch(page)
    log_in(page, live_server, "selector")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    box = lambda i: f'#grid input.select[value="{shown[i]}"]'  # noqa: E731

    # Click the first, shift-click the third: the three of them.
    page.click(box(0))
    page.click(box(2), modifiers=["Shift"])
    assert page.evaluate(SELECTED) == 3
    assert page.inner_text("#selection-count") == "3 photos selected"
    # With a selection, a click on a tile selects it instead of opening the photo.
    page.click(f'.tile[data-image-id="{shown[4]}"] img')
    assert page.url == f"{live_server.url}/boards/{board.pk}/"
    assert page.evaluate(SELECTED) == 4
    # While selecting, Space and Enter on a focused tile toggle it rather than open the photo.
    page.focus(f'.tile[data-image-id="{shown[3]}"] a')
    page.keyboard.press("Space")
    assert page.evaluate(SELECTED) == 5
    page.keyboard.press("Enter")
    page.wait_for_timeout(200)
    assert page.url == f"{live_server.url}/boards/{board.pk}/"
    assert page.evaluate(SELECTED) == 4
    # The keyboard: Enter and Space on the focused checkbox toggle it, Escape clears everything.
    page.focus(box(3))
    page.keyboard.press("Enter")
    assert page.evaluate(SELECTED) == 5
    page.keyboard.press("Space")
    assert page.evaluate(SELECTED) == 4
    assert page.is_visible("#selection-clear")
    page.keyboard.press("Escape")
    assert page.evaluate(SELECTED) == 0
    assert page.is_disabled("#bulk button[value=delete]")
    assert not page.is_visible("#selection-clear")

    page.click(box(1))
    page.click(box(3), modifiers=["Shift"])
    assert page.evaluate(SELECTED) == 3
    problems = axe_problems(page)
    page.click("#bulk button[value=delete]")
    assert page.inner_text("#bulk-confirm-text") == "Delete 3 photos?"
    problems += axe_problems(page)
    page.click("#bulk-confirm button[value=confirm]")
    wait_until(page, f"{TILES} === 2")
    assert page.is_visible("#undo-toast")
    assert page.inner_text("#undo-toast .text") == "3 photos deleted."
    problems += axe_problems(page)
    assert Image.objects.filter(deleting_until__isnull=False).count() == 3

    page.click("#undo-toast .undo")
    wait_until(page, f"{TILES} === 5")
    order = page.evaluate("[...document.querySelectorAll('#grid .tile')].map((t) => t.dataset.imageId)")
    assert order == shown  # back where they were
    assert Image.objects.filter(deleting_until__isnull=False).count() == 0

    # Deleted and left alone: when the toast closes the page asks for the deletion, and the photos are gone.
    page.click(box(0))
    page.keyboard.press("Shift+Tab")  # the focus moves on; the selection stays
    page.click(box(1), modifiers=["Shift"])
    page.click("#bulk button[value=delete]")
    page.click("#bulk-confirm button[value=confirm]")
    wait_until(page, f"{TILES} === 3")
    wait_until(page, "document.getElementById('undo-toast').hidden", timeout=10_000)
    deadline_ok = False
    for _ in range(50):
        if Image.objects.filter(board=board).count() == 3:
            deadline_ok = True
            break
        page.wait_for_timeout(100)
    assert deadline_ok, "the page's finish request did not delete the photos after the window"
    assert set(Image.objects.filter(board=board).values_list("pk", flat=True)) == {p.pk for p in photos[:3]}
    assert problems == [], "\n".join(problems)
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_without_script_the_checkboxes_lead_to_a_confirmation_page_and_an_undo(
    browser, page, live_server, local_aws, settings
):
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    settings.BULK_UNDO_SECONDS = 30  # a whole page round trip or two
    owner = make_user("noscript")
    board = board_create(user=owner, title="Plain", visibility="private")
    photos = add_images(board, owner, 3, ties=1)
    for image in photos:
        add_variants(image, files=True)
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    plain.set_default_timeout(20_000)
    log_in(plain, live_server, "noscript")
    plain.goto(f"{live_server.url}/boards/{board.pk}/")
    for image in photos[:2]:
        plain.check(f'#grid input.select[value="{image.pk}"]')
    plain.click("#bulk button[value=delete]")
    plain.wait_for_url(f"{live_server.url}/boards/{board.pk}/photos/")
    assert "Delete 2 photos?" in plain.inner_text("h1")
    assert Image.objects.filter(deleting_until__isnull=False).count() == 0
    plain.click("button[name=confirm]")
    plain.wait_for_url(f"{live_server.url}/boards/{board.pk}/?batch=*")
    assert "2 photos deleted." in plain.inner_text(".notice")
    assert plain.locator("#grid .tile").count() == 1
    plain.click(".notice button")
    plain.wait_for_url(f"{live_server.url}/boards/{board.pk}/")
    assert plain.locator("#grid .tile").count() == 3
    assert Image.objects.filter(deleting_until__isnull=False).count() == 0
    context.close()

    # The same pages pass the audit (axe itself needs script: the form is sent as a browser without it would).
    log_in(page, live_server, "noscript")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    page.check(f'#grid input.select[value="{photos[0].pk}"]')
    page.evaluate(
        """() => {
          const form = document.getElementById("bulk");
          const action = document.createElement("input");
          Object.assign(action, { type: "hidden", name: "action", value: "delete" });
          form.appendChild(action);
          form.submit();
        }"""
    )
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/photos/")
    problems = axe_problems(page)
    page.click("button[name=confirm]")
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/?batch=*")
    problems += axe_problems(page)
    assert problems == [], "\n".join(problems)
