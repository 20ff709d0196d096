"""SAP's own validator, sap-xssec, accepts the emulator's XSUAA and IAS tokens with the
bindings the emulator writes: the emulator is not tuned to our validator (seccore).

sap-xssec fetches the keys itself, with httpx over HTTPS: from
``https://<uaadomain>/token_keys?zid=<zid>`` (XSUAA, the PEM ``value`` of the entry) and from
the issuer's discovery ``jwks_uri`` (IAS, whose issuer must be one DNS label under a binding
domain: ``https://127.0.0.1:<port>`` under ``0.0.1:<port>``). httpx trusts the emulator's CA
through ``SSL_CERT_FILE`` (httpx/_config.py ``create_ssl_context``: sap-xssec passes no
``verify``, so the default, which reads that variable, applies). Nothing else is patched.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from sap import xssec

from emulator.vcap import vcap_services
from tests.emulator.conftest import RunningEmulator

JANE = "jane.doe@example.com"
#: Variables that would send httpx elsewhere or make it trust other CAs.
_FOREIGN = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
            "SSL_CERT_DIR", "XSAPPNAME", "SAP_JWT_TRUST_ACL")


@pytest.fixture(autouse=True)
def _trust_the_emulator_ca(monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator) -> None:
    for name in _FOREIGN:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(emulator.pki.ca_file))


def credentials(emulator: RunningEmulator, label: str) -> dict[str, Any]:
    """The credentials of the binding the emulator writes for ``label``, as sap-xssec takes them."""
    return vcap_services(emulator.config)[label][0]["credentials"]


def mint(emulator: RunningEmulator, user: str, kind: str) -> str:
    response = requests.post(emulator.https + "/_emu/token", json={"user": user, "kind": kind},
                             verify=emulator.pki.ca_file, timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def tampered(token: str, **changes: object) -> str:
    """The token with its payload changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_the_xsuaa_binding_is_of_the_shape_sap_xssec_reads(emulator: RunningEmulator) -> None:
    xsuaa = credentials(emulator, "xsuaa")
    assert xsuaa["verificationkey"] == ""  # keys come from uaadomain, as on BTP today
    assert not xsuaa["uaadomain"].startswith("https://")
    ias = credentials(emulator, "identity")
    assert ias["url"] == emulator.config.urls.ias
    assert ias["domains"] == [emulator.config.urls.ias_domain]


def test_sap_xssec_accepts_an_xsuaa_user_token(emulator: RunningEmulator) -> None:
    binding = credentials(emulator, "xsuaa")

    context = xssec.create_security_context_xsuaa(mint(emulator, "jane", "xsuaa"), binding)

    assert context.get_logon_name() == JANE
    assert context.get_email() == JANE
    assert (context.get_given_name(), context.get_family_name()) == ("Jane", "Doe")
    assert context.get_clientid() == binding["clientid"]
    assert context.get_zone_id() == binding["zoneid"]
    assert context.get_grant_type() == "authorization_code"
    assert context.get_origin() == "sap.custom"
    assert context.check_local_scope("Display")  # $XSAPPNAME.Display of xs-security.json
    assert context.check_scope(binding["xsappname"] + ".Display")


def test_sap_xssec_accepts_an_ias_id_token(emulator: RunningEmulator) -> None:
    binding = credentials(emulator, "identity")

    context = xssec.create_security_context_ias(mint(emulator, "jane", "ias"), binding)

    assert context.get_issuer() == emulator.config.urls.ias
    assert context.token_payload["email"] == JANE
    assert binding["clientid"] in context.token_payload["aud"]
    assert context.token_payload["app_tid"] == binding["app_tid"]


def test_sap_xssec_rejects_a_tampered_xsuaa_token(emulator: RunningEmulator) -> None:
    forged = tampered(mint(emulator, "john", "xsuaa"), user_name=JANE, email=JANE)

    with pytest.raises(RuntimeError, match="validation of access token"):
        xssec.create_security_context_xsuaa(forged, credentials(emulator, "xsuaa"))


def test_sap_xssec_rejects_a_tampered_ias_token(emulator: RunningEmulator) -> None:
    forged = tampered(mint(emulator, "john", "ias"), email=JANE)

    with pytest.raises(RuntimeError, match="Signature verification failed"):
        xssec.create_security_context_ias(forged, credentials(emulator, "identity"))
