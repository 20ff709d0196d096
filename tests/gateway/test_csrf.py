"""CSRF tokens with approuter's semantics: one per session, fetched with ``x-csrf-token: fetch``,
required on state-changing requests to protected routes (catalogue SES-10)."""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest

from gateway import csrf


def test_constants() -> None:
    assert (csrf.HEADER, csrf.FETCH_VALUE, csrf.REQUIRED_VALUE) == ("x-csrf-token", "fetch", "Required")


def test_a_second_fetch_returns_the_same_token() -> None:
    session: dict[str, Any] = {"access_token": "eyJ.a.b"}
    token = csrf.issue_token(session)
    assert len(token) >= 43 and session[csrf.SESSION_KEY]
    assert csrf.issue_token(session) == token
    assert csrf.check(session, token) is True


def test_each_session_gets_its_own_token() -> None:
    assert csrf.issue_token({}) != csrf.issue_token({})


def test_the_token_survives_the_session_store() -> None:
    session: dict[str, Any] = {}
    token = csrf.issue_token(session)
    stored = json.loads(json.dumps(session))  # what a store round trip gives back
    assert csrf.issue_token(stored) == token and csrf.check(stored, token)


OWN: dict[str, Any] = {}
OWN_TOKEN = csrf.issue_token(OWN)
OTHER_TOKEN = csrf.issue_token({})


@pytest.mark.parametrize(("session", "header"), [
    pytest.param(OWN, None, id="missing"),
    pytest.param(OWN, "", id="empty"),
    pytest.param(OWN, "fetch", id="fetch-on-post"),
    pytest.param(OWN, OTHER_TOKEN, id="other-session"),
    pytest.param(OWN, OWN_TOKEN[:-1], id="truncated"),
    pytest.param(OWN, OWN_TOKEN + "x", id="extended"),
    pytest.param(OWN, OWN_TOKEN.swapcase(), id="case-changed"),
    pytest.param(OWN, f" {OWN_TOKEN}", id="padded"),
    pytest.param(OWN, OWN_TOKEN[:-1] + "é", id="non-ascii"),
    pytest.param({}, OWN_TOKEN, id="never-issued"),
    pytest.param({}, "", id="never-issued-empty"),
    pytest.param({csrf.SESSION_KEY: ""}, "", id="empty-secret"),
    pytest.param({csrf.SESSION_KEY: 42}, "42", id="secret-not-text"),
])
def test_a_wrong_token_is_refused(session: dict[str, Any], header: str | None) -> None:
    assert csrf.check(session, header) is False


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(csrf.hmac, "compare_digest", spy)
    assert csrf.check(OWN, OWN_TOKEN) is True and csrf.check(OWN, OTHER_TOKEN) is False
    assert len(calls) == 2


@pytest.mark.parametrize(("value", "expected"), [
    ("fetch", True), ("Fetch", True), ("FETCH", True), ("fetched", False), ("", False), (None, False),
    ("Required", False),
])
def test_is_fetch(value: str | None, expected: bool) -> None:
    assert csrf.is_fetch(value) is expected


@pytest.mark.parametrize(("method", "route_csrf", "public", "expected"), [
    ("POST", True, False, True),
    ("put", True, False, True),
    ("PATCH", True, False, True),
    ("DELETE", True, False, True),
    ("PROPFIND", True, False, True),  # unknown methods are state-changing until proven otherwise
    ("GET", True, False, False),
    ("head", True, False, False),
    ("OPTIONS", True, False, False),
    ("POST", False, False, False),  # csrfProtection: false on the route
    ("POST", True, True, False),  # public route: no session to protect
])
def test_needs_check(method: str, route_csrf: bool, public: bool, expected: bool) -> None:
    assert csrf.needs_check(method, route_csrf, public) is expected
