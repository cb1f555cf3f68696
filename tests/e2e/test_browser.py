"""End to end in a real browser: sign up, create a board, drop two photos, see them appear as images.

Runs the serverless path as ``make run`` does: the bytes go from the browser straight to moto's S3, S3's event goes
to SQS, the local function runner processes it, and the web-side runner applies the result.
"""

from __future__ import annotations

import base64
import threading

import pytest

from boardsite.images.models import Image
from offload import registry, runner
from tests.conftest import jpeg_bytes
from tests.helpers import run_in_thread

pytestmark = pytest.mark.e2e

DROP_FILES = """
([files]) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
  }
  const zone = document.getElementById("uploader");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}
"""


@pytest.fixture
def lambda_stack(settings, local_aws):
    """The local function runner and the web-side job runner, polling in background threads."""
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_image_result": "lambda"}
    stop = threading.Event()
    threads = [
        run_in_thread(runner.run, [registry.get(name)], stop, wait_seconds=1)
        for name in ("process_image", "apply_image_result")
    ]
    yield
    stop.set()
    for t in threads:
        t.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_sign_up_create_board_and_drop_two_photos(page, live_server, lambda_stack, artifacts):
    page.set_default_timeout(20_000)
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and console.append(f"{r.status} {r.url}"))
    page.goto(f"{live_server.url}/signup/")
    page.fill("#id_username", "ada")
    page.fill("#id_display_name", "Ada L.")
    page.fill("#id_password", "correct-horse-battery")
    page.fill("#id_password_again", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("text=Ada L.").count() == 1

    page.goto(f"{live_server.url}/boards/new/")
    page.fill("#id_title", "Weekend")
    page.select_option("#id_visibility", "private")
    page.click("button[type=submit]")
    page.wait_for_url("**/boards/*/")

    files = [
        {"name": name, "b64": base64.b64encode(jpeg_bytes(size=size)).decode()}
        for name, size in (("first.jpg", (1600, 1200)), ("second.jpg", (900, 600)))
    ]
    page.evaluate(DROP_FILES, [files])

    # Each file has its own row with a progress bar that reaches 100 %.
    try:
        page.wait_for_function("document.querySelectorAll('#upload-list li.ok').length === 2", timeout=30_000)
    except Exception:
        pytest.fail(f"uploads did not finish: {page.inner_text('#upload-list')!r}; console: {console}")
    assert page.eval_on_selector_all("#upload-list progress", "bars => bars.map(b => b.value)") == [100, 100]

    # Both placeholders turn into real, loaded images without a reload.
    page.wait_for_function(
        "[...document.querySelectorAll('#grid .tile img')].filter(i => i.complete && i.naturalWidth > 0).length === 2",
        timeout=60_000,
    )
    imgs = page.locator("#grid .tile img")
    for i in range(2):
        img = imgs.nth(i)
        assert img.get_attribute("loading") == "lazy"
        assert len(img.get_attribute("srcset").split(", ")) == 2  # the square thumb and the medium size
        assert ".jpg?" in img.get_attribute("src")  # the fallback every browser reads
        source = page.locator("#grid .tile picture source").nth(i)
        assert source.get_attribute("type") == "image/webp"
        assert ".webp?" in source.get_attribute("srcset")
        # The placeholder and dominant colour paint the tile before the photo arrives.
        assert "data:image/webp;base64," in page.locator("#grid .tile").nth(i).get_attribute("style")
        # Chromium reads WebP, so that is what it chose.
        assert ".webp?" in img.evaluate("i => i.currentSrc")
        assert "X-Amz-Signature" in img.get_attribute("src")
        # Orientation 6: every photo is displayed upright (portrait).
        assert int(img.get_attribute("height")) > int(img.get_attribute("width"))
    page.screenshot(path=str(artifacts / "e2e-board.png"), full_page=True)

    assert sorted(Image.objects.values_list("filename", "status")) == [("first.jpg", "ready"), ("second.jpg", "ready")]

    # And after a reload, the grid is built from the database.
    page.reload()
    page.wait_for_function("document.querySelectorAll('#grid .tile img').length === 2")
