"""VCAP_SERVICES → typed credentials: shapes, x509, secrets kept out of repr, collected errors."""

from __future__ import annotations

import json

import pytest

from seccore import ConfigError, load_bindings, load_identity_bindings
from tests import factories as f


def env(services: dict, **extra: str) -> dict[str, str]:
    return {"VCAP_SERVICES": json.dumps(services), **extra}


def test_all_three_bindings_are_found_by_label() -> None:
    b = load_bindings(env(f.vcap_services()))
    assert b.cpi.client_id == f.CPI_CLIENT_ID
    assert b.cpi.tokenurl == f.XSUAA_TOKEN_URL
    assert b.cpi.broker_xsappname == f.CPI_BROKER
    assert b.xsuaa is not None and b.xsuaa.zone_id == f.ZONE_ID and b.xsuaa.uaadomain == f.UAA_DOMAIN
    assert b.ias is not None and b.ias.domains == (f.IAS_DOMAIN, "accounts.cloud.sap")


def test_x509_credentials_carry_certificate_and_key_with_real_line_breaks() -> None:
    b = load_bindings(env(f.vcap_services(x509=True)))
    creds = b.cpi.credentials
    assert creds.is_x509 and creds.client_secret is None
    assert "\n" in (creds.certificate or "") and "\\n" not in (creds.key or "")


@pytest.mark.parametrize("x509", [False, True], ids=["secret", "x509"])
def test_repr_never_shows_secrets(x509: bool) -> None:
    b = load_bindings(env(f.vcap_services(x509=x509)))
    text = repr(b) + str(b.cpi.credentials)
    assert f.CPI_SECRET not in text and "xs-secret" not in text and "ias-secret" not in text
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert f.CPI_CLIENT_ID in text  # ids are not secret and help debugging


def test_a_flat_service_key_in_a_user_provided_service_is_accepted_by_name() -> None:
    services = f.vcap_services()
    key = services.pop("it-rt")[0]["credentials"]["oauth"]
    services["user-provided"] = [{"label": "user-provided", "name": "cpi-key", "credentials": key}]
    b = load_bindings(env(services, CPI_SERVICE_NAME="cpi-key"))
    assert b.cpi.client_id == f.CPI_CLIENT_ID


def _without(label: str) -> dict:
    services = f.vcap_services()
    services.pop(label)
    return services


def _mutated(label: str, path: str, value: object) -> dict:
    services = f.vcap_services()
    creds = services[label][0]["credentials"]
    if label == "it-rt":
        creds = creds["oauth"]
    if value is f.DROP:
        creds.pop(path)
    else:
        creds[path] = value
    return services


def _twice(label: str) -> dict:
    services = f.vcap_services()
    services[label].append({**services[label][0], "name": "second"})
    return services


@pytest.mark.parametrize(("services", "extra", "message"), [
    pytest.param(_without("it-rt"), {}, "no 'it-rt'", id="no cpi binding"),
    pytest.param({"it-rt": f.vcap_services()["it-rt"]}, {}, "neither an 'xsuaa' nor an 'identity'",
                 id="no identity service"),
    pytest.param(_mutated("it-rt", "clientsecret", f.DROP), {}, "neither 'clientsecret'", id="no secret"),
    pytest.param(_mutated("it-rt", "tokenurl", "http://x/oauth/token"), {}, "'tokenurl' must be an https",
                 id="plain http tokenurl"),
    pytest.param(_mutated("it-rt", "url", "https://user:pw@host"), {}, "'url' must be an https URL",
                 id="userinfo in url"),
    pytest.param(_mutated("xsuaa", "uaadomain", f.DROP), {}, "lack 'uaadomain'", id="no uaadomain"),
    pytest.param(_mutated("identity", "domains", []), {}, "lack 'domains'", id="no ias domains"),
    pytest.param(_mutated("it-rt", "certificate", "-----BEGIN CERTIFICATE-----"), {},
                 None, id="certificate beside a secret is x509 without key"),
    pytest.param(_twice("xsuaa"), {}, "2 'xsuaa' services are bound", id="two xsuaa"),
    pytest.param(f.vcap_services(), {"CPI_SERVICE_NAME": "nope"}, "names no bound service",
                 id="unknown CPI_SERVICE_NAME"),
])
def test_configuration_errors_name_the_problem(services: dict, extra: dict, message: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        load_bindings(env(services, **extra))
    assert message is None or message in str(caught.value)
    assert f.CPI_SECRET not in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    services = _mutated("it-rt", "tokenurl", "ftp://x")
    services["xsuaa"][0]["credentials"].pop("xsappname")
    with pytest.raises(ConfigError) as caught:
        load_bindings(env(services))
    assert len(caught.value.problems) == 2
    assert str(caught.value).startswith("invalid configuration:\n  - ")


def test_broken_vcap_services_json_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="VCAP_SERVICES is not valid JSON"):
        load_bindings({"VCAP_SERVICES": "{not json"})


def test_the_gateway_loads_its_identity_bindings_without_a_cpi_binding() -> None:
    services = f.vcap_services()
    services.pop("it-rt")
    identity = load_identity_bindings(env(services))
    assert identity.xsuaa is not None and identity.ias is not None
    with pytest.raises(ConfigError, match="lack 'uaadomain'"):
        load_identity_bindings(env(_mutated("xsuaa", "uaadomain", f.DROP)))


@pytest.mark.parametrize(("label", "url", "name"), [
    pytest.param("identity", "http://tenant.accounts.ondemand.com", "frontapp-ias", id="IAS over http"),
    pytest.param("xsuaa", f"http://{f.SUBDOMAIN}.{f.UAA_DOMAIN}", "frontapp-xsuaa", id="XSUAA over http"),
    pytest.param("identity", "ftp://tenant.accounts.ondemand.com", "frontapp-ias", id="IAS, another scheme"),
    pytest.param("identity", "tenant.accounts.ondemand.com", "frontapp-ias", id="IAS, no scheme"),
    pytest.param("identity", "https://user:pw@tenant.accounts.ondemand.com", "frontapp-ias",
                 id="IAS, user info"),
])
def test_an_identity_service_not_reached_over_https_is_refused(label: str, url: str, name: str) -> None:
    """OIDC-21: the login's issuer, token and authorization endpoints all derive from ``url``."""
    services = _mutated(label, "url", url)
    services.pop("it-rt")
    with pytest.raises(ConfigError) as caught:
        load_identity_bindings(env(services))
    assert caught.value.problems == [f"service {name!r}: 'url' must be an https URL without user info"]
