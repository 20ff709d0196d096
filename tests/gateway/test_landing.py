"""The page the gateway answers the login callback with: it moves on to the asked-for path
with a new, same-origin navigation (a 302 would keep the IdP in the redirect chain, and the
browser would call the landing cross-site). Only a path of this origin, escaped."""

from __future__ import annotations

import pytest

from gateway.app import _landing
from tests.integration.gateway_browser import landing_target


@pytest.mark.parametrize(("return_to", "target"), [
    pytest.param("/homepage", "/homepage", id="path"),
    pytest.param("/a/b?x=1&y=%2F", "/a/b?x=1&y=%2F", id="query kept, encodings kept"),
    pytest.param('/p?q="><script>alert(1)</script>', "/p?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
                 id="markup encoded"),
    pytest.param("/p?q='x' y", "/p?q=%27x%27%20y", id="quotes and spaces encoded"),
    pytest.param("//evil.example/", "/", id="protocol-relative"),
    pytest.param("/\\evil.example/", "/", id="backslash"),
    pytest.param("https://evil.example/", "/", id="absolute"),
    pytest.param("", "/", id="empty"),
])
def test_the_landing_page_moves_on_only_to_a_path_of_this_origin(return_to: str, target: str) -> None:
    response = _landing(return_to)
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    page = response.text or ""
    assert landing_target(page) == target
    assert "<script" not in page and f'<a href="{target.replace("&", "&amp;")}">Continue</a>' in page
