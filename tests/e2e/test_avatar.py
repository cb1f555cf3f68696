"""A profile picture in a real browser: dropped on the profile page (script: ticket, straight to S3 with progress,
the processor, the page reloads to show it), a hostile file refused with its reason and the old picture kept, the
no-script form, the picture on a board's member list, and an axe audit of the profile page in each state."""

from __future__ import annotations

import base64

import pytest

from boardsite.accounts.models import Avatar
from boardsite.boards.services import board_create
from tests.e2e.browser import axe_problems, csp_problems, log_in, wait_until, watch
from tests.factories import jpeg_bytes, make_user

pytestmark = pytest.mark.e2e

DROP_FILE = """
([b64, name]) => {
  const dt = new DataTransfer();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
  const zone = document.getElementById("avatar-form");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}
"""
SHOWN = (
    "(() => { const i = document.querySelector('#avatar-current img.avatar'); return !!i && i.naturalWidth > 0; })()"
)


def across_reload(page, expression: str, timeout: float = 60_000) -> None:
    """``wait_until`` across the reload the page's script makes once the picture is processed."""
    from playwright.sync_api import Error

    for _ in range(3):
        try:
            return wait_until(page, expression, timeout=timeout)
        except Error:  # the page navigated while asked
            page.wait_for_load_state()
    return wait_until(page, expression, timeout=timeout)


@pytest.mark.django_db(transaction=True)
def test_drop_a_picture_see_it_and_a_refused_one_keeps_it(page, browser, live_server, local_aws, settings, tmp_path):
    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    user = make_user("ada")
    board = board_create(user=user, title="Avatars", visibility="private")
    console = watch(page)
    page.set_default_timeout(30_000)
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/profile/")
    assert page.locator("#avatar-current .avatar.initials").inner_text() == "A"
    problems = axe_problems(page)

    # Dropped: straight to S3, processed, and the page reloads to show it, loaded from the private bucket.
    data = base64.b64encode(jpeg_bytes()).decode()
    page.evaluate(DROP_FILE, [data, "me.jpg"])
    across_reload(page, SHOWN)
    img = page.locator("#avatar-current img.avatar")
    assert "X-Amz-Signature" in img.get_attribute("src")
    assert ".webp?" in img.evaluate("i => i.currentSrc"), "Chromium picks the WebP"
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [128, 128]
    first = Avatar.objects.get(user=user).original_key
    problems += axe_problems(page)

    # A PDF under a photo's name, through the file picker: refused with the processor's reason, the picture stays.
    hostile = tmp_path / "notes.jpg"
    hostile.write_bytes(b"%PDF-1.7 this is not a photo\n" * 200)
    page.set_input_files("#avatar-file", str(hostile))
    page.click("#avatar-submit")
    across_reload(page, "!!document.querySelector('[data-avatar-error]')")
    assert "not an image" in page.locator("[data-avatar-error]").inner_text()
    wait_until(page, SHOWN)
    assert Avatar.objects.get(user=user).original_key == first
    problems += axe_problems(page)

    # On the board's member list beside the name.
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    wait_until(
        page, "(() => { const i = document.querySelector('.members img.avatar'); return !!i && i.naturalWidth > 0; })()"
    )
    assert problems == [], "\n".join(problems)
    assert csp_problems(page, console) == []

    # Without script: the plain form posts the file to the site, which runs the same job.
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    log_in(plain, live_server, "ada")
    plain.goto(f"{live_server.url}/profile/")
    other = tmp_path / "other.jpg"
    other.write_bytes(jpeg_bytes(orientation=1))
    plain.set_input_files("#avatar-file", str(other))
    plain.click("#avatar-submit")
    plain.wait_for_url(f"{live_server.url}/profile/#avatar")
    assert plain.locator("#avatar-current img.avatar").count() == 1
    assert Avatar.objects.get(user=user).original_key not in ("", first)
    context.close()
