"""LEAK-07, the app's half: a refused token is logged with the reason's code (RFC 6750's error
classes: missing_token, invalid_token), the step and the status, under the
request's correlation id, and never with the token itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import responses

from app import create_app
from app.settings import AppSettings
from tests import factories as f
from tests.unit.app_helpers import bearer


@pytest.mark.parametrize(("make", "status", "code"), [
    pytest.param(lambda: None, 401, "missing_token", id="no token"),
    pytest.param(lambda: f.sign(f.xsuaa_claims(), key="attacker"), 401, "invalid_token", id="bad signature"),
    pytest.param(lambda: f.sign(f.xsuaa_claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
                 401, "invalid_token", id="expired"),
    pytest.param(lambda: f.sign(f.xsuaa_claims(zid="another-zone")), 401, "invalid_token", id="other zone"),
    pytest.param(lambda: "not-a-jwt", 401, "invalid_token", id="not a JWT"),
])
def test_a_refused_token_is_logged_with_its_reason_not_the_token(
        make: Callable[[], str | None], status: int, code: str, mocked: responses.RequestsMock,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = AppSettings(bindings=f.bindings(), required_scope="$XSAPPNAME.Display",
                           cpi_role="Ntif.Read", json_logs=True)
    client = create_app(settings).test_client()
    token = make()
    headers = {"Accept": "application/json", **(bearer(token) if token else {})}

    response = client.get("/homepage", headers=headers)

    assert response.status_code == status
    logs = capsys.readouterr().err
    cid = response.headers["x-correlationid"]
    refused = [line for line in map(json.loads, filter(None, logs.splitlines()))
               if line["msg"] == "request refused"]
    assert [(r["step"], r["status"], r["code"], r["correlation_id"]) for r in refused] == [
        ("validate", status, code, cid)]
    if token:
        assert token not in logs and token.split(".")[-1] not in logs
