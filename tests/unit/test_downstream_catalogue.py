"""Catalogue rows of the app's own side (security-catalogue.md E, F, G, I and the fault
matrix F-03..F-24): what reaches the page, the log and the upstreams when they misbehave; and
the JWT-30 source scan of the gateway."""

from __future__ import annotations

import ast
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
import responses
from flask.testing import FlaskClient
from markupsafe import escape

from app import create_app
from app.settings import AppSettings
from seccore import ConfigError, JwksCache, TokenValidator, make_session
from seccore.errors import KeysUnavailable
from tests import factories as f
from tests.unit.app_helpers import IFLOW_URL, JSON, bearer, exchanged, iflow_call, token_call
from tests.unit.test_jwt_catalogue import _jwt30_offenders

ROOT = Path(__file__).resolve().parents[2]


def user_token() -> str:
    return f.sign(f.xsuaa_claims(jti=uuid.uuid4().hex))


def calls_to(mock: responses.RequestsMock, url: str) -> int:
    return sum(c.request.url == url for c in mock.calls)


# --- G: the exchange and the downstream call ---------------------------------------------

def test_exc02_f06_invalid_grant_asks_to_log_in_again(client: FlaskClient,
                                                      mocked: responses.RequestsMock) -> None:
    token_call(mocked, status=400, json={"error": "invalid_grant", "error_description": "expired"})
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "log in again" in response.get_json()["error"]["fix"]
    assert calls_to(mocked, f.XSUAA_TOKEN_URL) == 1


def test_exc05_f09_a_token_for_another_client_is_not_sent_to_cpi(client: FlaskClient,
                                                                  mocked: responses.RequestsMock) -> None:
    token_call(mocked, json=exchanged(cid="sb-other!b1", client_id="sb-other!b1", azp="sb-other!b1",
                                      aud=["sb-other!b1"]))
    iflow_call(mocked)
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 502 and "another client" in response.get_json()["error"]["cause"]
    assert calls_to(mocked, IFLOW_URL) == 0


def test_f05_retry_after_beyond_the_budget_is_not_waited_for(client: FlaskClient,
                                                             mocked: responses.RequestsMock) -> None:
    token_call(mocked, status=429, headers={"Retry-After": "120"}, json={"error": "rate_limited"})
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 503 and response.headers["Retry-After"] == "120"
    assert calls_to(mocked, f.XSUAA_TOKEN_URL) == 1


def test_f04_the_breaker_stops_calling_a_failing_token_endpoint(client: FlaskClient,
                                                                mocked: responses.RequestsMock) -> None:
    token_call(mocked, status=503, headers={"Retry-After": "0"}, json={"error": "unavailable"})
    statuses = [client.get("/homepage", headers=bearer(user_token(), **JSON)).status_code for _ in range(5)]
    sent = calls_to(mocked, f.XSUAA_TOKEN_URL)
    refused = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert statuses == [503] * 5 and sent == 15  # 5 failed requests, 3 tries each: the breaker opened
    assert calls_to(mocked, f.XSUAA_TOKEN_URL) == sent  # the next request did not reach it
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0


@pytest.mark.parametrize(("answer", "status"), [
    pytest.param({"status": 403, "body": "<h1>HTTP Status 403</h1>"}, 403, id="F-19 CPI 403"),
    pytest.param({"body": requests.exceptions.ReadTimeout()}, 504, id="F-17 read timeout"),
    pytest.param({"status": 500, "body": "boom"}, 502, id="F-20 iFlow 500"),
    pytest.param({"status": 503, "headers": {"Retry-After": "7"}}, 503, id="F-21 CPI 503"),
    pytest.param({"status": 302, "headers": {"Location": "https://evil.example/steal"}}, 502,
                 id="F-24 redirect"),
])
def test_an_iflow_post_is_sent_exactly_once(client: FlaskClient, mocked: responses.RequestsMock,
                                            answer: dict, status: int) -> None:
    token_call(mocked)
    iflow_call(mocked, **answer)
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == status
    assert calls_to(mocked, IFLOW_URL) == 1  # never repeated: an iFlow may have side effects
    assert all("evil.example" not in c.request.url for c in mocked.calls)  # SSRF-06: not followed
    if status == 503:
        assert response.headers["Retry-After"] == "7"


def test_f18_a_fresh_token_that_cpi_refuses_is_not_exchanged_again(client: FlaskClient,
                                                                   mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked, status=401)
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 502
    assert calls_to(mocked, f.XSUAA_TOKEN_URL) == 1 and calls_to(mocked, IFLOW_URL) == 1


@pytest.mark.parametrize("answer", [
    pytest.param({"body": "résumé".encode("latin-1"), "content_type": "text/plain; charset=x-bogus"},
                 id="F-22 unknown charset"),
    pytest.param({"body": b"x" * (1024 * 1024 + 10), "content_type": "text/plain"}, id="F-22 over 1 MB"),
])
def test_f22_odd_iflow_answers_are_shown_not_a_500(client: FlaskClient, mocked: responses.RequestsMock,
                                                   answer: dict) -> None:
    token_call(mocked)
    iflow_call(mocked, **answer)
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 200
    assert response.get_json()["iflow"]["truncated"] is (len(answer["body"]) > 1024 * 1024)


# --- E: what reaches the page --------------------------------------------------------------

def test_xss09_tokens_echoed_by_upstreams_never_reach_the_page(client: FlaskClient,
                                                               mocked: responses.RequestsMock) -> None:
    cpi_token = exchanged()
    token_call(mocked, json=cpi_token)
    iflow_call(mocked, body=f"you sent Authorization: Bearer {cpi_token['access_token']}",
               content_type="text/plain")
    user = user_token()
    for accept in ("text/html", "application/json"):
        page = client.get("/homepage", headers=bearer(user, Accept=accept)).get_data(as_text=True)
        assert cpi_token["access_token"] not in page and user not in page
        assert cpi_token["access_token"].split(".")[2] not in page


def test_xss03_url_claims_are_text_never_links(client: FlaskClient, mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    token = f.sign(f.xsuaa_claims(picture="javascript:alert(1)", website="data:text/html,<b>x</b>"))
    page = client.get("/homepage", headers=bearer(token)).get_data(as_text=True)
    assert "javascript:alert(1)" in page  # shown, as text
    assert "href=\"javascript" not in page and "src=\"data:" not in page and "<b>x</b>" not in page


@pytest.mark.parametrize("path", ["/homepage", "/no-such-page", "/health"])
def test_xss07_xss08_every_page_has_a_strict_csp_and_a_content_type(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                      "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in csp
    assert "unsafe" not in csp and "*" not in csp and "data:" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype in ("text/html", "application/json")
    assert response.mimetype == "application/json" or response.mimetype_params["charset"] == "utf-8"


@pytest.mark.parametrize(("claims", "payloads"), [
    pytest.param({"groups": ["Reader", "<img src=x onerror=alert(1)>"]}, ["<img src=x onerror=alert(1)>"],
                 id="XSS-05 in a list"),
    pytest.param({"xs.user.attributes": {"dept": ["<script>alert(2)</script>"]}},
                 ["<script>alert(2)</script>"], id="XSS-05 list in an object"),
    pytest.param({"ext_attr": {"<b>key</b>": {"deeper": [{"x": "</pre><svg onload=alert(3)>"}]}}},
                 ["<b>key</b>", "</pre><svg onload=alert(3)>"], id="XSS-05 key and value four deep"),
    pytest.param({"custom": [[["<iframe srcdoc='<b>4</b>'>"]]]}, ["<iframe srcdoc='<b>4</b>'>"],
                 id="XSS-05 nested lists, quotes"),
])
def test_xss05_html_inside_nested_claims_is_escaped(client: FlaskClient, mocked: responses.RequestsMock,
                                                     claims: dict, payloads: list[str]) -> None:
    """Objects and lists are shown as JSON text (app/claims.py ``shown_value``) in the claim table
    and the raw JSON; autoescaping covers both."""
    token_call(mocked)
    iflow_call(mocked)
    page = client.get("/homepage", headers=bearer(f.sign(f.xsuaa_claims(**claims)))).get_data(as_text=True)
    for payload in payloads:
        assert payload not in page
        assert str(escape(payload)) in page  # shown, as text


def test_xss04_xss06_templates_have_no_unescaping_constructs() -> None:
    templates = list((ROOT / "app" / "templates").glob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text()
        # Script only from a file (<script src>); no inline script or event handler attribute.
        assert not re.search(r"\|\s*safe|Markup\(|autoescape\s+false|<script(?![^>]*\ssrc=)|\son[a-z]+=",
                             text), template.name


# --- CSRF: the page has a side effect ------------------------------------------------------

@pytest.mark.parametrize(("method", "headers", "status"), [
    pytest.param("GET", {"Sec-Fetch-Site": "cross-site"}, 200, id="cross-site navigation"),
    pytest.param("POST", {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, 403,
                 id="cross-site post"),
    pytest.param("HEAD", {}, 405, id="HEAD"),
])
def test_other_sites_and_heads_cannot_set_the_iflow_off(client: FlaskClient, mocked: responses.RequestsMock,
                                                        method: str, headers: dict, status: int) -> None:
    token_call(mocked)
    iflow_call(mocked)
    response = client.open("/homepage", method=method, headers=bearer(user_token(), **headers))
    assert response.status_code == status
    assert calls_to(mocked, IFLOW_URL) == 0
    if status == 200:  # the tokens are shown; the page says why the iFlow was not called
        assert "opened from another site" in response.get_data(as_text=True)


def test_a_same_origin_navigation_calls_the_iflow(client: FlaskClient,
                                                  mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    response = client.get("/homepage", headers=bearer(user_token(), **{"Sec-Fetch-Site": "same-origin"}))
    assert response.status_code == 200 and calls_to(mocked, IFLOW_URL) == 1


# --- I: logs, errors, configuration -------------------------------------------------------

def test_leak02_a_crlf_in_the_path_cannot_forge_a_log_line(client: FlaskClient,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    client.get("/x%0d%0aFAKE%20log%20line")
    logs = capsys.readouterr().err
    assert "\nFAKE log line" not in logs and "\rFAKE" not in logs


#: A claim that would start new, coloured log lines that look like the app's own, if written raw.
FORGED_TEXT_LINE = "1999-12-31 23:59:59,999 INFO app [-] GET /admin 200"
FORGED_JSON_LINE = '{"time": "1999-12-31T23:59:59.999Z", "level": "info", "msg": "FAKE"}'
FORGED = f"jane\r\n{FORGED_TEXT_LINE}\x1b[2J\x1b[31m\u2028{FORGED_JSON_LINE}\x85NEL\nEND"
#: The start of a line of seccore.logs' text format: time, level, logger.
_TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (app|seccore)\S* ")


@pytest.mark.parametrize("json_logs", [False, True], ids=["LEAK-02 text lines", "LEAK-02 JSON lines"])
def test_leak02_cr_lf_and_ansi_in_claims_cannot_forge_or_colour_a_log_line(
        mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str], json_logs: bool) -> None:
    """sub, user_name, name and email chosen by whoever controls an IdP account, accepted and
    refused; and the path. Every line the app writes is one whole record of its own format."""
    settings = AppSettings(bindings=f.bindings(), required_scope="$XSAPPNAME.Display", cpi_role="Ntif.Read",
                           json_logs=json_logs)
    client = create_app(settings).test_client()
    token_call(mocked)
    iflow_call(mocked)
    forged = {"sub": FORGED, "user_name": FORGED, "given_name": FORGED, "email": FORGED}
    capsys.readouterr()
    assert client.get("/homepage", headers=bearer(f.sign(f.xsuaa_claims(**forged)))).status_code == 200
    no_scope = f.sign(f.xsuaa_claims(scope=["openid"], **forged))
    assert client.get("/homepage", headers=bearer(no_scope, **JSON)).status_code == 403
    expired = f.sign(f.xsuaa_claims(exp=int(time.time()) - 3600, **forged))
    assert client.get("/homepage", headers=bearer(expired, **JSON)).status_code == 401
    client.get("/x%1b[2J%e2%80%a8FAKE%c2%85NEL")
    lines = capsys.readouterr().err.splitlines()  # also splits at U+2028, NEL, \x1c-\x1e ...
    assert len(lines) >= 4, lines
    for line in lines:
        assert "\x1b" not in line, line
        assert not line.startswith((FORGED_TEXT_LINE, FORGED_JSON_LINE)), line
        if json_logs:
            assert isinstance(json.loads(line), dict), line
        else:
            assert _TEXT_LINE.match(line), line


def test_leak03_leak04_an_unexpected_failure_is_a_generic_500(client: FlaskClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    flow = client.application.extensions["frontapp"].flow
    monkeypatch.setattr(flow, "run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret-ish detail")))
    response = client.get("/homepage", headers=bearer(user_token(), **JSON))
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret-ish detail" not in body and "Traceback" not in body
    assert response.get_json()["correlation_id"] == response.headers["x-correlationid"]
    assert client.application.debug is False


@pytest.mark.parametrize(("files", "problem"), [
    pytest.param({"xs-security.json": None}, "REQUIRED_SCOPE", id="xs-security.json missing"),
    pytest.param({"xs-security.json": "{not json"}, "REQUIRED_SCOPE", id="xs-security.json broken"),
    pytest.param({"config-cpi.json": '{"roles": "Ntif.Read"}'}, "CPI_ROLE", id="roles not a list"),
    pytest.param({"config-cpi.json": None}, "CPI_ROLE", id="config-cpi.json missing"),
])
def test_a_check_never_disappears_silently_with_a_broken_file(tmp_path: Path, files: dict,
                                                              problem: str) -> None:
    for name in ("xs-security.json", "config-cpi.json", "config-ias.json"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    for name, text in files.items():
        if text is None:
            (tmp_path / name).unlink()
        else:
            (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=problem):
        AppSettings.from_env({"VCAP_SERVICES": json.dumps(f.vcap_services())}, root=tmp_path)


def test_an_explicitly_empty_setting_switches_the_check_off(tmp_path: Path) -> None:
    settings = AppSettings.from_env({"VCAP_SERVICES": json.dumps(f.vcap_services()), "REQUIRED_SCOPE": "",
                                     "CPI_ROLE": ""}, root=tmp_path)
    assert settings.required_scope is None and settings.cpi_role is None


# --- F: SSRF by forged IAS tenants ---------------------------------------------------------

def forged_ias_token(label: str) -> str:
    issuer = f"https://{label}.{f.IAS_DOMAIN}"
    return f.sign(f.ias_claims(iss=issuer, ias_iss=issuer), key="attacker")


def test_ssrf02_forged_tenant_names_cause_at_most_one_lookup() -> None:
    validator = TokenValidator(jwks=JwksCache(make_session(retries=0, retry_statuses=False)),
                               ias=f.ias_binding())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("https://nothing.invalid")
        outcomes = []
        for i in range(20):
            try:
                validator.validate(forged_ias_token(f"x{i}"))
            except KeysUnavailable as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - the outcome class is what is compared
                outcomes.append(type(exc).__name__)
        assert len(mock.calls) <= 1  # one unknown tenant per cooldown, all others refused at once
    assert outcomes.count("KeysUnavailable") >= 19


def test_forged_tenants_do_not_push_the_bound_keys_out() -> None:
    keys = JwksCache(make_session(retries=0, retry_statuses=False), cooldown=0)
    validator = TokenValidator(jwks=keys, xsuaa=f.xsuaa_binding(), ias=f.ias_binding(),
                               required_scope="$XSAPPNAME.Display")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f.XSUAA_JWKS_URL, json=f.jwks())
        validator.validate(f.sign(f.xsuaa_claims()))
        for i in range(70):  # forged tenants whose discovery and keys work
            issuer = f"https://t{i}.{f.IAS_DOMAIN}"
            mock.get(f"{issuer}/.well-known/openid-configuration",
                     json={"issuer": issuer, "jwks_uri": f"{issuer}/oauth2/certs"})
            mock.get(f"{issuer}/oauth2/certs", json=f.jwks(f.public_jwk("ias")))
            validator.validate(f.sign(f.ias_claims(iss=issuer, ias_iss=issuer), key="ias"))
        mock.replace(responses.GET, f.XSUAA_JWKS_URL, status=503)  # XSUAA's key endpoint goes down
        assert validator.validate(f.sign(f.xsuaa_claims(jti="after"))).kind == "xsuaa"


def test_app_debug_is_off_and_settings_come_from_create_app() -> None:
    app = create_app(AppSettings(bindings=f.bindings(), required_scope=None, cpi_role=None))
    assert not app.debug and not app.testing


# --- JWT-30: the gateway decodes nothing unverified, but for one documented read -------------

#: The gateway's reads of a token whose signature it does not check, each on purpose: after an
#: XSUAA login oidc.py reads the user of the access token it just got from the token endpoint over
#: verified TLS (approuter jwt-decodes it the same way). It forwards that token; the app validates
#: it before anything relies on it. Anything else here fails the scan.
ALLOWED_UNVERIFIED_READS = {("gateway/oidc.py", "IdentityProvider._tokens", "unverified_parts")}
#: Functions that read a JWT without checking its signature (seccore, PyJWT, python-jose, joserfc).
UNVERIFIED_READERS = frozenset({"unverified_parts", "get_unverified_header", "get_unverified_claims",
                                "extract_compact"})


def _unverified_reads(source: str, path: str) -> set[tuple[str, str, str]]:
    """(path, enclosing Class.function, reader) for every use of an unverified reader in ``source``,
    called or not, also under an import alias."""
    tree = ast.parse(source)
    aliases = {a.asname: a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for a in node.names if a.asname and a.name in UNVERIFIED_READERS}
    found: set[tuple[str, str, str]] = set()

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.id if isinstance(child, ast.Name) else getattr(child, "attr", None)
            reader = aliases.get(name or "", name)
            if reader in UNVERIFIED_READERS:
                found.add((path, ".".join(scope) or "<module>", reader))
            inner = (*scope, child.name) if isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else scope
            visit(child, inner)

    visit(tree, ())
    return found


def test_jwt30_no_unverified_decode_in_gateway() -> None:
    files = sorted((ROOT / "gateway").rglob("*.py"))
    assert files
    offenders = {str(p.relative_to(ROOT)): hits for p in files if (hits := _jwt30_offenders(p.read_text()))}
    assert offenders == {}
    reads = set().union(*(_unverified_reads(p.read_text(), str(p.relative_to(ROOT))) for p in files))
    assert reads == ALLOWED_UNVERIFIED_READS


@pytest.mark.parametrize(("snippet", "reads"), [
    pytest.param("from seccore.compact import unverified_parts\nclass P:\n    def f(self, t):\n"
                 "        return unverified_parts(t)", {("P.f", "unverified_parts")}, id="JWT-30 a call"),
    pytest.param("from seccore.compact import unverified_parts as peek\nasync def f(t):\n    return peek(t)",
                 {("f", "unverified_parts")}, id="JWT-30 an alias"),
    pytest.param("from seccore import compact\nread = compact.unverified_parts",
                 {("<module>", "unverified_parts")}, id="JWT-30 a reference"),
    pytest.param("import jwt\ndef f(t):\n    return jwt.get_unverified_header(t)",
                 {("f", "get_unverified_header")}, id="JWT-30 PyJWT"),
    pytest.param("from joserfc import jws\ndef f(t):\n    return jws.extract_compact(t)",
                 {("f", "extract_compact")}, id="JWT-30 joserfc"),
    pytest.param("from seccore.compact import parse_compact\ndef f(t):\n    return parse_compact(t)", set(),
                 id="a verified parse"),
])
def test_jwt30_unverified_reads_are_found_where_they_are(snippet: str, reads: set[tuple[str, str]]) -> None:
    assert _unverified_reads(snippet, "x.py") == {("x.py", *read) for read in reads}
