"""The app under gunicorn, end to end over real sockets: the user's token in, the key fetch,
the jwt-bearer exchange and the iFlow call out over verified HTTPS, the page back.

Each test sends its own user token (a fresh ``jti``): the app caches validations and
exchanged tokens per user token, so a shared token would hide calls.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests import factories
from tests.integration.processes import RunningApp
from tests.integration.servers import IFLOW_PATH, JWKS_PATH, JWT_BEARER, TOKEN_PATH, Upstream

pytestmark = pytest.mark.integration

PAYLOAD = {"message": "Hello from frontapp"}  # the app's default IFLOW_PAYLOAD


def user_token(app: RunningApp, *, key: str = "xsuaa", **changes: Any) -> str:
    token = factories.sign(factories.xsuaa_claims(jti=uuid.uuid4().hex, **changes), key=key)
    app.sent_tokens.append(token)
    return token


def homepage(app: RunningApp, token: str | None, accept: str = "application/json") -> requests.Response:
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return app.get("/homepage", headers=headers)


def test_happy_path_xsuaa_user_token(gunicorn_app: RunningApp, upstream: Upstream) -> None:
    token = user_token(gunicorn_app)

    response = homepage(gunicorn_app, token)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    data = response.json()
    assert data["error"] is None
    assert data["user_token"]["kind"] == "xsuaa"
    assert data["user_token"]["claims"]["user_name"] == "jane.doe@example.com"
    exchanged = data["exchanged_token"]["claims"]
    assert exchanged["grant_type"] == JWT_BEARER
    assert exchanged["client_id"] == factories.CPI_CLIENT_ID
    assert factories.CPI_ROLE_SCOPE in exchanged["scope"]
    assert data["iflow"]["status"] == 200
    assert json.loads(data["iflow"]["body"]) == PAYLOAD
    assert data["iflow"]["headers"]["sap_messageprocessinglogid"].startswith("AGd1cK-")
    assert [(s["name"], s["outcome"]) for s in data["steps"]] == [
        ("validate", "ok"), ("exchange", "ok"), ("role", "ok"), ("iflow", "ok")]
    assert upstream.refusals() == []

    # What went over the wire: the user's token as the assertion, the exchanged token to CPI.
    (exchange,) = upstream.calls_to(TOKEN_PATH)
    assert exchange.form["grant_type"] == JWT_BEARER
    assert exchange.form["assertion"] == token
    assert exchange.headers["X-Cf-Encoded-Credentials"] == "true"
    (iflow,) = upstream.calls_to(IFLOW_PATH)
    access_token = upstream.issued[-1]
    assert iflow.headers["Authorization"] == f"Bearer {access_token}"
    assert iflow.headers["X-Correlationid"] == response.headers["x-correlationid"]
    assert json.loads(iflow.body) == PAYLOAD
    # The page shows claims, never the tokens themselves.
    assert token not in response.text and access_token not in response.text

    # The HTML page for the same user: the exchanged token comes from the cache.
    page = homepage(gunicorn_app, token, accept="text/html")

    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert "jane.doe@example.com" in page.text
    assert JWT_BEARER in page.text
    assert token not in page.text and access_token not in page.text
    assert len(upstream.calls_to(TOKEN_PATH)) == 1
    assert len(upstream.calls_to(IFLOW_PATH)) == 2


def test_keys_come_from_the_uaadomain_of_the_binding_for_the_tokens_zone(
        gunicorn_app: RunningApp, upstream: Upstream) -> None:
    response = homepage(gunicorn_app, user_token(gunicorn_app))
    assert response.status_code == 200, response.text

    # The key set is cached for the life of the process: look at every fetch of the session.
    fetches = upstream.calls_to(JWKS_PATH, since_reset=False)
    assert fetches, "the app validated a token without fetching keys"
    for fetch in fetches:
        assert fetch.status == 200, fetch.refusal
        assert fetch.query == {"zid": factories.ZONE_ID}
        assert fetch.headers["X-Zid"] == factories.ZONE_ID
    assert len(fetches) == 1  # one worker, one fetch: the key set is cached across tokens


def test_token_endpoint_refuses_the_grant_type(gunicorn_app: RunningApp, upstream: Upstream) -> None:
    upstream.mode.token_status = 401
    upstream.mode.token_error = {"error": "invalid_client", "error_description": "Unauthorized grant type"}

    response = homepage(gunicorn_app, user_token(gunicorn_app))

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["step"] == "exchange"
    assert JWT_BEARER in error["cause"]
    assert "jwt-bearer" in error["fix"] and "config-cpi.json" in error["fix"]
    assert error["server"] == {"error": "invalid_client", "error_description": "Unauthorized grant type"}
    assert len(upstream.calls_to(TOKEN_PATH)) == 1  # a 4xx is not retried
    assert upstream.calls_to(IFLOW_PATH) == []
    assert upstream.refusals() == []


def test_exchanged_token_without_the_cpi_role_is_refused_before_cpi(
        gunicorn_app: RunningApp, upstream: Upstream) -> None:
    upstream.mode.exchanged_changes = {"scope": ["openid"]}

    response = homepage(gunicorn_app, user_token(gunicorn_app))

    assert response.status_code == 403, response.text
    data = response.json()
    assert data["error"]["step"] == "role"
    assert "Ntif.Read" in data["error"]["cause"]
    assert "Ntif.Read" in data["error"]["fix"]
    assert data["exchanged_token"]["claims"]["scope"] == ["openid"]
    assert len(upstream.calls_to(TOKEN_PATH)) == 1
    assert upstream.calls_to(IFLOW_PATH) == []  # the iFlow was not called
    assert upstream.refusals() == []


def test_iflow_unavailable(gunicorn_app: RunningApp, upstream: Upstream) -> None:
    upstream.mode.iflow_status = 503

    response = homepage(gunicorn_app, user_token(gunicorn_app))

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["step"] == "iflow"
    assert error["upstream"] == {"status": 503, "body": "iFlow answered 503"}
    assert len(upstream.calls_to(IFLOW_PATH)) == 1  # a POST that was sent is not repeated
    assert upstream.refusals() == []

    page = homepage(gunicorn_app, user_token(gunicorn_app), accept="text/html")
    assert page.status_code == 503
    assert "the CPI runtime is unavailable (HTTP 503)" in page.text


@pytest.mark.parametrize(("token", "challenge"), [
    pytest.param("bad-signature", 'Bearer realm="frontapp", error="invalid_token"', id="bad-signature"),
    pytest.param(None, 'Bearer realm="frontapp"', id="no-token"),
])
def test_invalid_token_is_challenged(gunicorn_app: RunningApp, upstream: Upstream,
                                     token: str | None, challenge: str) -> None:
    # Signed by another key under the published kid: the signature does not verify.
    sent = user_token(gunicorn_app, key="attacker") if token else None

    response = homepage(gunicorn_app, sent)

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == challenge
    error = response.json()["error"]
    assert error["step"] == "validate"
    assert error["error"] == ("invalid_token" if token else "missing_token")
    assert upstream.calls_to(TOKEN_PATH) == [] and upstream.calls_to(IFLOW_PATH) == []


def test_no_token_or_secret_reaches_the_log(gunicorn_app: RunningApp, upstream: Upstream) -> None:
    # Walk one success and one refused exchange here too, so the check stands on its own.
    ok = homepage(gunicorn_app, user_token(gunicorn_app))
    assert ok.status_code == 200, ok.text
    upstream.mode.token_status = 401
    upstream.mode.token_error = {"error": "unauthorized", "error_description": "Bad credentials"}
    refused = homepage(gunicorn_app, user_token(gunicorn_app))
    assert refused.status_code == 502, refused.text

    log = gunicorn_app.log()

    # The log was captured: gunicorn's start and the app's JSON lines are in it.
    assert "Booting worker" in log
    app_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(e["logger"] == "seccore.exchange" and "took_ms" in e for e in app_lines), log
    assert any(e["msg"] == "request refused" for e in app_lines), log
    secrets = {
        "CPI client secret": factories.CPI_SECRET,
        "CPI client secret, URL-encoded": quote(factories.CPI_SECRET, safe=""),
        "Basic credential": base64.b64encode(
            f"{quote(factories.CPI_CLIENT_ID, safe='')}:{quote(factories.CPI_SECRET, safe='')}".encode()
        ).decode(),
    }
    tokens = {f"user token {i}": t for i, t in enumerate(gunicorn_app.sent_tokens)}
    tokens.update({f"exchanged token {i}": t for i, t in enumerate(upstream.issued)})
    assert len(tokens) >= 3  # at least this test's two user tokens and one exchanged token
    for name, token in tokens.items():
        secrets[name] = token
        secrets[f"{name} (signature)"] = token.rsplit(".", 1)[1]
    leaked = [name for name, value in secrets.items() if value in log]
    assert leaked == [], f"found in gunicorn's stderr: {leaked}"
    assert re.search(r"eyJ[A-Za-z0-9_-]{16,}", log) is None, "something JWT-shaped is in the log"


def test_log_messages_are_not_mangled_by_redaction(gunicorn_app: RunningApp, upstream: Upstream) -> None:
    response = homepage(gunicorn_app, user_token(gunicorn_app))
    assert response.status_code == 200, response.text
    correlation = response.headers["x-correlationid"]

    entries = [json.loads(line) for line in gunicorn_app.log().splitlines() if line.startswith("{")]

    messages = [e["msg"] for e in entries
                if e.get("correlation_id") == correlation and e["logger"] == "seccore.exchange"]
    assert messages == ["jwt-bearer exchange done"]


@pytest.mark.parametrize(("size", "status", "words"), [
    pytest.param(8_192, 401, "not a well-formed signed JWT", id="the largest accepted size: the app decides"),
    pytest.param(8_193, 401, "larger than 8192 bytes", id="just over: the app says why"),
    pytest.param(16_000, 401, "larger than 8192 bytes", id="twice over: still the app"),
    pytest.param(40_000, 431, "", id="beyond the server's header limit: gunicorn's 431"),
])
def test_prx13_an_oversized_token_gets_a_reason_not_a_bare_4xx(gunicorn_app: RunningApp, size: int,
                                                               status: int, words: str) -> None:
    response = homepage(gunicorn_app, "a" * size)
    assert response.status_code == status
    if words:
        assert words in response.json()["error"]["cause"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
