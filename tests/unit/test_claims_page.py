"""The claims page in-process: the comparison of both tokens, the flow diagram of the request,
and the form's POST that sends the user's payload to the iFlow. The browser tests
(tests/browser) check the same page rendered in Chromium through the gateway."""

from __future__ import annotations

import json
import re

import pytest
import responses
from flask.testing import FlaskClient

from app import create_app
from app.settings import AppSettings
from seccore import ConfigError
from tests import factories as f
from tests.unit.app_helpers import IFLOW_URL, JSON, bearer, exchanged, iflow_call, token_call

IAS_USER = f.sign(f.ias_claims(), key="ias")


def page_of(client: FlaskClient, token: str = IAS_USER, **kwargs: object) -> str:
    method = kwargs.pop("method", "GET")
    return client.open("/homepage", method=method, headers=bearer(token), **kwargs).get_data(as_text=True)


def change_of(page: str, claim: str) -> str:
    found = re.search(rf'data-claim="{re.escape(claim)}" data-change="([a-z]*)"', page)
    assert found, f"no row for {claim}"
    return found.group(1)


def step_of(page: str, label_start: str) -> str:
    """The status class of the diagram's arrow whose label starts with ``label_start``."""
    found = re.search(rf'<g class="step (\w+)" data-label="{re.escape(label_start)}', page)
    assert found, f"no arrow {label_start!r}"
    return found.group(1)


# --- the comparison ---------------------------------------------------------------------------

@pytest.mark.parametrize(("claim", "change"), [
    ("iss", "changed"),        # IAS tenant -> subaccount XSUAA
    ("aud", "changed"),        # this app + XSUAA -> CPI client
    ("azp", "changed"),
    ("grant_type", "added"),   # the jwt-bearer URN
    ("scope", "added"),        # the CPI role
    ("origin", "added"),
    ("user_name", "added"),
    ("zid", "added"),
    ("ext_attr", "added"),
    ("xs.system.attributes", "added"),
    ("groups", "removed"),
    ("app_tid", "removed"),
    ("sid", "removed"),
    ("email", "same"),         # the user survives the exchange
    ("given_name", "same"),
])
def test_each_claim_row_says_what_the_exchange_did_to_it(client: FlaskClient, mocked: responses.RequestsMock,
                                                         claim: str, change: str) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page = page_of(client)
    assert change_of(page, claim) == change
    if change not in ("same", ""):
        row = page.split(f'data-claim="{claim}"', 1)[1].split("</tr>", 1)[0]
        assert f'<span class="badge {change}">{change}</span>' in row  # said in words, not colour alone


def test_the_rows_that_matter_are_explained_in_words(client: FlaskClient,
                                                     mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page = page_of(client).replace("&#39;", "'")
    for words in ("CPI trusts only XSUAA tokens", "the new one is for CPI", "jwt-bearer URN",
                  "CPI sees the same e-mail", "turned them into role collections", "XSUAA names it zid"):
        assert words in page


def test_aud_entries_of_both_tokens_are_labelled_with_whose_client_they_are(
        client: FlaskClient, mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    row = page_of(client).split('data-claim="aud"', 1)[1].split("</tr>", 1)[0].replace("&#39;", "'")
    labels = dict(re.findall(r'<li><code>([^<]+)</code> <span class="owner">([^<]+)</span>', row))
    assert labels[f.IAS_CLIENT_ID] == "this app (IAS client)"
    assert labels[f.IAS_XSUAA_RP].startswith("another IAS application: the subaccount's XSUAA")
    assert labels[f.CPI_CLIENT_ID] == "CPI (client of the it-rt binding)"
    assert labels[f.CPI_BROKER] == "CPI runtime (it-rt xsappname)"


@pytest.mark.parametrize(("scope", "marked"), [
    pytest.param([f.CPI_ROLE_SCOPE, "openid"], "present", id="role granted"),
    pytest.param(["openid"], "missing", id="role missing"),
])
def test_the_cpi_role_is_marked_present_or_missing(client: FlaskClient, mocked: responses.RequestsMock,
                                                   scope: list[str], marked: str) -> None:
    token_call(mocked, json=exchanged(scope=scope))
    iflow_call(mocked)
    page = page_of(client)
    assert f'<li id="cpi-role" class="{marked}">' in page
    mark = f'<mark class="role"><code>{f.CPI_ROLE_SCOPE}</code> CPI role</mark>'
    assert (mark in page) == (marked == "present")


def test_the_exchanged_token_is_labelled_as_not_signature_checked_here(
        client: FlaskClient, mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    assert "its signature is CPI's to check" in page_of(client)  # EXC-05: labelled, not implied


def test_times_are_shown_in_utc_beside_the_number(client: FlaskClient,
                                                  mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page = page_of(client, f.sign(f.ias_claims(auth_time=1_700_000_000), key="ias"))
    assert "1700000000 (2023-11-14 22:13:20 UTC)" in page


def test_without_an_exchange_only_the_users_token_is_shown(client: FlaskClient,
                                                           mocked: responses.RequestsMock) -> None:
    token_call(mocked, status=401, json={"error": "invalid_grant", "error_description": "no trust"})
    page = page_of(client)
    assert change_of(page, "iss") == "" and "No exchanged token" in page
    assert 'id="raw-user"' in page and 'id="raw-exchanged"' not in page


# --- the diagram -------------------------------------------------------------------------------

def test_the_diagram_of_a_success_has_every_step_ok_and_timed(client: FlaskClient,
                                                              mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page = page_of(client)
    for label in ("GET /homepage", "Authorization: Bearer", "validate your token", "grant_type=jwt-bearer",
                  "access token for CPI", "CPI role Ntif.Read in scope?", "POST /http/ntif", "answer",
                  "this page"):
        assert step_of(page, label) == "ok"
    assert "HTTP 200 · MPL MPL-1" in page
    # validate, exchange and the iFlow call are timed
    assert len(re.findall(r'class="detail"[^>]*>ok · \d+\.\d ms<', page)) == 3
    assert 'class="diagnosis"' not in page


@pytest.mark.parametrize(("answers", "token", "failed", "skipped", "words"), [
    pytest.param({"token": {"json": exchanged(scope=["openid"])}}, IAS_USER, "CPI role Ntif.Read in scope?",
                 ["POST /http/ntif", "answer"], "lacks the CPI role Ntif.Read", id="missing role"),
    pytest.param({"token": {"status": 401, "json": {"error": "invalid_grant"}}}, IAS_USER,
                 "grant_type=jwt-bearer", ["CPI role Ntif.Read in scope?", "POST /http/ntif"],
                 "HTTP 401 · invalid_grant", id="exchange refused"),
    pytest.param({"iflow": {"status": 500, "body": "boom"}}, IAS_USER, "POST /http/ntif", [],
                 "HTTP 500", id="iflow failed"),
    pytest.param({}, f.sign(f.ias_claims(exp=1), key="ias"), "validate your token",
                 ["grant_type=jwt-bearer", "POST /http/ntif"], "the token has expired", id="expired token"),
    pytest.param({}, "", "Authorization: Bearer", ["grant_type=jwt-bearer"], "no token arrived",
                 id="no token"),
])
def test_a_failed_step_is_red_with_its_diagnosis_and_later_steps_not_called(
        client: FlaskClient, mocked: responses.RequestsMock, answers: dict, token: str, failed: str,
        skipped: list[str], words: str) -> None:
    token_call(mocked, **answers.get("token", {}))
    iflow_call(mocked, **answers.get("iflow", {}))
    headers = bearer(token) if token else {}
    page = client.get("/homepage", headers=headers).get_data(as_text=True)
    assert step_of(page, failed) == "failed"
    assert step_of(page, "this page") == "failed"
    for label in skipped:
        assert step_of(page, label) == "skipped"
    diagnosis = page.split('<text class="diagnosis"', 1)[1].split("</text>", 1)[0]
    assert "<tspan" in diagnosis
    assert words in page


def test_a_cached_exchange_is_drawn_as_not_called(client: FlaskClient,
                                                  mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page_of(client)
    page = page_of(client)
    assert step_of(page, "grant_type=jwt-bearer") == "cached" and "cached: not called" in page


def test_the_diagram_shows_the_path_the_gateway_saw_escaped(client: FlaskClient,
                                                            mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked)
    page = client.get("/homepage", headers=bearer(IAS_USER, **{
        "x-forwarded-path": '/xsuaa/homepage"><script>alert(1)</script>'})).get_data(as_text=True)
    assert "GET /xsuaa/homepage&#34;&gt;&lt;script&gt;" in page and "<script>alert" not in page


# --- sending a payload -------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "content_type", "sent_type"), [
    pytest.param('{"order": 4711, "note": "<b>ü</b>"}', "application/json", "application/json", id="json"),
    pytest.param("plain words <i>ü</i>", "text/plain", "text/plain; charset=utf-8", id="text"),
    pytest.param("", "text/plain; charset=utf-8", "text/plain; charset=utf-8", id="empty text"),
])
def test_a_posted_payload_reaches_the_iflow_and_comes_back_on_the_page(
        client: FlaskClient, mocked: responses.RequestsMock, body: str, content_type: str,
        sent_type: str) -> None:
    token_call(mocked)
    iflow_call(mocked, body=body.encode(), headers={"sap_messageprocessinglogid": "MPL-9"},
               content_type=sent_type)
    response = client.post("/homepage", data=body.encode(), headers=bearer(IAS_USER, **{
        "Content-Type": content_type}))
    assert response.status_code == 200
    (call,) = [c for c in mocked.calls if c.request.url == IFLOW_URL]
    assert (call.request.body or b"") == body.encode() and call.request.headers["Content-Type"] == sent_type
    page = response.get_data(as_text=True)
    assert step_of(page, "POST /homepage") == "ok" and "MPL-9" in page
    shown = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    assert f'spellcheck="false">{shown}</textarea>' in page          # the form keeps what was sent
    assert f'<pre id="iflow-body" class="body">{shown}</pre>' in page  # the iFlow's echo, escaped


def test_a_posted_payload_is_answered_as_json_when_asked(client: FlaskClient,
                                                         mocked: responses.RequestsMock) -> None:
    token_call(mocked)
    iflow_call(mocked, json={"echo": 1})
    response = client.post("/homepage", json={"n": 1}, headers=bearer(IAS_USER, **JSON))
    assert response.status_code == 200 and response.get_json()["iflow"]["body"] == '{"echo": 1}'


@pytest.mark.parametrize(("body", "headers", "status", "words"), [
    pytest.param(b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
                 "text/plain or application/json", id="form encoded"),
    pytest.param(b"<x/>", {"Content-Type": "application/xml"}, 415, "text/plain or application/json",
                 id="xml"),
    pytest.param(b"x", {}, 415, "text/plain or application/json", id="no content type"),
    pytest.param(b'{"a": ', {"Content-Type": "application/json"}, 400, "not JSON", id="broken json"),
    pytest.param(b"\xff\xfe", {"Content-Type": "text/plain"}, 400, "not UTF-8", id="not utf-8"),
    pytest.param(b"x" * (64 * 1024 + 1), {"Content-Type": "text/plain"}, 413, "Too Large", id="over 64 KB"),
    pytest.param(b"x", {"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}, 403,
                 "another site", id="cross-site"),
])
def test_a_bad_post_is_refused_with_a_reason_and_calls_nothing(
        client: FlaskClient, mocked: responses.RequestsMock, body: bytes, headers: dict[str, str],
        status: int, words: str) -> None:
    token_call(mocked)
    iflow_call(mocked)
    response = client.post("/homepage", data=body, headers=bearer(IAS_USER, **headers, **JSON))
    assert response.status_code == status
    assert words in json.dumps(response.get_json())
    assert not any(c.request.url in (IFLOW_URL, f.XSUAA_TOKEN_URL) for c in mocked.calls)


def test_a_post_without_a_token_is_401_and_calls_nothing(client: FlaskClient,
                                                         mocked: responses.RequestsMock) -> None:
    response = client.post("/homepage", data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not any(c.request.url == IFLOW_URL for c in mocked.calls)


# --- the logout button -------------------------------------------------------------------------

def test_the_page_logs_out_at_the_gateways_logout_path(mocked: responses.RequestsMock) -> None:
    settings = AppSettings(bindings=f.bindings(), cpi_role="Ntif.Read", logout_path="/my/logout")
    client = create_app(settings).test_client()
    page = client.get("/homepage", headers=bearer(IAS_USER)).get_data(as_text=True)
    assert '<form id="logout" method="post" action="/my/logout">' in page


@pytest.mark.parametrize("value", ["https://evil.example/logout", "//evil.example", "/a/../b", "logout", ""])
def test_a_logout_path_that_is_not_a_local_path_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="LOGOUT_PATH"):
        AppSettings.from_env({"VCAP_SERVICES": json.dumps(f.vcap_services()), "LOGOUT_PATH": value})


# --- the token caches' bound -------------------------------------------------------------------

@pytest.mark.parametrize(("value", "size"), [(None, 2000), ("50", 50), ("100000", 100000)])
def test_the_token_caches_are_bounded_by_token_cache_size(value: str | None, size: int) -> None:
    env = {"VCAP_SERVICES": json.dumps(f.vcap_services())} | ({"TOKEN_CACHE_SIZE": value} if value else {})
    assert AppSettings.from_env(env).token_cache_size == size


@pytest.mark.parametrize("value", ["0", "-1", "lots", "2e3", "", "1000001"])
def test_a_token_cache_size_that_is_not_a_count_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="TOKEN_CACHE_SIZE"):
        AppSettings.from_env({"VCAP_SERVICES": json.dumps(f.vcap_services()), "TOKEN_CACHE_SIZE": value})


def test_a_full_cache_forgets_the_oldest_user_first(mocked: responses.RequestsMock) -> None:
    settings = AppSettings(bindings=f.bindings(), cpi_role="Ntif.Read", token_cache_size=2)
    client = create_app(settings).test_client()
    token_call(mocked)
    iflow_call(mocked)
    users = [f.sign(f.ias_claims(sub=f"user-{n}"), key="ias") for n in range(3)]
    for user in users:
        client.get("/homepage", headers=bearer(user))
    exchanges = sum(c.request.url == f.XSUAA_TOKEN_URL for c in mocked.calls)
    client.get("/homepage", headers=bearer(users[2]))  # still cached: no exchange
    client.get("/homepage", headers=bearer(users[0]))  # forgotten: exchanged again
    assert sum(c.request.url == f.XSUAA_TOKEN_URL for c in mocked.calls) == exchanges + 1
