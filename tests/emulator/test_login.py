"""The interactive login of the emulated IAS and XSUAA over real HTTP: authorization code with
PKCE, the login page, tokens, refresh with rotation, userinfo, logout, single sign-on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from tests.emulator.conftest import RunningEmulator
from tests.emulator.logindriver import (
    CALLBACK,
    LOGOUT_PAGE,
    Browser,
    decode,
    location_base,
    query,
    start_local,
)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start_local(tmp_path_factory.mktemp("login"))
    try:
        yield running
    finally:
        running.servers.stop()


def cookie_header(response: requests.Response, name: str) -> str:
    """The Set-Cookie line of ``name`` (requests folds several into one header)."""
    lines = response.raw.headers.getlist("Set-Cookie")
    return next(line for line in lines if line.startswith(name + "="))


def test_ias_code_flow_refresh_userinfo_and_logout(local: RunningEmulator) -> None:
    cfg, ias = local.config, Browser(local, "ias")
    page = ias.authorize()
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'value="jane"' in page.text and 'name="deny"' in page.text and 'type="password"' in page.text
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    answer = ias.submit(page, user="jane")
    assert answer.status_code == 302 and location_base(answer) == CALLBACK
    callback = query(answer)
    assert set(callback) == {"code", "state", "iss"}
    assert callback["state"] == ias.state and callback["iss"] == cfg.urls.ias  # RFC 9207
    session_cookie = cookie_header(answer, "ias_session").lower()
    assert "httponly" in session_cookie and "samesite=lax" in session_cookie

    tokens = ias.redeem(callback["code"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["Cache-Control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == cfg.ias_token_validity
    assert {"access_token", "id_token", "refresh_token"} <= set(body)
    jwks = ias.jwks()
    header, claims = decode(body["id_token"], jwks)
    assert header["alg"] == "RS256" and header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert claims["iss"] == cfg.urls.ias and claims["nonce"] == ias.nonce
    assert cfg.ias_app.client_id in claims["aud"] and cfg.ias_xsuaa_rp in claims["aud"]  # cross-consumption
    assert claims["email"] == "jane.doe@example.com" and claims["sid"].startswith("S-SP-")
    assert claims["app_tid"] == cfg.zone_id and claims["azp"] == cfg.ias_app.client_id

    refreshed = ias.refresh(body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.json()
    assert renewed["refresh_token"] != body["refresh_token"]
    _, renewed_claims = decode(renewed["id_token"], jwks)
    assert "nonce" not in renewed_claims and renewed_claims["sid"] == claims["sid"]
    assert renewed_claims["auth_time"] == claims["auth_time"]
    old = ias.refresh(body["refresh_token"])  # rotation: the first refresh token is spent
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"

    info = requests.get(cfg.urls.ias + "/oauth2/userinfo", verify=local.pki.ca_file, timeout=5,
                        headers={"Authorization": "Bearer " + renewed["access_token"]})
    assert info.status_code == 200 and info.json()["email"] == "jane.doe@example.com"
    assert info.json()["groups"] == ["frontapp_users", "CPI_Notification_Reader"]

    assert ias.authorize().status_code == 302  # single sign-on while the IAS session lasts
    logout = ias.get(cfg.urls.browser + "/oauth2/logout", post_logout_redirect_uri=LOGOUT_PAGE,
                     id_token_hint=body["id_token"], client_id=cfg.ias_app.client_id, state="bye")
    assert logout.status_code == 302 and logout.headers["Location"] == LOGOUT_PAGE + "?state=bye"
    assert "ias_session=;" in cookie_header(logout, "ias_session")
    assert ias.refresh(renewed["refresh_token"]).json()["error"] == "invalid_grant"  # the session's
    assert ias.authorize().status_code == 200  # signed out: the login page again


def test_xsuaa_code_flow_with_the_password_form(local: RunningEmulator) -> None:
    cfg, xsuaa = local.config, Browser(local, "xsuaa")
    page = xsuaa.authorize()
    assert page.status_code == 200 and 'action="/login.do"' in page.text
    wrong = xsuaa.submit(page, username="jane", password="john")
    assert wrong.status_code == 401 and "wrong password" in wrong.text and "Location" not in wrong.headers
    answer = xsuaa.submit(page, username="Jane.Doe@example.com", password="jane")
    assert answer.status_code == 302 and location_base(answer) == CALLBACK
    callback = query(answer)
    assert callback["state"] == xsuaa.state and callback["iss"] == cfg.urls.xsuaa_issuer
    assert "secure" in cookie_header(answer, "xsuaa_session").lower()  # set over https

    # approuter sends the client secret in the form for the code, Basic auth for refreshes
    tokens = xsuaa.token({"grant_type": "authorization_code", "code": callback["code"],
                          "redirect_uri": CALLBACK, "code_verifier": xsuaa.verifier}, basic=False)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    display = f"{cfg.app.xsappname}.Display"
    assert body["token_type"] == "bearer" and set(body["scope"].split()) == {"openid", display}
    assert body["expires_in"] == cfg.token_validity and body["refresh_token"]
    header, claims = decode(body["access_token"], xsuaa.jwks())
    assert header["jku"].endswith("/token_keys") and header["kid"]
    assert claims["grant_type"] == "authorization_code" and claims["cid"] == cfg.app.client_id
    assert claims["user_name"] == "jane.doe@example.com" and claims["origin"] == "sap.custom"

    refreshed = xsuaa.refresh(body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert decode(refreshed.json()["access_token"], xsuaa.jwks())[1]["grant_type"] == "refresh_token"
    assert xsuaa.refresh(body["refresh_token"]).json()["error"] == "invalid_grant"

    info = requests.get(cfg.urls.xsuaa + "/userinfo", verify=local.pki.ca_file, timeout=5,
                        headers={"Authorization": "Bearer " + refreshed.json()["access_token"]})
    assert info.status_code == 200 and info.json()["user_name"] == "jane.doe@example.com"

    logout = xsuaa.get(cfg.urls.xsuaa + "/logout.do", redirect=LOGOUT_PAGE, client_id=cfg.app.client_id)
    assert logout.status_code == 302 and logout.headers["Location"] == LOGOUT_PAGE
    assert "xsuaa_session=;" in cookie_header(logout, "xsuaa_session")
    assert xsuaa.refresh(refreshed.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_xsuaa_token_carries_the_users_role_collections(local: RunningEmulator) -> None:
    xsuaa = Browser(local, "xsuaa")
    tokens = xsuaa.redeem(xsuaa.login("john")["code"])
    assert tokens.status_code == 200, tokens.text
    _, claims = decode(tokens.json()["access_token"], xsuaa.jwks())
    assert claims["user_name"] == "john.roe@example.com"
    assert claims["xs.system.attributes"]["xs.rolecollections"] == ["frontapp_Viewer"]


def test_deny_answers_access_denied_with_state_and_iss(local: RunningEmulator) -> None:
    for service in ("ias", "xsuaa"):
        browser = Browser(local, service)
        answer = browser.submit(browser.authorize(), deny="1")
        assert answer.status_code == 302 and location_base(answer) == CALLBACK
        callback = query(answer)
        assert callback["error"] == "access_denied" and "code" not in callback
        assert callback["state"] == browser.state and callback["iss"] == browser.issuer


def test_single_sign_on_prompt_login_and_prompt_none(local: RunningEmulator) -> None:
    ias = Browser(local, "ias")
    silent = ias.authorize(prompt="none")
    assert query(silent)["error"] == "login_required" and query(silent)["state"] == ias.state
    ias.login()
    again = ias.authorize()
    assert again.status_code == 302 and "code" in query(again) and query(again)["state"] == ias.state
    assert ias.redeem(query(again)["code"]).status_code == 200
    assert ias.authorize(prompt="login").status_code == 200  # asks again although signed in
    assert Browser(local, "xsuaa").authorize().status_code == 200  # the IAS session is not XSUAA's


def test_the_ias_login_is_served_on_the_issuer_origin_too(local: RunningEmulator) -> None:
    ias = Browser(local, "ias")
    page = ias.get(local.config.urls.ias + "/oauth2/authorize", response_type="code",
                   client_id=local.config.ias_app.client_id, redirect_uri=CALLBACK,
                   code_challenge="x" * 43, code_challenge_method="S256")
    assert page.status_code == 200 and 'action="/oauth2/login"' in page.text


def test_ias_client_credentials_and_its_token_is_no_user(local: RunningEmulator) -> None:
    ias = Browser(local, "ias")
    answer = ias.token({"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.text
    _, claims = decode(answer.json()["access_token"], ias.jwks())
    assert claims["sub"] == local.config.ias_app.client_id and "email" not in claims
    info = requests.get(local.config.urls.ias + "/oauth2/userinfo", verify=local.pki.ca_file, timeout=5,
                        headers={"Authorization": "Bearer " + answer.json()["access_token"]})
    assert info.status_code == 401 and info.json()["error"] == "invalid_token"


def test_logout_without_a_redirect_shows_a_page(local: RunningEmulator) -> None:
    ias, xsuaa = Browser(local, "ias"), Browser(local, "xsuaa")
    ias.login()
    xsuaa.login()
    assert ias.authorize().status_code == 302 and xsuaa.authorize().status_code == 302
    for browser, path in ((ias, "/oauth2/logout"), (xsuaa, "/logout.do")):
        page = browser.get(browser.origin + path)
        assert page.status_code == 200 and "signed out" in page.text
        assert browser.authorize().status_code == 200


def test_the_ias_id_token_is_accepted_by_xsuaa_jwt_bearer(local: RunningEmulator) -> None:
    """The cross-consumption audience makes the login's ID token an assertion XSUAA takes."""
    ias = Browser(local, "ias")
    id_token = ias.redeem(ias.login()["code"]).json()["id_token"]
    cpi = local.config.cpi
    answer = requests.post(local.https + "/oauth/token", auth=(cpi.client_id, cpi.secret),
                           verify=local.pki.ca_file, timeout=5,
                           data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                 "assertion": id_token})
    assert answer.status_code == 200, answer.text
    assert f"{local.config.cpi_broker}.Ntif.Read" in answer.json()["scope"].split()


@pytest.mark.parametrize(("endpoint", "call"), [
    ("ias.authorize", lambda b: b.authorize()), ("xsuaa.authorize", lambda b: b.authorize()),
    ("ias.token", lambda b: b.token({"grant_type": "client_credentials"})),
])
def test_the_fault_knobs_reach_the_login_endpoints(local: RunningEmulator, endpoint: str,
                                                   call: Callable[[Browser], requests.Response]) -> None:
    fault = {"endpoint": endpoint, "status": 503, "json": {"error": "temporarily_unavailable"}}
    added = requests.post(local.https + "/_emu/faults", json=fault, verify=local.pki.ca_file, timeout=5)
    assert added.status_code == 200
    browser = Browser(local, endpoint.split(".")[0])
    assert call(browser).status_code == 503
    assert call(browser).status_code in (200, 302)  # the fault was for one request
