"""What the browser tests share: waiting on the page, and what it printed or refused."""

from __future__ import annotations

import time

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


def axe_serious(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (axe-playwright-python bundles axe)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
