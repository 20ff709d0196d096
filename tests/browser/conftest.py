"""One ``./dev run`` scenario and one headless Chromium per test module, a fresh browser profile
(no cookies, so not logged in) and a watched page for each test.

Module scope, not session: Playwright's sync API keeps its asyncio loop marked as running in this
thread for as long as it is started (it runs the loop in a greenlet), and every asyncio test that
came after it would fail with "Cannot run the event loop while another loop is running". So the
browser stops at the end of each module, and no asyncio test belongs in tests/browser. Tests stay
independent through their own browser context; a test that queues emulator faults takes
``admin``, which clears them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.browser import driver
from tests.integration.local_stack import EmulatorAdmin, LocalStack, local_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """``python -m emulator.local_run`` on free ports, ready; stopped with no child left."""
    with local_stack(tmp_path_factory.mktemp("local-run") / "workspace") as running:
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver; first of all, a clear failure (in CI too) when there is no Chromium."""
    if (problem := driver.missing_chromium()) is not None:
        pytest.fail(problem, pytrace=False)
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser(playwright: Playwright, stack: LocalStack) -> Iterator[Browser]:
    """Chromium that trusts the emulator's CA (and no other unknown certificate)."""
    chromium = driver.launch(playwright, trusted_ca=stack.ca_file)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A profile of this test only: no cookie of another test's login."""
    fresh = driver.new_context(browser)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab; take ``problems`` as well to watch it."""
    return context.new_page()


@pytest.fixture
def problems(page: Page) -> driver.PageProblems:
    """Console errors, uncaught exceptions and CSP violations of ``page`` from its first navigation."""
    return driver.watch(page)


@pytest.fixture
def admin(stack: LocalStack) -> Iterator[EmulatorAdmin]:
    """The emulator's admin API; the faults a test queued end with it."""
    yield stack.admin
    stack.admin.clear_faults()


@pytest.fixture
def gateway(stack: LocalStack) -> str:
    """http://localhost:<GATEWAY_PORT>, the origin a developer opens."""
    return stack.gateway

