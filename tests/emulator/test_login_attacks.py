"""The mock IdP rows of the security catalogue (IDP-01..06, 09, 10) against the emulator's
login, over real HTTP; and bad input that must never become a 500."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from emulator.codes import CODE_LIFETIME
from emulator.pki import ensure_pki
from emulator.server import bind
from tests.emulator.conftest import RunningEmulator
from tests.emulator.logindriver import (
    CALLBACK,
    LOCAL,
    LOGOUT_PAGE,
    Browser,
    decode,
    emulator_state,
    location_base,
    query,
    start_local,
)

SERVICES = ("ias", "xsuaa")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    running = start_local(tmp_path_factory.mktemp("attacks"))
    try:
        yield running
    finally:
        running.servers.stop()


@pytest.fixture
def clock(local: RunningEmulator) -> Iterator[list[float]]:
    """Seconds to add to the login stores' clock (codes, sessions, refresh tokens)."""
    offset = [0.0]
    store = emulator_state(local).store
    store["login.clock"] = lambda: time.time() + offset[0]
    try:
        yield offset
    finally:
        store.pop("login.clock", None)


def assert_refused_page(response: requests.Response) -> None:
    """An error page: no redirect anywhere, nothing for the client."""
    assert response.status_code == 400, response.text
    assert "Location" not in response.headers and response.headers["Content-Type"].startswith("text/html")


# IDP-01: loopback only

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])  # noqa: S104 - the point of the test
def test_idp01_the_emulator_refuses_to_listen_beyond_loopback(tmp_path_factory: pytest.TempPathFactory,
                                                                host: str) -> None:
    pki = ensure_pki(tmp_path_factory.mktemp("pki"))
    with pytest.raises(SystemExit, match="loopback only"):
        bind(pki, host=host)


# IDP-02: exact redirect_uri

@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("redirect_uri", [
    pytest.param(CALLBACK + "/", id="trailing slash"),
    pytest.param(CALLBACK.replace("localhost", "LOCALHOST"), id="host case"),
    pytest.param(CALLBACK.replace("/login/callback", "/Login/Callback"), id="path case"),
    pytest.param(CALLBACK.replace(":5000", ":5001"), id="other port"),
    pytest.param(CALLBACK.replace("http:", "https:"), id="other scheme"),
    pytest.param(CALLBACK + "?next=/admin", id="extra query"),
    pytest.param(CALLBACK + "#frag", id="fragment"),
    pytest.param(LOCAL + "/login/callback/../../evil", id="dot segments"),
    pytest.param("http://localhost:5000@evil.example/login/callback", id="userinfo"),
    pytest.param("https://evil.example/login/callback", id="other host"),
    pytest.param("https://*.cfapps.*.hana.ondemand.com/login/callback", id="deployed wildcard literally"),
    pytest.param("", id="empty"),
    pytest.param(None, id="missing"),
])
def test_idp02_a_redirect_uri_that_is_not_exactly_registered_is_refused(
        local: RunningEmulator, service: str, redirect_uri: str | None) -> None:
    assert_refused_page(Browser(local, service).authorize(redirect_uri=redirect_uri))


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("overrides", [
    pytest.param({"client_id": "sb-other!t1"}, id="unknown client"),
    pytest.param({"client_id": None}, id="no client"),
    pytest.param({"client_id": ["c", "c"]}, id="repeated client_id"),
    pytest.param({"redirect_uri": [CALLBACK, "https://evil.example/cb"]}, id="repeated redirect_uri"),
])
def test_idp02_a_bad_client_gets_an_error_page(local: RunningEmulator, service: str,
                                               overrides: dict[str, object]) -> None:
    assert_refused_page(Browser(local, service).authorize(**overrides))


def test_idp02_the_cpi_client_has_no_login(local: RunningEmulator) -> None:
    assert_refused_page(Browser(local, "xsuaa").authorize(client_id=local.config.cpi.client_id))


def test_idp02_ias_and_xsuaa_do_not_know_each_others_clients(local: RunningEmulator) -> None:
    cfg = local.config
    assert_refused_page(Browser(local, "ias").authorize(client_id=cfg.app.client_id))
    assert_refused_page(Browser(local, "xsuaa").authorize(client_id=cfg.ias_app.client_id))


# IDP-03: codes are single-use and short-lived

@pytest.mark.parametrize("service", SERVICES)
def test_idp03_a_reused_code_is_refused_and_revokes_the_first_refresh_token(local: RunningEmulator,
                                                                           service: str) -> None:
    browser = Browser(local, service)
    code = browser.login()["code"]
    first = browser.redeem(code)
    assert first.status_code == 200, first.text
    again = browser.redeem(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = browser.refresh(first.json()["refresh_token"])
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("service", SERVICES)
def test_idp03_a_rotated_refresh_token_is_revoked_too(local: RunningEmulator, service: str) -> None:
    browser = Browser(local, service)
    code = browser.login()["code"]
    rotated = browser.refresh(browser.redeem(code).json()["refresh_token"]).json()["refresh_token"]
    browser.redeem(code)
    assert browser.refresh(rotated).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("service", SERVICES)
def test_idp03_a_code_expires_after_a_minute(local: RunningEmulator, clock: list[float],
                                             service: str) -> None:
    early, late = Browser(local, service), Browser(local, service)
    fresh, stale = early.login()["code"], late.login()["code"]
    clock[0] = CODE_LIFETIME - 1
    assert early.redeem(fresh).status_code == 200
    clock[0] = CODE_LIFETIME + 1
    expired = late.redeem(stale)
    assert expired.status_code == 400 and expired.json() == {
        "error": "invalid_grant", "error_description": "Authorization code has expired"}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("overrides", [
    pytest.param({"redirect_uri": CALLBACK + "/"}, id="other redirect_uri"),
    pytest.param({"redirect_uri": None}, id="no redirect_uri"),
    pytest.param({"code_": "not-a-code"}, id="unknown code"),
])
def test_idp03_a_code_needs_its_own_redirect_uri(local: RunningEmulator, service: str,
                                                 overrides: dict[str, str | None]) -> None:
    browser = Browser(local, service)
    code = browser.login()["code"]
    form = dict(overrides)  # the parameter's dict is shared by both services' cases
    answer = browser.redeem(form.pop("code_", code), **form)  # type: ignore[arg-type]
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert browser.redeem(code).status_code == 200  # a failed attempt does not burn it


def test_idp03_an_ias_code_is_no_xsuaa_code(local: RunningEmulator) -> None:
    ias, xsuaa = Browser(local, "ias"), Browser(local, "xsuaa")
    code = ias.login()["code"]
    xsuaa.verifier = ias.verifier
    assert xsuaa.redeem(code).json()["error"] == "invalid_grant"


# IDP-04: PKCE S256, for the confidential clients too

@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("overrides", [
    pytest.param({"code_challenge": None, "code_challenge_method": None}, id="no PKCE"),
    pytest.param({"code_challenge": None}, id="method without challenge"),
    pytest.param({"code_challenge_method": None}, id="challenge without method = plain"),
    pytest.param({"code_challenge_method": "plain"}, id="plain"),
    pytest.param({"code_challenge_method": "S512"}, id="unknown method"),
    pytest.param({"code_challenge": "short"}, id="malformed challenge"),
    pytest.param({"code_challenge_method": ["S256", "plain"]}, id="repeated method"),
])
def test_idp04_an_authorization_request_without_s256_is_refused(local: RunningEmulator, service: str,
                                                                overrides: dict[str, object]) -> None:
    browser = Browser(local, service)
    answer = browser.authorize(**overrides)
    assert answer.status_code == 302 and location_base(answer) == CALLBACK
    callback = query(answer)
    assert callback["error"] == "invalid_request" and "code" not in callback
    assert callback["state"] == browser.state and callback["iss"] == browser.issuer  # IDP-05 on errors


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(("verifier", "error"), [
    pytest.param(None, "invalid_request", id="no verifier"),
    pytest.param("", "invalid_request", id="empty verifier"),
    pytest.param("a" * 42, "invalid_request", id="too short"),
    pytest.param("ä" * 50, "invalid_request", id="not ascii"),
    pytest.param("b" * 64, "invalid_grant", id="wrong verifier"),
])
def test_idp04_the_token_request_needs_the_verifier(local: RunningEmulator, service: str,
                                                    verifier: str | None, error: str) -> None:
    browser = Browser(local, service)
    code = browser.login()["code"]
    answer = browser.redeem(code, code_verifier=verifier)  # type: ignore[arg-type]
    assert answer.status_code == 400 and answer.json()["error"] == error


# IDP-05: the issuer identifies itself

def test_idp05_discovery_announces_the_iss_parameter(local: RunningEmulator) -> None:
    doc = requests.get(local.config.urls.ias + "/.well-known/openid-configuration", verify=local.pki.ca_file,
                       timeout=5).json()
    assert doc["issuer"] == local.config.urls.ias and doc["authorization_response_iss_parameter_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize("service", SERVICES)
def test_idp05_every_authorization_response_names_the_issuer(local: RunningEmulator, service: str) -> None:
    browser = Browser(local, service)
    assert browser.login()["iss"] == browser.issuer
    assert query(browser.authorize())["iss"] == browser.issuer  # single sign-on answer
    assert query(browser.authorize(response_type="token"))["iss"] == browser.issuer


# IDP-06: no implicit, no password

@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "code token", None])
def test_idp06_only_the_code_flow_is_offered(local: RunningEmulator, service: str,
                                             response_type: str | None) -> None:
    answer = Browser(local, service).authorize(response_type=response_type)
    assert answer.status_code == 302 and query(answer)["error"] == "unsupported_response_type"
    assert "#" not in answer.headers["Location"]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("grant_type", ["password", "implicit", "token", "", "urn:x"])
def test_idp06_password_and_implicit_grants_are_unsupported(local: RunningEmulator, service: str,
                                                            grant_type: str) -> None:
    answer = Browser(local, service).token({"grant_type": grant_type, "username": "jane", "password": "jane"})
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_grant_type"


# IDP-09: logout

@pytest.mark.parametrize("target", [
    LOGOUT_PAGE + "/", LOGOUT_PAGE + "?x=1", LOGOUT_PAGE.replace(":5000", ":5001"), CALLBACK,
    "https://evil.example/logout.html", "http://localhost:5000@evil.example/logout.html",
    "https://*.cfapps.*.hana.ondemand.com/logout.html", ""])
def test_idp09_ias_refuses_an_unregistered_post_logout_redirect_uri(local: RunningEmulator,
                                                                     target: str) -> None:
    ias = Browser(local, "ias")
    ias.login()
    logout = ias.get(local.config.urls.browser + "/oauth2/logout", post_logout_redirect_uri=target)
    assert_refused_page(logout)
    assert ias.authorize().status_code == 302  # and the session lives on


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-4]}AAAA"


@pytest.mark.parametrize("hint", ["garbage", "a.b.c", "ä", "xsuaa", "tampered", "client"])
def test_idp09_ias_refuses_a_bad_id_token_hint(local: RunningEmulator, hint: str) -> None:
    ias = Browser(local, "ias")
    id_token = ias.redeem(ias.login()["code"]).json()["id_token"]
    tokens = {"xsuaa": requests.post(local.https + "/_emu/token", json={"user": "jane", "kind": "xsuaa"},
                                     verify=local.pki.ca_file, timeout=5).text,
              "tampered": _tampered(id_token),
              "client": ias.token({"grant_type": "client_credentials"}).json()["access_token"]}
    answer = ias.get(local.config.urls.browser + "/oauth2/logout", id_token_hint=tokens.get(hint, hint),
                     post_logout_redirect_uri=LOGOUT_PAGE)
    assert_refused_page(answer)  # "client": signed by this tenant, but the app's own token


def test_idp09_ias_logout_refuses_another_client(local: RunningEmulator) -> None:
    assert_refused_page(Browser(local, "ias").get(local.config.urls.browser + "/oauth2/logout",
                                                  client_id="other", post_logout_redirect_uri=LOGOUT_PAGE))


def test_idp09_an_expired_id_token_hint_still_ends_its_session(local: RunningEmulator) -> None:
    ias = Browser(local, "ias")
    tokens = ias.redeem(ias.login()["code"]).json()
    sid = decode(tokens["id_token"], ias.jwks())[1]["sid"]
    expired, _ = emulator_state(local).tokens.ias_id_token(local.config.users["jane"], sid=sid,
                                                           extra={"exp": int(time.time()) - 3600})
    answer = Browser(local, "ias").get(local.config.urls.browser + "/oauth2/logout", id_token_hint=expired)
    assert answer.status_code == 200  # another user agent: the hint alone names the session
    assert ias.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert ias.authorize().status_code == 200


@pytest.mark.parametrize("target", [
    "https://evil.example/", LOCAL.replace("5000", "5001") + "/logout.html", "http://localhost:5000@evil.example/",
    "//evil.example/", "http://localhost:5000\\@evil.example/", "javascript:alert(1)", "/relative",
    "https://*.cfapps.*.hana.ondemand.com/logout.html", "http://localhost:5000 /x", "http://localhost:abc/"])
def test_idp09_xsuaa_logout_redirects_only_to_the_clients_origins(local: RunningEmulator,
                                                                  target: str) -> None:
    cfg = local.config
    answer = Browser(local, "xsuaa").get(cfg.urls.xsuaa + "/logout.do", redirect=target,
                                         client_id=cfg.app.client_id)
    assert_refused_page(answer)


@pytest.mark.parametrize("client_id", [None, "sb-other!t1", "cpi"])
def test_idp09_xsuaa_logout_redirect_needs_the_apps_client(local: RunningEmulator,
                                                           client_id: str | None) -> None:
    cfg = local.config
    named = cfg.cpi.client_id if client_id == "cpi" else client_id
    params = {"redirect": LOGOUT_PAGE} | ({"client_id": named} if named else {})
    assert_refused_page(Browser(local, "xsuaa").get(cfg.urls.xsuaa + "/logout.do", **params))


# IDP-10: client authentication at the token endpoints

@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("how", ["no credentials", "wrong secret", "secret in form, wrong", "bad basic"])
def test_idp10_the_token_endpoint_needs_the_client_secret(local: RunningEmulator, service: str,
                                                          how: str) -> None:
    browser = Browser(local, service)
    code = browser.login()["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": browser.verifier}
    url = (local.config.urls.ias + "/oauth2/token" if service == "ias" else local.https + "/oauth/token")
    headers = {"Authorization": "Basic %%%"} if how == "bad basic" else {}
    if how == "wrong secret":
        answer = browser.token(data, secret="wrong")
    elif how == "secret in form, wrong":
        answer = browser.token(data, secret="wrong", basic=False)
    else:
        answer = requests.post(url, data=data, headers=headers, verify=local.pki.ca_file, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"] == ("invalid_client" if service == "ias" else "unauthorized")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert browser.redeem(code).status_code == 200  # the code was not spent on a stranger


def test_idp10_the_cpi_client_may_not_redeem_codes(local: RunningEmulator) -> None:
    xsuaa = Browser(local, "xsuaa")
    code = xsuaa.login()["code"]
    cpi = local.config.cpi
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": xsuaa.verifier}
    answer = requests.post(local.https + "/oauth/token", auth=(cpi.client_id, cpi.secret), data=data,
                           verify=local.pki.ca_file, timeout=5)
    assert answer.status_code == 401 and answer.json()["error_description"] == "Unauthorized grant type"


# The login form itself

@pytest.mark.parametrize("service", SERVICES)
def test_the_login_form_is_bound_to_the_browser_that_asked(local: RunningEmulator, service: str) -> None:
    browser, attacker = Browser(local, service), Browser(local, service)
    page = browser.authorize()
    attacker.http.cookies.clear()
    forged = attacker.submit(page, user="jane")  # a cross-site post carries no SameSite=Lax cookie
    assert_refused_page(forged)
    assert browser.submit(page, user="jane").status_code == 302
    assert_refused_page(browser.submit(page, user="jane"))  # and a login request is single-use


@pytest.mark.parametrize("service", SERVICES)
def test_a_login_request_expires(local: RunningEmulator, clock: list[float], service: str) -> None:
    browser = Browser(local, service)
    page = browser.authorize()
    clock[0] = 601
    assert_refused_page(browser.submit(page, user="jane"))


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("form", [{"user": "nobody"}, {"username": "jane", "password": ""},
                                  {"username": "", "password": ""}, {"username": "nobody", "password": "x"}])
def test_an_unknown_user_or_wrong_password_gets_no_code(local: RunningEmulator, service: str,
                                                        form: dict[str, str]) -> None:
    browser = Browser(local, service)
    page = browser.authorize()
    answer = browser.submit(page, **form)
    assert answer.status_code == 401 and "Location" not in answer.headers
    assert browser.submit(page, user="jane").status_code == 302  # the request is still good


def test_pages_never_show_secrets(local: RunningEmulator) -> None:
    cfg = local.config
    for service in SERVICES:
        browser = Browser(local, service)
        texts = [browser.authorize().text, browser.authorize(redirect_uri="x").text]
        texts.append(browser.submit(browser.authorize(), username="jane", password="wrong-pw").text)
        for text in texts:
            secrets = (cfg.app.secret, cfg.ias_app.secret, cfg.cpi.secret, "wrong-pw")
            assert all(s not in text for s in secrets)


# Bad input is answered, never a 500

@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("overrides", [
    {"state": "ä\u0000<script>"}, {"nonce": "x" * 5000}, {"prompt": "none login consent"},
    {"scope": "\u2028"}, {"code_challenge": "ä" * 50}, {"response_type": ""}])
def test_odd_authorization_requests_are_answered(local: RunningEmulator, service: str,
                                                 overrides: dict[str, str]) -> None:
    answer = Browser(local, service).authorize(**overrides)
    assert answer.status_code in (200, 302, 400)
    assert "<script>" not in answer.text


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("data", [
    {"grant_type": "authorization_code"}, {"grant_type": "authorization_code", "code": "ä\u0000"},
    {"grant_type": "refresh_token"}, {"grant_type": "refresh_token", "refresh_token": "x" * 10000},
    {"grant_type": ["refresh_token", "authorization_code"]}])
def test_odd_token_requests_are_answered(local: RunningEmulator, service: str,
                                         data: dict[str, object]) -> None:
    answer = Browser(local, service).token(data)  # type: ignore[arg-type]
    assert 400 <= answer.status_code < 500 and "error" in answer.json()


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth/authorize", "/oauth2/token"])
def test_a_spoofed_host_is_answered(local: RunningEmulator, path: str) -> None:
    token, ias = path.endswith("token"), local.config.ias_app
    answer = requests.request("POST" if token else "GET", local.config.urls.browser + path,
                              headers={"Host": "evil.example"}, timeout=5, allow_redirects=False,
                              auth=(ias.client_id, ias.secret) if token else None,
                              data={"grant_type": "authorization_code", "code": "x"} if token else None)
    assert 400 <= answer.status_code < 500


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer garbage", "Basic eDp5", "Bearer ä.ä.ä"])
def test_odd_userinfo_requests_are_answered(local: RunningEmulator, authorization: str) -> None:
    answer = requests.get(local.config.urls.ias + "/oauth2/userinfo", verify=local.pki.ca_file, timeout=5,
                          headers={"Authorization": authorization})
    assert answer.status_code == 401
