"""End to end in a real browser: sign up, create a board, drop two photos, see them appear as images.

Runs the serverless path as ``make run`` does: the bytes go from the browser straight to moto's S3, S3's event goes
to SQS, the local function runner processes it, and the web-side runner applies the result.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import unquote

import pytest

from boardsite.images.models import Image
from devstack import runner
from offload import registry
from tests.e2e.browser import add_variants, axe_problems, csp_problems, log_in, wait_until, watch
from tests.factories import jpeg_bytes
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
    settings.OFFLOAD_MODES = {"process_image": "lambda", "apply_results": "lambda"}
    stop = threading.Event()
    threads = [
        run_in_thread(runner.run, [registry.get(name)], stop, wait_seconds=1)
        for name in ("process_image", "apply_results")
    ]
    yield
    stop.set()
    for t in threads:
        t.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_sign_up_create_board_and_drop_two_photos(page, live_server, local_aws, lambda_stack, artifacts):
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/signup/")
    page.fill("#id_username", "ada")
    page.fill("#id_email", "ada@example.com")
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
    board_url = page.url
    # The policy allows the site itself and the bucket (moto's endpoint here), nothing inline.
    policy = page.request.get(board_url).headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert f"img-src 'self' data: {local_aws}" in policy
    assert f"connect-src 'self' {local_aws}" in policy
    assert "unsafe-inline" not in policy

    files = [
        {"name": name, "b64": base64.b64encode(jpeg_bytes(size=size)).decode()}
        for name, size in (("first.jpg", (1600, 1200)), ("second.jpg", (900, 600)))
    ]
    page.evaluate(DROP_FILES, [files])

    # Each file has its own row with a progress bar that reaches 100 %.
    try:
        wait_until(page, "document.querySelectorAll('#upload-list li.ok').length === 2", timeout=30_000)
    except AssertionError:
        pytest.fail(f"uploads did not finish: {page.inner_text('#upload-list')!r}; console: {console}")
    assert page.eval_on_selector_all("#upload-list progress", "bars => bars.map(b => b.value)") == [100, 100]

    # Both placeholders turn into real, loaded images without a reload.
    wait_until(
        page,
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
    # One's own new photos can be selected at once (many photos at once: tests/e2e/test_bulk_select.py).
    assert page.locator("#grid .tile input.select").count() == 2
    assert page.is_visible("#bulk")

    assert sorted(Image.objects.values_list("filename", "status")) == [("first.jpg", "ready"), ("second.jpg", "ready")]

    # And after a reload, the grid is built from the database, painted from data- attributes by a script.
    page.reload()
    wait_until(page, "document.querySelectorAll('#grid .tile img').length === 2")
    assert "data:image/webp;base64," in page.locator("#grid .tile").first.get_attribute("style")

    # The photo's own page: the placeholder behind the photo, and a delete that asks first.
    page.locator("#grid .tile a").first.click()
    page.wait_for_url("**/images/*/")
    assert "data:image/webp;base64," in page.locator(".photo img").get_attribute("style")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button.danger")
    page.wait_for_timeout(300)
    assert "/images/" in page.url  # dismissed: nothing sent
    assert Image.objects.count() == 2
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button.danger")
    page.wait_for_url(board_url)
    assert Image.objects.count() == 1

    assert csp_problems(page, console) == []
    assert not [m for m in console if m[:1].isdigit()], console  # no error responses along the way


WAITING = "You have 20 uploads waiting to be sent; wait for them to finish."
OVER_QUOTA = "You have used today's upload allowance of 1 GB; try again tomorrow."


@pytest.mark.django_db(transaction=True)
def test_quota_answers_wait_or_fail_one_file_and_the_rest_go_on(page, live_server, local_aws, settings):
    """A 429 makes the page wait Retry-After seconds and ask again; a 413 fails that file only; no CSP violation.

    The site's answers are stood in for by the browser's request routing, so the page's handling is tested on its own.
    """
    from boardsite.boards.services import board_create
    from tests.factories import make_user

    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    user = make_user("grace")
    board = board_create(user=user, title="Quota", visibility="private")
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "grace")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    asked: list[tuple[str, float]] = []

    def answer(route) -> None:
        name = json.loads(route.request.post_data)["filename"]
        asked.append((name, time.monotonic()))
        if name == "first.jpg" and len([n for n, _ in asked if n == name]) == 1:
            route.fulfill(status=429, headers={"Retry-After": "1"}, json={"error": WAITING})
        elif name == "second.jpg":
            route.fulfill(status=413, json={"error": OVER_QUOTA})
        else:
            route.continue_()

    page.route("**/api/uploads", answer)
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    files = [
        {"name": name, "b64": base64.b64encode(jpeg_bytes(size=(400, 300))).decode()}
        for name in ("first.jpg", "second.jpg", "third.jpg", "fourth.jpg")  # 3 at a time: the 4th waits for a free slot
    ]
    page.evaluate(DROP_FILES, [files])

    first = page.locator("#upload-list li").nth(0)
    wait_until(
        page, f"document.querySelector('#upload-list li')?.innerText.includes({json.dumps('waiting: ' + WAITING)})"
    )
    try:
        wait_until(page, "document.querySelectorAll('#upload-list li.ok, #upload-list li.failed').length === 4")
    except AssertionError:
        pytest.fail(f"uploads did not settle: {page.inner_text('#upload-list')!r}; console: {console}")
    assert "uploaded" in first.inner_text()
    second = page.locator("#upload-list li").nth(1)
    assert second.get_attribute("class") == "failed"
    assert f"failed: {OVER_QUOTA}" in second.inner_text()
    assert [page.locator("#upload-list li").nth(i).get_attribute("class") for i in (2, 3)] == ["ok", "ok"]
    # Asked again for the first file only after Retry-After, and once.
    (t1, t2) = [t for n, t in asked if n == "first.jpg"]
    assert t2 - t1 >= 0.9
    assert [n for n, _ in asked].count("second.jpg") == 1
    assert sorted(Image.objects.values_list("filename", "status")) == [
        ("first.jpg", "ready"),
        ("fourth.jpg", "ready"),
        ("third.jpg", "ready"),
    ]
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_scrolling_a_board_of_many_pages_loads_them_and_back_returns_to_the_same_place(page, live_server, local_aws):
    """More tiles join the page as one scrolls; the address remembers how far (?until=), so after following a photo
    the back button shows the same tiles at the same place."""
    from boardsite.boards.services import board_create
    from boardsite.images.selectors import BOARD_PAGE_SIZE
    from tests.factories import add_images, make_user

    user = make_user("scroller")
    board = board_create(user=user, title="Album", visibility="public")
    total = 2 * BOARD_PAGE_SIZE + 15
    add_images(board, user, total, status="processing")  # plain tiles: nothing to fetch from storage
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    assert page.locator(".tile").count() == BOARD_PAGE_SIZE
    for _ in range(20):
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(300)
        if page.locator(".tile").count() == total:
            break
    assert page.locator(".tile").count() == total
    assert page.locator("#more").count() == 0
    assert "until=" in page.url
    ids = page.eval_on_selector_all(".tile", "tiles => tiles.map(t => t.dataset.imageId)")
    assert len(set(ids)) == total
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0
    page.goto(f"{live_server.url}/")
    page.go_back()
    wait_until(page, f"document.querySelectorAll('.tile').length === {total}")
    assert page.eval_on_selector_all(".tile", "tiles => tiles.map(t => t.dataset.imageId)") == ids
    wait_until(page, f"Math.abs(window.scrollY - {scrolled}) < 400")
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_arrow_keys_go_to_the_older_and_newer_photo(page, live_server, local_aws):
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    user = make_user("walker")
    board = board_create(user=user, title="Walk", visibility="public")
    oldest, middle, newest = add_images(board, user, 3, status="processing", ties=1)
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/images/{middle.pk}/")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"{live_server.url}/images/{oldest.pk}/")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"{live_server.url}/images/{middle.pk}/")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"{live_server.url}/images/{newest.pk}/")
    page.keyboard.press("ArrowLeft")  # the newest has no newer photo: nothing happens
    page.wait_for_timeout(300)
    assert page.url == f"{live_server.url}/images/{newest.pk}/"
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_every_page_passes_an_accessibility_audit(page, live_server, local_aws):
    """No serious or critical axe-core violation on any page, signed out and signed in (owner of a board with a
    photo, a member, a failed upload, the forms)."""
    from boardsite.boards import services
    from boardsite.boards.models import Membership, Role
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    owner, member = make_user("owner1", is_staff=True), make_user("member1")  # staff: the control room too
    board = board_create(user=owner, title="Audit", visibility="private", description="A board to audit.")
    public = board_create(user=owner, title="Open", visibility="public")
    Membership.objects.create(board=board, user=member, role=Role.CONTRIBUTOR)
    services.ownership_offer(board=board, user=owner, username="member1")  # the owner's page shows it, open
    ready, pending = add_images(board, owner, 2, status="ready", ties=1)
    pending.status = "processing"
    pending.save(update_fields=["status"])
    failed = add_images(board, owner, 1, status="failed", ties=1)[0]
    failed.error = "This file is not an image."
    failed.save(update_fields=["error"])
    page.set_default_timeout(20_000)
    problems: list[str] = []
    for path in ("/", "/signup/", "/login/", "/password/reset/", f"/boards/{public.pk}/", "/boards/public/"):
        page.goto(f"{live_server.url}{path}")
        problems += axe_problems(page)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "owner1")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    signed_in = [
        "/",
        "/boards/new/",
        "/boards/mine/",
        f"/boards/{board.pk}/",
        f"/boards/{board.pk}/edit/",
        f"/boards/{board.pk}/delete/",
        f"/boards/{board.pk}/leave/",
        f"/images/{ready.pk}/",
        f"/images/{failed.pk}/",
        "/profile/",
        "/password/change/",
        "/notifications/",
        "/notifications/preferences/",
        "/control/",
        "/control/jobs/process_image/",
        "/control/jobs/sweep_uploads/",
        "/control/dead-letters/",
    ]
    from boardsite.core import runs
    from offload import registry
    from offload import runs as offload_runs

    for runtime in ("celery", "lambda"):  # something to chart and price
        offload_runs.measure(registry.get("process_image"), runtime, lambda: None, {}, runs.record)
    for path in signed_in:
        page.goto(f"{live_server.url}{path}")
        problems += axe_problems(page)
    assert problems == [], "\n".join(problems)
    # The drop zone's file picker is in the tab order.
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    focused = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        if focused[-1] == "file-input":
            break
    assert focused[-1] == "file-input", focused


@pytest.mark.django_db(transaction=True)
def test_a_photo_whose_files_are_gone_shows_a_missing_tile(page, live_server, local_aws):
    from boardsite.boards.services import board_create
    from boardsite.images.models import Variant
    from tests.factories import add_images, make_user

    user = make_user("loser")
    board = board_create(user=user, title="Gone", visibility="public")
    [image] = add_images(board, user, 1)
    for fmt in ("webp", "jpeg"):  # rows for files that are not in the (local) bucket
        Variant.objects.create(
            image=image,
            name="thumb",
            key=f"variants/{board.pk}/{image.pk}/thumb.{fmt}",
            width=320,
            height=320,
            format=fmt,
            content_type=f"image/{fmt}",
        )
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    wait_until(page, "document.querySelector('.tile').dataset.status === 'missing'")
    assert "Photo missing" in page.inner_text(".tile")
    # The site checked (verify=1) before saying so; the tile still leads to the image page, where an owner deletes it.
    assert page.get_attribute(".tile a", "href") == f"/images/{image.pk}/"
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_the_header_badge_counts_photos_another_member_added(page, live_server, local_aws, settings):
    """Another member uploads two photos (the API, inline mode): the owner's header says so, and the browser's own
    accessibility tree names the link "Notifications, 1 unread"; following the notification reads it."""
    from django.test import Client

    from boardsite.boards.models import Membership, Role
    from boardsite.boards.services import board_create
    from tests.factories import make_user
    from tests.helpers import upload

    settings.OFFLOAD_MODES = {"process_image": "inline", "apply_results": "inline"}
    owner, ada = make_user("grace"), make_user("ada")
    board = board_create(user=owner, title="Holiday", visibility="private")
    Membership.objects.create(board=board, user=ada, role=Role.CONTRIBUTOR)
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "grace")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.get_by_role("link", name="Notifications", exact=True).is_visible()

    uploader = Client()
    uploader.force_login(ada)
    for n in range(2):
        upload(uploader, board.pk, jpeg_bytes(size=(400, 300)), name=f"beach-{n}.jpg")

    page.reload()
    link = page.get_by_role("link", name="Notifications, 1 unread", exact=True)
    assert link.is_visible()
    assert link.locator(".count").inner_text() == "1"
    link.click()
    page.get_by_role("button", name="ada added 2 photos to Holiday").click()
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/")
    assert page.get_by_role("link", name="Notifications", exact=True).is_visible(), "read: no count any more"
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_photos_load_through_the_cdn_by_cookie_on_a_board_and_by_signed_url_on_home(
    page, live_server, local_aws, settings, monkeypatch
):
    """The CloudFront mode in a real browser: the board page's plain URLs load because Chromium sends the board's
    cookies to the distribution (a stand-in: offload/localcdn.py), the home page's cover by its signed URL."""
    from boardsite.boards.services import board_create
    from boardsite.images import cdn
    from boardsite.images.models import Variant
    from devstack import cdn as localcdn
    from offload import aws
    from tests.factories import add_images, jpeg_bytes, make_user

    key, pem, _ = localcdn.new_key_pair()
    monkeypatch.setenv("BOARDSITE_CDN_KEY_ID", "KTESTKEYPAIR")
    monkeypatch.setenv("BOARDSITE_CDN_PRIVATE_KEY", pem)
    s3 = aws.client("s3")
    user = make_user("cdnviewer")
    board = board_create(user=user, title="Edge", visibility="public")
    [image] = add_images(board, user, 1)
    thumb = f"variants/{board.pk}/{image.pk}/thumb.jpg"
    s3.put_object(Bucket=settings.BOARDSITE_BUCKET, Key=thumb, Body=jpeg_bytes((320, 320)), ContentType="image/jpeg")
    Variant.objects.create(
        image=image, name="thumb", key=thumb, width=320, height=320, format="jpeg", content_type="image/jpeg"
    )
    emulator = localcdn.CdnStandIn(s3, settings.BOARDSITE_BUCKET, {"KTESTKEYPAIR": key.public_key()})
    host = live_server.url.split("//", 1)[1].rsplit(":", 1)[0]  # the site's host: its cookies reach the CDN's port
    with localcdn.running(emulator, host=host):
        settings.BOARDSITE_CDN_URL = emulator.base_url
        settings.BOARDSITE_CDN_COOKIE_DOMAIN = ""
        cdn._signer.cache_clear()
        page.set_default_timeout(20_000)
        console = watch(page)
        page.goto(f"{live_server.url}/boards/{board.pk}/")
        wait_until(page, "document.querySelector('.tile img') && document.querySelector('.tile img').naturalWidth > 0")
        assert page.get_attribute(".tile img", "src") == f"{emulator.base_url}/{thumb}"
        assert (f"/{thumb}", 200, "cookie") in emulator.requests
        page.context.clear_cookies()  # a new visitor: home's cover must open by its own signature
        emulator.requests.clear()
        page.goto(f"{live_server.url}/")
        wait_until(page, "[...document.images].some(i => i.src.includes('Signature=') && i.naturalWidth > 0)")
        assert (f"/{thumb}", 200, "url") in emulator.requests
        assert csp_problems(page, console) == []
    cdn._signer.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_tiles_that_do_not_load_say_only_what_the_site_knows(page, live_server, local_aws):
    """Photos whose files are there but do not load (the CDN's cookies not sent, the network): one status request for
    all of them, then one that checks their files (verify=1), then "could not be loaded" with a reload link, never
    "missing". Once signed out, a photo that fails says one can no longer see it, with a link to log in again."""
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    user = make_user("unlucky")
    board = board_create(user=user, title="Flaky", visibility="private")
    *broken, fine, later = add_images(board, user, 5, ties=1)
    for image in (*broken, fine):
        add_variants(image, files=True)
    later.status = "processing"
    later.save(update_fields=["status"])
    page.set_default_timeout(20_000)
    console = watch(page)
    asked: list[str] = []
    page.on("request", lambda r: "/api/images?" in r.url and asked.append(r.url))
    for image in broken:  # these photos never arrive, whatever their URL
        page.route(f"**/variants/{board.pk}/{image.pk}/**", lambda route: route.abort())
    log_in(page, live_server, "unlucky")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    wait_until(page, f"[...document.querySelectorAll('.tile[data-status=unloaded]')].length === {len(broken)}")
    for image in broken:
        tile = page.locator(f'.tile[data-image-id="{image.pk}"]')
        assert "This photo could not be loaded." in tile.inner_text()
        assert "missing" not in tile.inner_text().lower()
        assert tile.get_by_role("link", name="Reload the page.").get_attribute("href") == page.url
    # About the failing tiles, two requests in all (fresh URLs, then verify=1), each for the three of them.
    ids = {str(i.pk) for i in broken}
    about = [u for u in asked if ids & set(unquote(u.split("ids=")[1].split("&")[0]).split(","))]
    assert len(about) == 2, asked
    assert [set(unquote(u.split("ids=")[1].split("&")[0]).split(",")) for u in about] == [ids, ids]
    assert ["verify=1" in u for u in about] == [False, True]

    # A processing photo that fails meanwhile: the tile says why and links to the photo's page, like the server's.
    later.status, later.error = "failed", "This file is not an image."
    later.save(update_fields=["status", "error"])
    later_tile = page.locator(f'.tile[data-image-id="{later.pk}"]')
    wait_until(page, f"document.querySelector('[data-image-id=\"{later.pk}\"]').dataset.status === 'failed'")
    assert later_tile.get_by_role("link", name="details").get_attribute("href") == f"/images/{later.pk}/"

    # Signed out while the page is open (the session expired): the next photo that fails is not "missing" either.
    page.context.clear_cookies()
    page.evaluate(
        """(id) => {
          const tile = document.querySelector(`[data-image-id="${id}"]`);
          tile.querySelectorAll("source").forEach((s) => s.remove());
          const img = tile.querySelector("img");
          img.removeAttribute("srcset");
          img.src = "/static/no-such-photo.jpg";
        }""",
        str(fine.pk),
    )
    wait_until(page, f"document.querySelector('[data-image-id=\"{fine.pk}\"]').dataset.status === 'hidden'")
    tile = page.locator(f'.tile[data-image-id="{fine.pk}"]')
    assert "This photo is no longer available to you" in tile.inner_text()
    login = tile.get_by_role("link", name="log in again").get_attribute("href")
    assert login == f"/login/?next=%2Fboards%2F{board.pk}%2F"
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_the_image_page_and_covers_say_photo_missing_in_a_box_of_their_size(page, live_server, local_aws):
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    user = make_user("gone")
    board = board_create(user=user, title="Gone", visibility="public")
    [image] = add_images(board, user, 1)
    add_variants(image, files=False, names=("thumb", "medium", "large"), size=(800, 600))
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/images/{image.pk}/")
    wait_until(page, "document.querySelector('.photo-problem[data-problem]') !== null")
    box = page.locator(".photo .photo-problem")
    assert box.get_attribute("data-problem") == "missing"
    assert "Photo missing" in box.inner_text()
    assert page.locator(".photo img").count() == 0  # no broken image left
    size = box.bounding_box()
    main = page.locator("main").bounding_box()
    assert abs(size["width"] - min(800, main["width"] - 40)) < 2  # the photo's room: its width, the page's at most
    assert abs(size["height"] - size["width"] * 600 / 800) < 2
    for path in ("/", "/boards/public/"):
        page.goto(f"{live_server.url}{path}")
        wait_until(page, "document.querySelector('.cover .photo-problem[data-problem]') !== null")
        cover = page.locator(".card-board .cover .photo-problem")
        assert cover.get_attribute("data-problem") == "missing"
        assert "Photo missing" in cover.inner_text()
        assert cover.locator("a").count() == 0  # already inside the card's link
        cover_box = cover.bounding_box()
        assert cover_box["width"] > 100
        assert abs(cover_box["width"] - cover_box["height"]) < 2
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_covers_are_square_whatever_the_photos_shape(page, live_server, local_aws):
    from boardsite.boards.services import board_create
    from tests.factories import add_images, make_user

    user = make_user("wide")
    board = board_create(user=user, title="Wide", visibility="public")
    [image] = add_images(board, user, 1)
    add_variants(image, files=True, names=("thumb",), size=(400, 300))
    page.set_default_timeout(20_000)
    console = watch(page)
    for path in ("/", "/boards/public/"):
        page.goto(f"{live_server.url}{path}")
        wait_until(page, "[...document.querySelectorAll('.cover img')].some((i) => i.naturalWidth > 0)")
        cover = page.locator(".card-board .cover img").bounding_box()
        assert cover["width"] > 100
        assert abs(cover["width"] - cover["height"]) < 1, (path, cover)
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_a_more_photos_page_scrolled_further_keeps_its_place_on_reload(page, live_server, local_aws):
    """A "More photos" page opened in its own tab (``?after=``), then scrolled: the address keeps ``after`` beside
    ``until``, so a reload shows the same tiles, not the board from the top."""
    from boardsite.boards.services import board_create
    from boardsite.images import selectors
    from tests.factories import add_images, make_user

    user = make_user("tabber")
    board = board_create(user=user, title="Tabs", visibility="public")
    add_images(board, user, 3 * selectors.BOARD_PAGE_SIZE + 10, status="processing")
    first = selectors.board_tiles_page(board=board, user=user, role="owner")
    page.set_default_timeout(20_000)
    console = watch(page)
    page.goto(f"{live_server.url}/boards/{board.pk}/?after={first.next_cursor}")
    for _ in range(5):
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(300)
    wait_until(page, "new URLSearchParams(location.search).has('until')")
    query = page.evaluate("Object.fromEntries(new URLSearchParams(location.search))")
    assert query["after"] == first.next_cursor
    ids = page.eval_on_selector_all(".tile", "tiles => tiles.map(t => t.dataset.imageId)")
    assert len(ids) > selectors.BOARD_PAGE_SIZE
    assert str(first.images[0].pk) not in ids
    page.reload()
    assert page.eval_on_selector_all(".tile", "tiles => tiles.map(t => t.dataset.imageId)")[: len(ids)] == ids
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_more_photos_from_the_keyboard_moves_focus_to_the_new_tiles_and_announces_them(page, live_server, local_aws):
    from boardsite.boards.services import board_create
    from boardsite.images.selectors import BOARD_PAGE_SIZE
    from tests.factories import add_images, make_user

    user = make_user("keys")
    board = board_create(user=user, title="Keys", visibility="public")
    add_images(board, user, BOARD_PAGE_SIZE + 5, status="processing")
    page.set_default_timeout(20_000)
    console = watch(page)
    page.set_viewport_size({"width": 1000, "height": 700})
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    assert page.locator("#more-status").get_attribute("aria-live") == "polite"
    page.focus("#more")
    page.keyboard.press("Enter")
    wait_until(page, f"document.querySelectorAll('.tile').length === {BOARD_PAGE_SIZE + 5}")
    first_new = page.eval_on_selector_all(".tile", f"tiles => tiles[{BOARD_PAGE_SIZE}].dataset.imageId")
    wait_until(page, "document.activeElement.closest('.tile') !== null")
    assert page.evaluate("document.activeElement.closest('.tile').dataset.imageId") == first_new
    assert page.inner_text("#more-status") == "5 more photos"
    assert csp_problems(page, console) == []


@pytest.mark.django_db(transaction=True)
def test_tiles_loaded_because_the_link_came_into_view_leave_the_focus_alone(page, live_server, local_aws):
    """Focus that reaches "More photos" without following it (a screen reader's list of links) scrolls it into view:
    the tiles that then load must not take the focus, or the next Enter would open a photo instead."""
    from boardsite.boards.services import board_create
    from boardsite.images.selectors import BOARD_PAGE_SIZE
    from tests.factories import add_images, make_user

    user = make_user("reader")
    board = board_create(user=user, title="Reader", visibility="public")
    add_images(board, user, 2 * BOARD_PAGE_SIZE + 5, status="processing")
    page.set_default_timeout(20_000)
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    page.focus("#more")
    wait_until(page, f"document.querySelectorAll('.tile').length > {BOARD_PAGE_SIZE}")
    page.wait_for_timeout(500)
    assert page.evaluate("document.activeElement.closest('.tile') === null")
    assert page.evaluate("document.activeElement.id") == "more"


@pytest.mark.django_db(transaction=True)
def test_the_page_uploads_through_the_ticket_function_when_its_route_says_lambda(
    page, live_server, local_aws, lambda_stack, settings, monkeypatch
):
    """issue_upload_ticket on lambda: the page asks the site for a grant once, each ticket from the function (its own
    server, as devstack runs it: CORS for the site), no completion report (S3 starts the processing), and the tiles
    come from the function's events; a hostile file ends failed with its reason; no CSP violation."""
    from http.server import ThreadingHTTPServer

    from boardsite.boards.services import board_create
    from devstack.function_urls import make_handler
    from tests.factories import make_user

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler([live_server.url]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    functions = f"http://127.0.0.1:{server.server_address[1]}"
    settings.OFFLOAD_MODES = {**settings.OFFLOAD_MODES, "issue_upload_ticket": "lambda"}
    settings.UPLOAD_GRANT_KEY = "e2e-" + "k" * 40
    settings.UPLOAD_TICKET_FUNCTION_URL = functions
    monkeypatch.setenv("UPLOAD_GRANT_KEY", settings.UPLOAD_GRANT_KEY)
    user = make_user("grace")
    board = board_create(user=user, title="Through the function", visibility="private")
    page.set_default_timeout(20_000)
    console = watch(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(f"{request.method} {request.url}"))
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "grace")
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    policy = page.request.get(page.url).headers["content-security-policy"]
    assert f"connect-src 'self' {local_aws} {functions}" in policy
    asked.clear()  # from here: the uploads
    hostile = base64.b64encode(b"%PDF-1.4 this is no photo" * 50).decode()
    files = [
        {"name": "good.jpg", "b64": base64.b64encode(jpeg_bytes(size=(800, 600))).decode()},
        {"name": "hostile.jpg", "b64": hostile},
    ]
    try:
        page.evaluate(DROP_FILES, [files])
        wait_until(page, "document.querySelectorAll('#upload-list li.ok').length === 2", timeout=30_000)
        wait_until(
            page, "document.querySelectorAll('#grid .tile[data-status=\"pending\"]').length === 0", timeout=60_000
        )
    except AssertionError:
        pytest.fail(f"uploads did not settle: {page.inner_text('#upload-list')!r}; console: {console}")
    finally:
        server.shutdown()
    assert sorted(Image.objects.values_list("filename", "status")) == [("good.jpg", "ready"), ("hostile.jpg", "failed")]
    assert page.locator("#grid .tile[data-status='failed']").count() == 1  # the hostile file's tile, with its reason
    site_posts = [a for a in asked if a.startswith("POST ") and live_server.url in a]
    assert [a.rsplit("/", 1)[-1] for a in site_posts] == ["upload-grants"], site_posts  # one request for the batch
    assert len([a for a in asked if a.startswith(f"POST {functions}/tickets")]) == 2
    assert csp_problems(page, console) == []
