"""The jwt-bearer exchange: request shape, client auth, cache, single flight, retries, diagnosis."""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import parse_qs, unquote

import pytest
import requests
import responses

from seccore import ClientCredentials, ExchangeError, JwtBearerExchange, ValidatedToken, make_session
from seccore.exchange import JWT_BEARER
from tests import factories as f


def user_token(kind: str = "xsuaa", **changes: object) -> ValidatedToken:
    claims = f.xsuaa_claims(**changes) if kind == "xsuaa" else f.ias_claims(**changes)
    raw = f.sign(claims, key=kind)
    return ValidatedToken(kind=kind, header={}, payload=json.dumps(claims).encode(),
                          expires_at=claims["exp"], raw=raw)


def cpi_answer(**changes: object) -> dict:
    return {"access_token": f.sign(f.exchanged_claims(**changes)), "token_type": "bearer",
            "expires_in": 3600, "scope": f.CPI_ROLE_SCOPE, "jti": "x"}


@pytest.fixture
def exchange() -> JwtBearerExchange:
    return JwtBearerExchange(f.cpi_binding(), make_session(retries=2, retry_statuses=True))


@responses.activate
def test_request_is_rfc7523_with_form_encoded_basic_auth(exchange: JwtBearerExchange) -> None:
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
    user = user_token()
    token = exchange.exchange(user)
    sent = responses.calls[0].request
    form = parse_qs(sent.body)
    assert form["grant_type"] == [JWT_BEARER]
    assert form["assertion"] == [user.raw]
    assert form["client_id"] == [f.CPI_CLIENT_ID]
    scheme, _, value = sent.headers["Authorization"].partition(" ")
    client_id, _, secret = base64.b64decode(value).decode().partition(":")
    assert scheme == "Basic" and sent.headers["X-CF-ENCODED-CREDENTIALS"] == "true"
    assert (unquote(client_id), unquote(secret)) == (f.CPI_CLIENT_ID, f.CPI_SECRET)
    assert token.claims["grant_type"] == JWT_BEARER and f.CPI_ROLE_SCOPE in token.scopes


@responses.activate
def test_ias_assertion_sends_its_tenant_as_x_zid(exchange: JwtBearerExchange) -> None:
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
    exchange.exchange(user_token("ias"))
    assert responses.calls[0].request.headers["X-zid"] == f.ZONE_ID


@responses.activate
def test_x509_client_uses_the_certificate_and_sends_no_secret() -> None:
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
    cpi = f.cpi_binding(credentials=ClientCredentials(f.CPI_CLIENT_ID, certificate="C", key="K"))
    session = make_session(retries=0, retry_statuses=False, cert=("cert.pem", "key.pem"))
    JwtBearerExchange(cpi, session).exchange(user_token())
    sent = responses.calls[0].request
    assert "Authorization" not in sent.headers
    assert parse_qs(sent.body)["client_id"] == [f.CPI_CLIENT_ID]
    assert "client_secret" not in parse_qs(sent.body)
    assert session.cert == ("cert.pem", "key.pem")


@responses.activate
def test_many_requests_of_one_user_make_one_token_call(exchange: JwtBearerExchange) -> None:
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
    user = user_token()
    first = exchange.exchange(user)
    again = [exchange.exchange(user) for _ in range(20)]
    assert len(responses.calls) == 1
    assert not first.from_cache and all(t.from_cache for t in again)
    assert {t.access_token for t in again} == {first.access_token}


@responses.activate
def test_two_users_never_share_a_token(exchange: JwtBearerExchange) -> None:
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer(user_name="jane"))
    responses.post(f.XSUAA_TOKEN_URL, json=cpi_answer(user_name="john"))
    jane, john = user_token(user_name="jane"), user_token(user_name="john")
    assert exchange.exchange(jane).claims["user_name"] == "jane"
    assert exchange.exchange(john).claims["user_name"] == "john"
    assert exchange.exchange(jane).claims["user_name"] == "jane"


def test_concurrent_requests_for_one_user_share_one_call() -> None:
    release, entered = threading.Event(), threading.Event()
    calls = []

    def slow_token_endpoint(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        calls.append(request)
        entered.set()
        release.wait(5)
        return 200, {}, json.dumps(cpi_answer())

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, f.XSUAA_TOKEN_URL, callback=slow_token_endpoint)
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=0, retry_statuses=False))
        user = user_token()
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(exchange.exchange(user)))
                   for _ in range(8)]
        for t in threads:
            t.start()
        assert entered.wait(5)  # the leader is inside the call; the others queue behind it
        release.set()
        for t in threads:
            t.join(5)
    assert len(calls) == 1 and len(results) == 8
    assert len({r.access_token for r in results}) == 1


def test_a_token_close_to_expiry_is_exchanged_again() -> None:
    now = [1_000_000.0]
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, json=cpi_answer(exp=int(now[0]) + 3600))
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=0, retry_statuses=False),
                                     clock=lambda: now[0])
        user = user_token()
        exchange.exchange(user)
        now[0] += 3600 - 299  # inside the 5-minute margin
        exchange.exchange(user)
        assert len(mock.calls) == 2


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_transient_failures_are_retried_a_bounded_number_of_times(status: int) -> None:
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, status=status, headers={"Retry-After": "0"})
        mock.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=2, retry_statuses=True))
        assert exchange.exchange(user_token()).claims["grant_type"] == JWT_BEARER
        assert len(mock.calls) == 2


def test_persistent_unavailability_gives_up_after_the_retry_budget() -> None:
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, status=503, headers={"Retry-After": "0"})
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=2, retry_statuses=True))
        with pytest.raises(ExchangeError) as caught:
            exchange.exchange(user_token())
        assert len(mock.calls) == 3 and caught.value.status == 503


UNAUTHORIZED_GRANT = {"error": "invalid_client", "error_description": "Unauthorized grant type"}
NO_CROSS_CONSUMPTION = {"error": "invalid_token",
                        "error_description": f"Some parties were not in the token audience: {f.IAS_XSUAA_RP}"}
UNMAPPED_ISSUER = {"error": "unauthorized", "error_description":
                   f"Unable to map issuer, {f.IAS_ISSUER} , to a single registered provider"}
NO_SCOPE = {"error": "invalid_scope", "error_description":
            "[it-rt.Ntif.Read] is invalid. This user is not allowed any of the requested scopes"}
BAD_CREDENTIALS = {"error": "unauthorized", "error_description": "Bad credentials"}
EXPIRED = {"error": "invalid_token", "error_description": "Token does not bear a valid EXP claim."}


@pytest.mark.parametrize(("status", "body", "kind", "http_status", "in_cause", "in_fix"), [
    pytest.param(401, UNAUTHORIZED_GRANT, "xsuaa", 502, "jwt-bearer", "config-cpi.json",
                 id="grant not allowed"),
    pytest.param(401, NO_CROSS_CONSUMPTION, "ias", 502, "audience lacks the subaccount XSUAA",
                 "xsuaa-cross-consumption", id="no cross-consumption"),
    pytest.param(401, UNMAPPED_ISSUER, "ias", 502, "not a trusted identity provider", "Trust", id="no trust"),
    pytest.param(401, UNMAPPED_ISSUER, "xsuaa", 502, "another subaccount", "same subaccount",
                 id="other subaccount"),
    pytest.param(400, NO_SCOPE, "xsuaa", 403, "none of the CPI client's scopes", "role collection",
                 id="no scope at all"),
    pytest.param(401, BAD_CREDENTIALS, "xsuaa", 502, "credentials", "service key", id="bad client secret"),
    pytest.param(401, EXPIRED, "xsuaa", 401, "expired", "log in again", id="assertion expired"),
    pytest.param(400, {"error": "invalid_grant"}, "xsuaa", 401, "invalid_grant", "log in again",
                 id="EXC-02 invalid_grant"),
    pytest.param(400, {"error": "invalid_request"}, "xsuaa", 502, "HTTP 400", "server", id="other 4xx"),
])
def test_refusals_are_not_retried_and_are_explained(status: int, body: dict, kind: str, http_status: int,
                                                    in_cause: str, in_fix: str) -> None:
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, status=status, json=body)
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=2, retry_statuses=True))
        user = user_token(kind)
        with pytest.raises(ExchangeError) as caught:
            exchange.exchange(user)
        assert len(mock.calls) == 1  # a 4xx is never retried
    error = caught.value
    assert error.status == http_status
    assert in_cause in error.cause and in_fix in error.fix
    assert error.server_description == body.get("error_description", "")
    assert user.raw not in str(error.to_dict())


@pytest.mark.parametrize("answer", [
    pytest.param({"body": "<html>login</html>", "content_type": "text/html"}, id="html"),
    pytest.param({"json": {"token_type": "bearer"}}, id="no access_token"),
    pytest.param({"json": {"access_token": "x.y.z", "token_type": "bearer"}}, id="not a jwt"),
    pytest.param({"json": {**cpi_answer(), "token_type": "mac"}}, id="not bearer"),
    pytest.param({"json": cpi_answer(exp=int(time.time()) - 10)}, id="already expired"),
    pytest.param({"json": [1, 2]}, id="json array"),
])
def test_a_malformed_success_is_a_502_and_nothing_is_cached(answer: dict) -> None:
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, status=200, **answer)
        mock.post(f.XSUAA_TOKEN_URL, json=cpi_answer())
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=0, retry_statuses=False))
        user = user_token()
        with pytest.raises(ExchangeError) as caught:
            exchange.exchange(user)
        assert caught.value.status == 502
        assert not exchange.exchange(user).from_cache  # the bad answer was not kept


@pytest.mark.parametrize(("failure", "status"), [
    pytest.param(requests.exceptions.ConnectTimeout(), 504, id="connect timeout"),
    pytest.param(requests.exceptions.ReadTimeout(), 504, id="read timeout"),
    pytest.param(requests.exceptions.ConnectionError(), 503, id="refused"),
    pytest.param(requests.exceptions.SSLError(), 502, id="untrusted certificate"),
])
def test_network_failures_map_to_gateway_statuses(failure: Exception, status: int) -> None:
    with responses.RequestsMock() as mock:
        mock.post(f.XSUAA_TOKEN_URL, body=failure)
        exchange = JwtBearerExchange(f.cpi_binding(), make_session(retries=0, retry_statuses=False))
        with pytest.raises(ExchangeError) as caught:
            exchange.exchange(user_token())
    assert caught.value.status == status


def test_plain_http_is_refused_before_sending() -> None:
    exchange = JwtBearerExchange(f.cpi_binding(tokenurl="http://mysub.example.com/oauth/token"),
                                 make_session(retries=0, retry_statuses=False))
    with responses.RequestsMock() as mock:
        with pytest.raises(ExchangeError):
            exchange.exchange(user_token())
        assert len(mock.calls) == 0
