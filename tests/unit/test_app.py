"""The Flask app end to end in-process: token in, exchange, iFlow, page or JSON out.

The token endpoint, the keys and the iFlow are ``responses`` mocks here; the integration
tests run the same against real HTTPS servers.
"""

from __future__ import annotations

import json

import pytest
import requests
import responses
from flask.testing import FlaskClient

from app import create_app
from app.settings import AppSettings
from seccore import ConfigError
from tests import factories as f
from tests.unit.app_helpers import IFLOW_URL, JSON, bearer, exchanged, iflow_call, token_call


def test_xsuaa_user_reaches_the_iflow_and_sees_both_tokens(client: FlaskClient,
                                                           mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    user = f.sign(f.xsuaa_claims())
    response = client.get("/homepage", headers=bearer(user, **JSON))
    assert response.status_code == 200
    data = response.get_json()
    assert data["user_token"]["claims"]["user_name"] == "jane.doe@example.com"
    assert data["exchanged_token"]["claims"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert data["iflow"] == {"status": 200, "headers": {"content-type": "application/json",
                                                        "sap_messageprocessinglogid": "MPL-1"},
                             "body": '{"echo": "ok"}', "truncated": False,
                             "took_ms": data["iflow"]["took_ms"]}
    owners = {a["value"]: a["owner"] for a in data["exchanged_token"]["audiences"]}
    assert owners[f.CPI_CLIENT_ID].startswith("CPI") and owners[f.CPI_BROKER].startswith("CPI runtime")
    owners = {a["value"]: a["owner"] for a in data["user_token"]["audiences"]}
    assert owners[f.XSUAA_CLIENT_ID] == "this app (XSUAA client)"
    sent = mocked.calls[-1].request
    assert sent.headers["Authorization"] == "Bearer " + exchanged_token_of(mocked)
    assert sent.headers["x-correlationid"] == response.headers["x-correlationid"]
    assert user not in response.get_data(as_text=True)


def exchanged_token_of(mock: responses.RequestsMock) -> str:
    answer = next(c.response for c in mock.calls if c.request.url == f.XSUAA_TOKEN_URL)
    return answer.json()["access_token"]


def test_ias_user_page_labels_the_audience_entries(client: FlaskClient,
                                                   mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    response = client.get("/homepage", headers=bearer(f.sign(f.ias_claims(), key="ias")))
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "this app (IAS client)" in page
    assert "the subaccount&#39;s XSUAA when xsuaa-cross-consumption is on" in page
    assert "CPI (client of the it-rt binding)" in page
    assert "MPL-1" in page


def test_claims_with_html_are_shown_escaped(client: FlaskClient, mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked, body="<img src=x onerror=alert(2)>", content_type="text/html")
    evil = "<script>alert(1)</script>"
    claims = f.xsuaa_claims(given_name=evil, **{"<b>key</b>": '"><svg onload=alert(3)>'})
    page = client.get("/homepage", headers=bearer(f.sign(claims))).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for raw in (evil, "<img src=x", "<svg onload", "<b>key</b>"):
        assert raw not in page


def test_every_response_carries_the_security_headers(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "UP"}
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_cached_cpi_token_that_cpi_refuses_is_exchanged_once_more(
        client: FlaskClient, mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    user = bearer(f.sign(f.xsuaa_claims()), **JSON)
    iflow_call(mocked)
    assert client.get("/homepage", headers=user).status_code == 200
    mocked.replace(responses.POST, IFLOW_URL, status=401)
    iflow_call(mocked)
    response = client.get("/homepage", headers=user)
    assert response.status_code == 200
    assert sum(c.request.url == f.XSUAA_TOKEN_URL for c in mocked.calls) == 2


# The failures a BTP developer meets, each with the status and the words that point to the fix.
NO_GRANT = {"error": "invalid_client", "error_description": "Unauthorized grant type"}
NO_CROSS = {"error": "invalid_token",
            "error_description": f"Some parties were not in the token audience: {f.IAS_XSUAA_RP}"}


@pytest.mark.parametrize(("token", "token_answer", "iflow_answer", "status", "words"), [
    pytest.param(None, None, None, 401, ["no bearer token", "Authorization: Bearer"], id="no token"),
    pytest.param(f.sign(f.xsuaa_claims(), key="other"), None, None, 401, ["signature"], id="bad signature"),
    pytest.param(f.sign(f.xsuaa_claims(exp=1_000_000)), None, None, 401, ["expired"], id="expired"),
    pytest.param(f.sign(f.xsuaa_claims(scope=["openid"])), None, None, 403,
                 ["lacks the scope", "frontapp!t4711.Display", "role collection"], id="scope missing"),
    pytest.param(f.sign(f.xsuaa_claims(aud=["other-app"], cid="other", client_id="other")), None, None,
                 401, ["not issued for this app"], id="foreign audience"),
    pytest.param(f.sign(f.xsuaa_claims()), {"status": 401, "json": NO_GRANT}, None, 502,
                 ["does not allow the jwt-bearer grant", "grant-types", "config-cpi.json"],
                 id="grant missing"),
    pytest.param(f.sign(f.ias_claims(aud=[f.IAS_CLIENT_ID]), key="ias"), {"status": 401, "json": NO_CROSS},
                 None, 502, ["lacks the subaccount XSUAA client", "xsuaa-cross-consumption"],
                 id="cross-consumption missing"),
    pytest.param(f.sign(f.xsuaa_claims()), {"json": exchanged(scope=["openid"])}, None, 403,
                 ["lacks the CPI role Ntif.Read", "role collection mapped to the user's group"],
                 id="cpi role missing"),
    pytest.param(f.sign(f.xsuaa_claims()), {"body": requests.exceptions.ConnectionError()}, None, 503,
                 ["could not be reached"], id="token endpoint down"),
    pytest.param(f.sign(f.xsuaa_claims()), {"body": requests.exceptions.ReadTimeout()}, None, 504,
                 ["did not answer in time"], id="token endpoint slow"),
    pytest.param(f.sign(f.xsuaa_claims()), None, {"status": 403, "body": "<h1>HTTP Status 403</h1>"}, 403,
                 ["sender adapter", "CSRF"], id="cpi 403"),
    pytest.param(f.sign(f.xsuaa_claims()), None, {"status": 404}, 502, ["no iFlow answers", "IFLOW_PATH"],
                 id="iflow not deployed"),
    pytest.param(f.sign(f.xsuaa_claims()), None, {"status": 503}, 503, ["unavailable"], id="cpi down"),
    pytest.param(f.sign(f.xsuaa_claims()), None, {"body": requests.exceptions.ReadTimeout()}, 504,
                 ["outcome is unknown"], id="iflow timeout"),
    pytest.param(f.sign(f.xsuaa_claims()), None, {"status": 500, "body": "java.lang.Exception: boom"}, 502,
                 ["iFlow failed", "java.lang.Exception: boom"], id="iflow exception"),
])
def test_each_failure_names_its_cause_and_fix(client: FlaskClient, mocked: responses.RequestsMock,
                                              token: str | None, token_answer: dict | None,
                                              iflow_answer: dict | None, status: int, words: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    token_call(mocked, **(token_answer or {}))
    iflow_call(mocked, **(iflow_answer or {}))
    headers = bearer(token) if token else {}
    html = client.get("/homepage", headers=headers)
    data = client.get("/homepage", headers={**headers, **JSON}).get_json()
    assert html.status_code == status and data["status"] == status
    diagnosis = json.dumps(data["error"])
    page = html.get_data(as_text=True).replace("&#39;", "'").replace("&#34;", '"').replace("&lt;", "<")
    for word in words:
        assert word in diagnosis and word in page.replace("&gt;", ">")
    if status == 401:
        assert html.headers["WWW-Authenticate"].startswith("Bearer")
    assert not token or (token not in page and token not in diagnosis)
    assert "Traceback" not in page
    if status == 403 and token_answer is not None:  # the app refused before calling CPI
        assert not any(c.request.url == IFLOW_URL for c in mocked.calls)
    logs = capsys.readouterr().err
    assert not token or token not in logs


@pytest.mark.parametrize("request_kwargs", [
    pytest.param({"query_string": {"access_token": f.sign(f.xsuaa_claims())}}, id="query"),
    pytest.param({"method": "GET", "data": {"access_token": f.sign(f.xsuaa_claims())}}, id="form body"),
    pytest.param({"headers": {"Cookie": f"access_token={f.sign(f.xsuaa_claims())}"}}, id="cookie"),
])
def test_tokens_outside_the_authorization_header_are_ignored(client: FlaskClient,
                                                             request_kwargs: dict) -> None:
    """JWT-31: only the Authorization header counts (RFC 6750 §2.3, §5.3)."""
    response = client.open("/homepage", **request_kwargs)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="frontapp"'


@pytest.mark.parametrize("header", [
    pytest.param("Token abc.def.ghi", id="other scheme"),
    pytest.param("Basic dXNlcjpwdw==", id="basic"),
    pytest.param("Bearer", id="no token"),
    pytest.param("Bearer  abc.def.ghi", id="double space"),
    pytest.param("Bearer abc def", id="space inside"),
    pytest.param("Bearer abc\tdef", id="tab"),
    pytest.param("Bearer " + "a" * 9000, id="too large"),
])
def test_malformed_authorization_headers_are_401_never_500(client: FlaskClient, header: str) -> None:
    """JWT-35: header parsing."""
    response = client.get("/homepage", headers={"Authorization": header, **JSON})
    assert response.status_code == 401
    assert response.get_json()["error"]["step"] == "validate"


def test_two_authorization_headers_are_refused(client: FlaskClient) -> None:
    token = f.sign(f.xsuaa_claims())
    response = client.get("/homepage", headers=[("Authorization", f"Bearer {token}"),
                                                ("Authorization", "Bearer other.token.x"), *JSON.items()])
    # WSGI servers join repeated headers with ", "; either way the request is refused.
    assert response.status_code == 401
    assert response.get_json()["error"]["error"] == "invalid_token"


def test_no_token_or_secret_reaches_the_log(mocked: responses.RequestsMock,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = AppSettings(bindings=f.bindings(), required_scope="$XSAPPNAME.Display",
                           cpi_role="Ntif.Read", json_logs=True)
    client = create_app(settings).test_client()
    token_call(mocked)
    iflow_call(mocked)
    user = f.sign(f.xsuaa_claims())
    assert client.get("/homepage", headers=bearer(user)).status_code == 200
    mocked.replace(responses.POST, IFLOW_URL, body=requests.exceptions.ConnectionError(f"failed {user}"))
    client.get("/homepage", headers=bearer(f.sign(f.xsuaa_claims(jti="2"))))
    logs = capsys.readouterr().err
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines and all("correlation_id" in line for line in lines)
    for secret in (user, exchanged_token_of(mocked), f.CPI_SECRET, user.split(".")[2]):
        assert secret not in logs


def test_start_up_reports_every_configuration_problem_at_once(tmp_path: object) -> None:
    environ = {"VCAP_SERVICES": json.dumps({"xsuaa": f.vcap_services()["xsuaa"]}), "IFLOW_PATH": "/x/../y"}
    with pytest.raises(ConfigError) as caught:
        AppSettings.from_env(environ)
    assert len(caught.value.problems) == 2
    assert "it-rt" in str(caught.value) and "IFLOW_PATH" in str(caught.value)


def test_settings_default_to_the_deployed_config_files() -> None:
    settings = AppSettings.from_env({"VCAP_SERVICES": json.dumps(f.vcap_services())})
    assert settings.required_scope == "$XSAPPNAME.Display"  # xs-security.json
    assert settings.cpi_role == "Ntif.Read"  # config-cpi.json
    assert settings.iflow_path == "/http/ntif" and settings.iflow_content_type == "application/json"
