"""The browser set-up itself: it trusts exactly the emulator's CA, its watch does see CSP
violations and console errors, and the emulator's admin API reaches what the browser sees.
Without these, a green smoke test could mean a blind sensor."""

from __future__ import annotations

import pytest
from playwright.sync_api import Error, Page, Playwright, Route

from tests.browser import driver
from tests.integration.local_stack import EmulatorAdmin, LocalStack

pytestmark = pytest.mark.integration

PROBE = "http://probe.test/"


def test_the_browser_trusts_the_emulator_ca_and_refuses_it_without_the_flag(
        page: Page, playwright: Playwright, stack: LocalStack) -> None:
    trusted = page.goto(stack.emulator + "/_emu/health")
    assert trusted is not None and trusted.status == 200
    plain = driver.launch(playwright, trusted_ca=None)
    try:
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            plain.new_page().goto(stack.emulator + "/_emu/health")
    finally:
        plain.close()


def serve(page: Page, body: str, csp: str | None) -> None:
    """Answer PROBE with ``body`` (and ``csp``) from inside the browser: no server, no network."""
    headers = {"Content-Type": "text/html"} | ({"Content-Security-Policy": csp} if csp else {})
    page.route(PROBE, lambda route: Route.fulfill(route, status=200, headers=headers, body=body))


def test_the_watch_sees_a_csp_violation(page: Page, problems: driver.PageProblems) -> None:
    serve(page, "<p style='color: red'>styled inline</p>", csp="default-src 'none'")
    page.goto(PROBE)
    assert problems.all()
    assert any("style-src" in line for line in problems.csp_violations), problems


def test_the_watch_sees_console_errors_and_uncaught_exceptions(page: Page,
                                                              problems: driver.PageProblems) -> None:
    serve(page, "<script>console.error('logged'); throw new Error('thrown');</script>", csp=None)
    page.goto(PROBE)
    assert problems.all()
    assert any("logged" in line for line in problems.console_errors), problems
    assert any("thrown" in line for line in problems.uncaught), problems


def test_a_fault_queued_through_the_admin_api_reaches_the_browser(page: Page, admin: EmulatorAdmin,
                                                                 gateway: str) -> None:
    admin.add_fault("ias.authorize", status=503, body="IAS is down", content_type="text/plain")
    answer = page.goto(gateway + "/homepage")
    assert answer is not None and answer.status == 503
    assert "IAS is down" in page.content()
