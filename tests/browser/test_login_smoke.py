"""A person's first minutes with ``./dev run``: log in through the gateway, as IAS and as XSUAA
users, and see their own e-mail and the iFlow's HTTP 200 on a page that breaks none of its rules."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.driver import PageProblems, login, screenshot

pytestmark = pytest.mark.integration

JANE = "jane.doe@example.com"
#: (path, IdP) of each login route in gateway/xs-app.json
ROUTES = [pytest.param("/homepage", "ias", id="ias"),
          pytest.param("/xsuaa/homepage", "xsuaa", id="xsuaa")]


def assert_jane_sees_the_iflow_answer(page: Page) -> None:
    """Her e-mail on the page, and HTTP 200 in the section about the iFlow's answer."""
    expect(page.locator("body")).to_contain_text(JANE)
    iflow = page.locator("section").filter(has=page.get_by_role("heading", name=re.compile("iFlow", re.I)))
    expect(iflow.first).to_contain_text(re.compile(r"HTTP 200\b"))


def test_ias_user_logs_in_through_the_gateway_and_sees_the_iflow_answer(page: Page, gateway: str) -> None:
    landed = login(page, gateway, "/homepage", user="jane", idp="ias")
    screenshot(page, "ias-jane-homepage")
    assert landed.status == 200, landed.status_text
    assert_jane_sees_the_iflow_answer(page)


def test_xsuaa_user_types_name_and_password_and_sees_the_iflow_answer(page: Page, gateway: str) -> None:
    landed = login(page, gateway, "/xsuaa/homepage", user="jane", idp="xsuaa", password="jane")
    screenshot(page, "xsuaa-jane-homepage")
    assert landed.status == 200, landed.status_text
    assert_jane_sees_the_iflow_answer(page)


@pytest.mark.parametrize(("path", "idp"), ROUTES)
def test_no_csp_violation_or_console_error_from_login_to_page(page: Page, problems: PageProblems,
                                                             gateway: str, path: str, idp: str) -> None:
    """Watched from the first request: the login page, the redirects, the page, and a reload of it."""
    login(page, gateway, path, idp=idp)
    page.reload(wait_until="load")
    screenshot(page, f"{idp}-jane-homepage-reloaded")
    assert problems.all() == []
