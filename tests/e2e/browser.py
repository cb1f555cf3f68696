"""What the browser tests share: waiting on the page, and what it printed or refused."""

from __future__ import annotations

import time

from tests.factories import jpeg_bytes

# Records what the browser refused under the page's Content-Security-Policy (besides the console's own line).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${where})`);
});
"""


def wait_until(page, expression: str, timeout: float = 20_000) -> None:
    """Poll a JS expression with ``page.evaluate``: Playwright's ``wait_for_function`` evals a string, which the
    page's CSP (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout / 1000:.0f}s waiting for {expression}")
        page.wait_for_timeout(100)


def csp_problems(page, console: list[str]) -> list[str]:
    refused = [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m]
    return refused + page.evaluate("window.__cspViolations || []")


def watch(page) -> list[str]:
    """Console messages, error responses and CSP violations of everything the page does from now on."""
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and console.append(f"{r.status} {r.url}"))
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    return console


SERIOUS = ("serious", "critical")


def axe_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (axe-playwright-python bundles axe)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "a-long-test-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def add_variants(image, *, files: bool, names=("thumb", "medium"), size=(320, 320)) -> None:
    """Variant rows (WebP and JPEG) for ``image``; with ``files``, small JPEG bytes behind each key in the bucket."""
    from django.conf import settings

    from boardsite.images.models import Variant
    from offload import aws

    for name in names:
        for fmt in ("webp", "jpeg"):
            key = f"variants/{image.board_id}/{image.pk}/{name}.{fmt}"
            if files:
                aws.client("s3").put_object(
                    Bucket=settings.BOARDSITE_BUCKET, Key=key, Body=jpeg_bytes(size=size), ContentType="image/jpeg"
                )
            Variant.objects.create(
                image=image, name=name, key=key, width=size[0], height=size[1], format=fmt, content_type=f"image/{fmt}"
            )
