"""The app under gunicorn against the local emulator run as its own process: real tokens of
both kinds from the emulated IAS and XSUAA, the real jwt-bearer exchange and the emulated
CPI, all over verified HTTPS on loopback.

The failures the SAP tutorials walk into are made by changing one deploy file (or the
users file) in a copy and starting an emulator on it; the app's diagnosis must name the
fix. The emulator's admin API switches faults on (outages, errors, latency, key rotation).

One emulator and one app serve the tests of the unchanged configuration (module scope);
each broken configuration gets its own pair. Each request sends a freshly minted token:
the app caches validations and exchanged tokens per token text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.emulator_process import (
    USERS_FILE,
    EmulatorProcess,
    deploy_copy,
    running_app,
    running_emulator,
)
from tests.integration.processes import ROOT, RunningApp

pytestmark = pytest.mark.integration

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PAYLOAD = {"message": "Hello from frontapp"}  # the app's default IFLOW_PAYLOAD
JANE = "jane.doe@example.com"  # emulator/users.json: has the CPI role
JOHN = "john.roe@example.com"  # emulator/users.json: has not
TOKEN, IFLOW = ("POST", "/oauth/token"), ("POST", "/http/ntif")
XSUAA_KEYS, IAS_KEYS = ("GET", "/token_keys"), ("GET", "/oauth2/certs")
KEY_FETCHES = {XSUAA_KEYS, IAS_KEYS, ("GET", "/.well-known/openid-configuration")}


@dataclass
class Stack:
    """An emulator process and the app bound to it."""

    emulator: EmulatorProcess
    app: RunningApp

    def login(self, user: str, kind: str) -> str:
        token = self.emulator.mint(user, kind)
        self.app.sent_tokens.append(token)
        return token

    def homepage(self, token: str, accept: str = "application/json") -> requests.Response:
        return self.app.get("/homepage", headers={"Accept": accept, "Authorization": f"Bearer {token}"})

    def mark(self) -> int:
        """A position in the emulator's request log; see ``calls_since``."""
        return len(self.emulator.requests_log())

    def calls_since(self, mark: int, *, keys: bool = True) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request the emulated services got after ``mark``;
        without the key and discovery fetches unless ``keys``."""
        calls = [(c["method"], c["path"], c["status"]) for c in self.emulator.requests_log()[mark:]]
        return calls if keys else [c for c in calls if c[:2] not in KEY_FETCHES]

    @property
    def cpi_scope(self) -> str:
        """The scope of the CPI role Ntif.Read: ``<it-rt broker xsappname>.Ntif.Read``."""
        client_id = self.emulator.vcap_services["it-rt"][0]["credentials"]["oauth"]["clientid"]
        return client_id.split("|", 1)[1] + ".Ntif.Read"


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The emulator on the repository's own deploy files and users, and the app; both key
    caches of the app warmed by one request per token kind."""
    folder = tmp_path_factory.mktemp("emulator-default")
    with running_emulator(folder / "workspace", root=ROOT, users=USERS_FILE) as emulator, \
            running_app(emulator, folder / "gunicorn.log") as app:
        stack = Stack(emulator, app)
        mark = stack.mark()
        for kind in ("ias", "xsuaa"):
            response = stack.homepage(stack.login("jane", kind))
            assert response.status_code == 200, response.text
        fetched = {(m, p) for m, p, _ in stack.calls_since(mark)}
        assert {XSUAA_KEYS, IAS_KEYS} <= fetched, fetched
        yield stack


@pytest.fixture
def stack(default_stack: Stack) -> Iterator[Stack]:
    """The shared stack, with no fault switched on before or after the test."""
    default_stack.emulator.clear_faults()
    yield default_stack
    default_stack.emulator.clear_faults()


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start an emulator on a copy of the deploy files, changed by ``edits``, and the app."""
    with ExitStack() as running:
        def start(edits: dict[str, Callable[[dict[str, Any]], None]] | None = None, *,
                  x509: bool = False) -> Stack:
            root = deploy_copy(tmp_path / "deploy", edits)
            emulator = running.enter_context(running_emulator(
                tmp_path / "workspace", root=root, users=root / "users.json", x509=x509))
            app = running.enter_context(running_app(emulator, tmp_path / "gunicorn.log"))
            return Stack(emulator, app)

        yield start


def assert_completed(stack: Stack, response: requests.Response, kind: str, email: str = JANE) -> None:
    """Validated, exchanged with jwt-bearer for the CPI client, iFlow called as the user."""
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["error"] is None
    assert [(s["name"], s["outcome"]) for s in data["steps"]] == [
        ("validate", "ok"), ("exchange", "ok"), ("role", "ok"), ("iflow", "ok")]
    assert data["user_token"]["kind"] == kind
    claims = data["user_token"]["claims"]
    assert (claims["email"] if kind == "ias" else claims["user_name"]) == email
    exchanged = data["exchanged_token"]["claims"]
    cpi = stack.emulator.vcap_services["it-rt"][0]["credentials"]["oauth"]
    assert exchanged["grant_type"] == JWT_BEARER
    assert exchanged["client_id"] == cpi["clientid"]
    assert exchanged["user_name"] == email
    assert stack.cpi_scope in exchanged["scope"]
    assert data["iflow"]["status"] == 200
    assert data["iflow"]["headers"]["sap_messageprocessinglogid"].startswith("AGd")
    answer = json.loads(data["iflow"]["body"])  # the emulated iFlow echoes what CPI saw
    assert answer["user"] == email
    assert answer["grant_type"] == JWT_BEARER
    assert answer["correlation_id"] == response.headers["x-correlationid"]
    assert json.loads(answer["body"]) == PAYLOAD


# --- the unchanged configuration ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ias", "xsuaa"])
def test_a_user_token_of_either_kind_is_exchanged_and_reaches_the_iflow(stack: Stack, kind: str) -> None:
    token = stack.login("jane", kind)
    mark = stack.mark()

    response = stack.homepage(token)

    assert_completed(stack, response, kind)
    # Keys are cached: one exchange and one iFlow call, nothing else.
    assert stack.calls_since(mark) == [(*TOKEN, 200), (*IFLOW, 200)]
    assert token not in response.text


def test_a_user_without_the_cpi_role_is_told_which_role_is_missing(stack: Stack) -> None:
    mark = stack.mark()

    response = stack.homepage(stack.login("john", "ias"))

    assert response.status_code == 403, response.text
    data = response.json()
    assert data["error"]["step"] == "role"
    assert "Ntif.Read" in data["error"]["cause"] and "Ntif.Read" in data["error"]["fix"]
    assert data["exchanged_token"]["claims"]["user_name"] == JOHN
    assert data["exchanged_token"]["claims"]["scope"] == ["openid"]
    assert stack.calls_since(mark) == [(*TOKEN, 200)]  # the iFlow was not called


def test_token_endpoint_503_until_cleared_then_the_app_recovers(stack: Stack) -> None:
    stack.emulator.fault("xsuaa.token", status=503, count=0,
                         json={"error": "server_error", "error_description": "XSUAA is down"})
    token = stack.login("jane", "ias")
    mark = stack.mark()

    down = stack.homepage(token)

    assert down.status_code == 503, down.text
    error = down.json()["error"]
    assert error["step"] == "exchange"
    assert error["cause"] == "the token endpoint is unavailable (HTTP 503)"
    assert error["server"] == {"error": "server_error", "error_description": "XSUAA is down"}
    calls = stack.calls_since(mark)
    assert set(calls) == {(*TOKEN, 503)} and len(calls) > 1, calls  # retried, then given up; no iFlow

    stack.emulator.clear_faults()
    mark = stack.mark()

    assert_completed(stack, stack.homepage(token), "ias")
    assert stack.calls_since(mark) == [(*TOKEN, 200), (*IFLOW, 200)]


def test_one_token_endpoint_503_is_retried_unseen(stack: Stack) -> None:
    stack.emulator.fault("xsuaa.token", status=503, retry_after=0)
    mark = stack.mark()

    assert_completed(stack, stack.homepage(stack.login("jane", "xsuaa")), "xsuaa")
    assert stack.calls_since(mark) == [(*TOKEN, 503), (*TOKEN, 200), (*IFLOW, 200)]


def test_a_slow_token_endpoint_within_the_read_timeout_is_waited_for(stack: Stack) -> None:
    stack.emulator.fault("xsuaa.token", delay=0.5)

    response = stack.homepage(stack.login("jane", "ias"))

    assert_completed(stack, response, "ias")
    exchange = next(s for s in response.json()["steps"] if s["name"] == "exchange")
    assert exchange["took_ms"] >= 500


def test_an_iflow_500_becomes_502_with_the_iflows_answer(stack: Stack) -> None:
    stack.emulator.fault("cpi.iflow", status=500, body="Exception in route: division by zero",
                         content_type="text/plain; charset=utf-8")
    mark = stack.mark()

    response = stack.homepage(stack.login("jane", "ias"))

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["step"] == "iflow"
    assert error["cause"] == "the iFlow failed (HTTP 500)"
    assert error["upstream"] == {"status": 500, "body": "Exception in route: division by zero"}
    assert stack.calls_since(mark) == [(*TOKEN, 200), (*IFLOW, 500)]  # a sent POST is not repeated


def test_no_token_or_secret_of_the_emulator_reaches_the_apps_log(stack: Stack) -> None:
    assert_completed(stack, stack.homepage(stack.login("jane", "xsuaa")), "xsuaa")
    services = stack.emulator.vcap_services
    secrets = {
        "it-rt clientsecret": services["it-rt"][0]["credentials"]["oauth"]["clientsecret"],
        "xsuaa clientsecret": services["xsuaa"][0]["credentials"]["clientsecret"],
        "identity clientsecret": services["identity"][0]["credentials"]["clientsecret"],
    }
    secrets.update({f"user token {i}": t for i, t in enumerate(stack.app.sent_tokens)})
    log = stack.app.log()
    assert "Booting worker" in log
    assert [name for name, value in secrets.items() if value in log] == []


# --- the tutorials' failures, each made by changing one file ---------------------------------


def test_without_xsuaa_cross_consumption_the_ias_token_is_refused_and_the_fix_named(
        start_stack: Callable[..., Stack]) -> None:
    def no_cross_consumption(config_ias: dict[str, Any]) -> None:
        config_ias["xsuaa-cross-consumption"] = False

    stack = start_stack({"config-ias.json": no_cross_consumption})
    mark = stack.mark()

    response = stack.homepage(stack.login("jane", "ias"))

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["step"] == "exchange"
    assert "audience lacks the subaccount XSUAA" in error["cause"]
    assert "\"xsuaa-cross-consumption\": true" in error["fix"] and "config-ias.json" in error["fix"]
    assert error["server"]["error"] == "invalid_token"
    assert "not in the token audience" in error["server"]["error_description"]
    assert stack.calls_since(mark, keys=False) == [(*TOKEN, 401)]
    # XSUAA's own tokens do not depend on it.
    assert_completed(stack, stack.homepage(stack.login("jane", "xsuaa")), "xsuaa")


def test_without_the_jwt_bearer_grant_for_cpi_the_fix_names_grant_types(
        start_stack: Callable[..., Stack]) -> None:
    def no_jwt_bearer(config_cpi: dict[str, Any]) -> None:
        config_cpi["grant-types"] = [g for g in config_cpi["grant-types"] if g != JWT_BEARER]
        assert config_cpi["grant-types"], "the deploy file should keep client_credentials"

    stack = start_stack({"config-cpi.json": no_jwt_bearer})

    for kind in ("ias", "xsuaa"):
        mark = stack.mark()
        response = stack.homepage(stack.login("jane", kind))

        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["step"] == "exchange"
        assert "CPI does not allow the jwt-bearer grant" in error["cause"]
        assert JWT_BEARER in error["fix"]
        assert "grant-types" in error["fix"] and "config-cpi.json" in error["fix"]
        assert error["server"] == {"error": "invalid_client", "error_description": "Unauthorized grant type"}
        assert stack.calls_since(mark, keys=False) == [(*TOKEN, 401)]  # a 4xx is not retried; no iFlow call


def test_without_the_cpi_role_in_the_role_collection_the_fix_names_the_role(
        start_stack: Callable[..., Stack]) -> None:
    def no_cpi_role(users: dict[str, Any]) -> None:
        collection = users["role_collections"]["CPI_Notification_Reader"]
        collection.remove("it-rt.Ntif.Read")

    stack = start_stack({"users.json": no_cpi_role})
    mark = stack.mark()

    response = stack.homepage(stack.login("jane", "ias"))

    assert response.status_code == 403, response.text
    data = response.json()
    assert data["error"]["step"] == "role"
    assert "lacks the CPI role Ntif.Read" in data["error"]["cause"]
    assert stack.cpi_scope in data["error"]["cause"]
    assert "Ntif.Read" in data["error"]["fix"] and "role collection" in data["error"]["fix"]
    assert data["exchanged_token"]["claims"]["scope"] == ["openid"]
    assert stack.calls_since(mark, keys=False) == [(*TOKEN, 200)]  # refused before CPI


def test_an_x509_cpi_binding_authenticates_with_its_client_certificate(
        start_stack: Callable[..., Stack]) -> None:
    stack = start_stack(x509=True)
    oauth = stack.emulator.vcap_services["it-rt"][0]["credentials"]["oauth"]
    assert "BEGIN CERTIFICATE" in oauth["certificate"] and "PRIVATE KEY" in oauth["key"]
    assert "clientsecret" not in oauth

    for kind in ("ias", "xsuaa"):
        mark = stack.mark()
        assert_completed(stack, stack.homepage(stack.login("jane", kind)), kind)
        assert stack.calls_since(mark, keys=False) == [(*TOKEN, 200), (*IFLOW, 200)]


# --- keys: the first unknown kid is refetched at once (the cooldown counts from the last
# unknown kid); these rotate the shared emulator's keys, so they come last, XSUAA before IAS.


def test_after_key_rotation_new_tokens_cost_one_refetch_and_old_ones_still_work(stack: Stack) -> None:
    old_token = stack.login("jane", "xsuaa")  # signed with the key in use, sent after the rotation
    rotated = stack.emulator.rotate_keys("xsuaa", overlap=300)
    assert len(rotated["published"]) == 2
    mark = stack.mark()

    new = stack.homepage(stack.login("jane", "xsuaa"))

    assert_completed(stack, new, "xsuaa")
    assert new.json()["user_token"]["header"]["kid"] == rotated["signing_kid"]
    assert stack.calls_since(mark) == [(*XSUAA_KEYS, 200), (*TOKEN, 200), (*IFLOW, 200)]

    mark = stack.mark()
    old = stack.homepage(old_token)
    another_new = stack.homepage(stack.login("jane", "xsuaa"))

    assert_completed(stack, old, "xsuaa")
    assert old.json()["user_token"]["header"]["kid"] != rotated["signing_kid"]
    assert_completed(stack, another_new, "xsuaa")
    assert (*XSUAA_KEYS, 200) not in stack.calls_since(mark)  # no further key fetch


def test_a_key_endpoint_outage_after_a_warm_cache_does_not_stop_the_app(stack: Stack) -> None:
    for endpoint in ("xsuaa.keys", "ias.keys", "ias.discovery"):
        stack.emulator.fault(endpoint, status=503, count=0)
    mark = stack.mark()

    for kind in ("ias", "xsuaa"):
        assert_completed(stack, stack.homepage(stack.login("jane", kind)), kind)
    assert stack.calls_since(mark) == [(*TOKEN, 200), (*IFLOW, 200)] * 2

    # A token under a new IAS key makes the app try the key endpoint: the fetch fails, the
    # new kid stays unknown, and the keys the app has keep serving the tokens it can check.
    old_token = stack.login("jane", "ias")
    stack.emulator.rotate_keys("ias", overlap=300)
    mark = stack.mark()

    unknown_kid = stack.homepage(stack.login("jane", "ias"))

    assert unknown_kid.status_code == 401, unknown_kid.text
    assert unknown_kid.json()["error"]["step"] == "validate"
    assert "does not publish" in unknown_kid.json()["error"]["cause"]
    calls = stack.calls_since(mark)
    assert calls and set(calls) == {(*IAS_KEYS, 503)}, calls  # the refetch (and its retries) failed

    mark = stack.mark()
    assert_completed(stack, stack.homepage(old_token), "ias")
    assert stack.calls_since(mark) == [(*TOKEN, 200), (*IFLOW, 200)]
