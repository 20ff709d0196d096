"""F-23: a token endpoint or an iFlow whose certificate the app does not trust. The app fails
closed (nothing is sent, verification cannot be switched off), answers 502 with a diagnosis
naming the certificate, and logs the TLS failure (ASVS5 16.3.4).

Real sockets: the keys and the trusted half come from an upstream server of this module (the
session's CA, in REQUESTS_CA_BUNDLE; not the session's server, whose key fetches other modules
count); the untrusted half is a second upstream server whose certificate is signed by another
CA, for the same name (``localhost``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.settings import AppSettings
from tests import factories
from tests.integration.conftest import running_upstream, vcap_services
from tests.integration.servers import IFLOW_PATH, TOKEN_PATH, Pki, Upstream, make_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trusted(pki: Pki) -> Iterator[Upstream]:
    with running_upstream(pki) as server:
        yield server


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """The same stand-ins, with a certificate from a CA the app does not know."""
    with running_upstream(make_pki(tmp_path_factory.mktemp("other-pki"))) as server:
        yield server


def _services(upstream: Upstream, untrusted: Upstream, failing: str) -> dict[str, Any]:
    services = vcap_services(upstream)
    oauth = services["it-rt"][0]["credentials"]["oauth"]
    if failing == "exchange":
        oauth["tokenurl"] = untrusted.origin + TOKEN_PATH
    else:
        oauth["url"] = untrusted.origin
    return services


@pytest.mark.parametrize(("failing", "cause"), [
    pytest.param("exchange", "the TLS certificate of the token endpoint is not trusted", id="token endpoint"),
    pytest.param("iflow", "the TLS certificate of the CPI runtime is not trusted", id="iFlow"),
])
def test_an_untrusted_certificate_fails_closed_with_a_diagnosis_and_a_log_line(
        failing: str, cause: str, trusted: Upstream, untrusted: Upstream, pki: Pki,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    upstream = trusted
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca_file))  # the upstream's CA only
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    trusted.reset()
    untrusted.reset()
    environ = {"VCAP_SERVICES": json.dumps(_services(upstream, untrusted, failing)), "LOG_FORMAT": "json"}
    client = create_app(AppSettings.from_env(environ)).test_client()
    token = factories.sign(factories.xsuaa_claims(jti=uuid.uuid4().hex))

    response = client.get("/homepage", headers={"Authorization": f"Bearer {token}",
                                                "Accept": "application/json"})

    assert response.status_code == 502, response.text
    error = response.json["error"]
    assert (error["step"], error["cause"]) == (failing, cause)
    assert untrusted.calls == []  # the handshake failed: no assertion, no token, no payload sent
    if failing == "iflow":
        assert len(upstream.calls_to(TOKEN_PATH)) == 1 and upstream.calls_to(IFLOW_PATH) == []
    logs = capsys.readouterr().err
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    tls = [line for line in lines if line["level"] == "warning" and "TLS" in line["msg"]]
    assert len(tls) == 1, logs
    assert tls[0]["logger"] == f"seccore.{failing}"
    assert "CERTIFICATE_VERIFY_FAILED" in tls[0]["msg"]
    assert tls[0]["correlation_id"] == response.headers["x-correlationid"]
    assert token not in logs and factories.CPI_SECRET not in logs


#: Ways to switch certificate verification off in requests, urllib3, ssl and aiohttp.
INSECURE = re.compile(r"verify\s*=\s*False|ssl\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False"
                      r"|_create_unverified_context|disable_warnings")


@pytest.mark.parametrize("folder", ["app", "seccore", "gateway"])
def test_no_code_switches_certificate_verification_off(folder: str) -> None:
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / folder).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if INSECURE.search(line)]
    assert offenders == []
