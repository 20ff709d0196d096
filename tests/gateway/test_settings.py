"""The gateway's environment: SESSION_TIMEOUT in minutes (approuter's unit; a decimal fraction
too, for tests of the idle timeout), JWT_REFRESH; a bad value stops the start, named."""

from __future__ import annotations

import json

import pytest

from gateway.settings import GatewaySettings
from seccore import ConfigError
from tests import factories

CF = {"VCAP_APPLICATION": json.dumps({"application_uris": ["frontrouter.cfapps.eu10.hana.ondemand.com"]})}
BASE = {"VCAP_SERVICES": json.dumps(factories.vcap_services()), "SESSION_SECRET": "s" * 48,
        "destinations": json.dumps([{"name": "frontapp", "url": "http://127.0.0.1:8080"}])}


@pytest.mark.parametrize(("value", "seconds"), [
    (None, 15 * 60),  # xs-app.json's sessionTimeout
    ("15", 900), ("1", 60), ("0.05", 3), ("0.5", 30), ("120", 7200),
])
def test_session_timeout_is_minutes(value: str | None, seconds: int) -> None:
    env = BASE if value is None else {**BASE, "SESSION_TIMEOUT": value}
    assert GatewaySettings.from_env(env).session_timeout_seconds == seconds


@pytest.mark.parametrize("value", ["0", "0.001", "-1", "abc", "1e3", "", " 5", "5 min", "NaN", "inf"])
def test_a_session_timeout_that_is_not_a_positive_duration_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="SESSION_TIMEOUT"):
        GatewaySettings.from_env({**BASE, "SESSION_TIMEOUT": value})


@pytest.mark.parametrize(("value", "seconds"), [(None, 300), ("0", 0), ("10", 600)])
def test_jwt_refresh_is_whole_minutes_and_zero_switches_it_off(value: str | None, seconds: int) -> None:
    env = BASE if value is None else {**BASE, "JWT_REFRESH": value}
    assert GatewaySettings.from_env(env).jwt_refresh_seconds == seconds


@pytest.mark.parametrize(("value", "seconds"), [(None, 8 * 3600), ("60", 3600), ("720", 12 * 3600)])
def test_session_max_lifetime_is_minutes_with_8_hours_by_default(value: str | None, seconds: int) -> None:
    env = BASE if value is None else {**BASE, "SESSION_MAX_LIFETIME": value}
    assert GatewaySettings.from_env(env).session_max_lifetime_seconds == seconds


@pytest.mark.parametrize("value", ["0", "-5", "8h", ""])
def test_a_session_max_lifetime_below_a_minute_stops_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="SESSION_MAX_LIFETIME"):
        GatewaySettings.from_env({**BASE, "SESSION_MAX_LIFETIME": value})


@pytest.mark.parametrize(("env", "host", "served"), [
    pytest.param({}, "localhost:5000", True, id="local: localhost"),
    pytest.param({}, "127.0.0.1:5000", True, id="local: 127.0.0.1"),
    pytest.param({}, "[::1]:5000", True, id="local: ::1"),
    pytest.param({}, "evil.example", False, id="local: another name"),
    pytest.param({}, "localhost.evil.example", False, id="local: a name that starts like localhost"),
    pytest.param(CF, "frontrouter.cfapps.eu10.hana.ondemand.com", True, id="CF: its route"),
    pytest.param(CF, "localhost", False, id="CF: not loopback"),
    pytest.param({"VCAP_APPLICATION": json.dumps({"application_uris": ["a.example.com/app"]})},
                 "A.example.com", True, id="CF: route with a path, any case"),
    pytest.param({"PUBLIC_HOSTS": "app.example.com, other.example.com:8443"}, "other.example.com:8443", True,
                 id="PUBLIC_HOSTS"),
    pytest.param({"PUBLIC_HOSTS": "app.example.com"}, "evil.example", False, id="PUBLIC_HOSTS: another"),
])
def test_the_gateway_answers_only_to_its_own_host_names(env: dict[str, str], host: str, served: bool) -> None:
    assert GatewaySettings.from_env({**BASE, **env}).serves_host(host) is served


@pytest.mark.parametrize("value", ["", "https://app.example.com", "app.example.com/x", "a b"])
def test_public_hosts_that_are_not_host_names_stop_the_start(value: str) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_HOSTS"):
        GatewaySettings.from_env({**BASE, "PUBLIC_HOSTS": value})


@pytest.mark.parametrize("label", ["identity", "xsuaa"])
def test_an_identity_binding_over_plain_http_stops_the_start(label: str) -> None:
    """OIDC-21: the gateway would send its client secret and take ID tokens over plain http."""
    services = factories.vcap_services()
    credentials = services[label][0]["credentials"]
    credentials["url"] = credentials["url"].replace("https://", "http://")
    with pytest.raises(ConfigError, match="'url' must be an https URL"):
        GatewaySettings.from_env({**BASE, "VCAP_SERVICES": json.dumps(services)})
