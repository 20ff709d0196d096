"""The emulated XSUAA token endpoint and CPI over real HTTPS: UAA's jwt-bearer semantics."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.emulator.conftest import RunningEmulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def mint(emulator: RunningEmulator, user: str, kind: str) -> str:
    return requests.post(emulator.https + "/_emu/token", json={"user": user, "kind": kind},
                         verify=emulator.pki.ca_file, timeout=5).text


def exchange(emulator: RunningEmulator, assertion: str, secret: str | None = None) -> requests.Response:
    cpi = emulator.config.cpi
    return requests.post(emulator.https + "/oauth/token", verify=emulator.pki.ca_file, timeout=5,
                         data={"grant_type": JWT_BEARER, "assertion": assertion, "client_id": cpi.client_id},
                         auth=(cpi.client_id, secret or cpi.secret))


def test_an_ias_user_token_becomes_a_cpi_token_with_the_users_roles(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "jane", "ias"))
    assert answer.status_code == 200, answer.text
    scope = answer.json()["scope"].split()
    assert f"{emulator.config.cpi_broker}.Ntif.Read" in scope
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", data="hi", verify=emulator.pki.ca_file,
                          headers={"Authorization": "Bearer " + answer.json()["access_token"]}, timeout=5)
    assert iflow.status_code == 200 and iflow.json()["user"] == "jane.doe@example.com"
    assert iflow.headers["sap_messageprocessinglogid"]


def test_a_user_without_the_role_gets_a_token_that_cpi_refuses(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "john", "ias"))
    assert answer.status_code == 200 and answer.json()["scope"] == "openid"
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", verify=emulator.pki.ca_file, timeout=5,
                          headers={"Authorization": "Bearer " + answer.json()["access_token"]})
    assert iflow.status_code == 403 and "HTTP Status 403" in iflow.text


def test_a_wrong_secret_is_refused(emulator: RunningEmulator) -> None:
    answer = exchange(emulator, mint(emulator, "jane", "ias"), secret="wrong")
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized", "error_description": "Bad credentials"}


def test_the_apps_own_token_is_not_accepted_by_cpi(emulator: RunningEmulator) -> None:
    token = mint(emulator, "jane", "xsuaa")
    iflow = requests.post(emulator.config.urls.cpi + "/http/ntif", verify=emulator.pki.ca_file, timeout=5,
                          headers={"Authorization": "Bearer " + token})
    assert iflow.status_code == 401 and iflow.headers["WWW-Authenticate"].startswith("Bearer")


# --- EXC-08: the token endpoint's checks of the assertion, as XSUAA answers them -------------------

def with_claims(emulator: RunningEmulator, claims: dict[str, Any]) -> str:
    """An IAS token of jane, signed by the emulator's IAS key, with ``claims`` written over."""
    admin = emulator.https + "/_emu/claims"
    requests.post(admin, json=claims, verify=emulator.pki.ca_file, timeout=5).raise_for_status()
    try:
        return mint(emulator, "jane", "ias")
    finally:
        requests.post(admin, json={}, verify=emulator.pki.ca_file, timeout=5).raise_for_status()


def unsigned(token: str, alg: str) -> str:
    """``token``'s payload under a header naming ``alg``, without a valid signature."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": alg, "typ": "JWT"}).encode()).rstrip(b"=").decode()
    _, payload, signature = token.split(".")
    return f"{header}.{payload}." + ("" if alg == "none" else signature)


@pytest.mark.parametrize(("forge", "status", "error", "words"), [
    pytest.param(lambda e: unsigned(mint(e, "jane", "ias"), "none"), 401, "invalid_token",
                 "Could not verify token signature", id="alg none"),
    pytest.param(lambda e: unsigned(mint(e, "jane", "ias"), "HS256"), 401, "invalid_token",
                 "Could not verify token signature", id="alg HS256"),
    pytest.param(lambda e: with_claims(e, {"iss": "https://evil.example"}), 401, "unauthorized",
                 "Unable to map issuer", id="foreign issuer"),
    pytest.param(lambda e: with_claims(e, {"aud": ["another-client"]}), 401, "invalid_token",
                 "Some parties were not in the token audience", id="aud without the XSUAA client"),
    pytest.param(lambda e: with_claims(e, {"exp": None}), 401, "invalid_token",
                 "Token does not bear a valid EXP claim", id="no exp"),
    pytest.param(lambda e: with_claims(e, {"exp": 1}), 401, "invalid_token",
                 "Token does not bear a valid EXP claim", id="expired"),
])
def test_exc08_a_bad_assertion_is_refused_as_xsuaa_refuses_it(
        emulator: RunningEmulator, forge: Callable[[RunningEmulator], str], status: int, error: str,
        words: str) -> None:
    """XSUAA answers UAA's errors (shared/reference/btp-security.md), not RFC 7523's invalid_grant."""
    answer = exchange(emulator, forge(emulator))
    assert answer.status_code == status
    assert answer.json()["error"] == error and words in answer.json()["error_description"]
    assert "access_token" not in answer.json()


@pytest.mark.parametrize("forge", [
    pytest.param(lambda e: with_claims(e, {"exp": int(time.time()) + 10 * 365 * 86400}), id="exp in 10 y"),
    pytest.param(lambda e: mint(e, "jane", "ias"), id="the same assertion twice"),
])
def test_exc08_xsuaa_does_not_limit_lifetime_or_reuse_of_an_assertion(
        emulator: RunningEmulator, forge: Callable[[RunningEmulator], str]) -> None:
    """As UAA: a validly signed assertion of a trusted IdP is exchanged however long it lives and
    however often it comes (the app re-exchanges a user's token when its cache runs out). The app
    is what bounds it: it validates the user's token (lifetime included) before exchanging it."""
    assertion = forge(emulator)
    assert [exchange(emulator, assertion).status_code for _ in range(2)] == [200, 200]
