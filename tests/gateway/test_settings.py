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


DESTINATION_URL_PROBLEM = "'url' must be https (http only on loopback), without user info, query or fragment"


def _with_destination_url(url: object) -> dict[str, str]:
    return {**BASE, "destinations": json.dumps([{"name": "frontapp", "url": url}])}


@pytest.mark.parametrize("url", [
    pytest.param("https://backend.example.com", id="https"),
    pytest.param("https://backend.example.com:8443/base/", id="https with port and path"),
    pytest.param("http://localhost:8080", id="http on localhost"),
    pytest.param("http://127.0.0.1:8080", id="http on 127.0.0.1"),
    pytest.param("http://127.0.0.2", id="http on another loopback address"),
    pytest.param("http://[::1]:8080", id="http on IPv6 loopback"),
])
def test_a_destination_url_that_is_https_or_loopback_http_is_taken(url: str) -> None:
    """SSRF-07: the accepted forms; the trailing slash is dropped, as the path is appended."""
    destination = GatewaySettings.from_env(_with_destination_url(url)).destinations["frontapp"]
    assert destination.url == url.rstrip("/")


@pytest.mark.parametrize("url", [
    # SSRF-07: scheme, user info, query, fragment, a URL that is not one
    pytest.param("http://backend.example.com", id="SSRF-07 http to a remote host"),
    pytest.param("http://10.0.0.5:8080", id="SSRF-07 http to a private address"),
    pytest.param("http://169.254.169.254/latest", id="SSRF-07 http to the metadata address"),
    pytest.param("http://127.0.0.1.nip.io", id="SSRF-07 http to a name that starts like loopback"),
    pytest.param("ftp://backend.example.com", id="SSRF-07 ftp"),
    pytest.param("file:///etc/passwd", id="SSRF-07 file"),
    pytest.param("ws://localhost:8080", id="SSRF-07 websocket scheme"),
    pytest.param("backend.example.com", id="SSRF-07 no scheme"),
    pytest.param("//backend.example.com", id="SSRF-07 scheme-relative"),
    pytest.param("https:///path", id="SSRF-07 no host"),
    pytest.param("", id="SSRF-07 empty"),
    pytest.param(None, id="SSRF-07 missing"),
    pytest.param(42, id="SSRF-07 not a string"),
    pytest.param("https://user:secret@backend.example.com", id="SSRF-07 user and password"),
    pytest.param("https://user@backend.example.com", id="SSRF-07 user"),
    pytest.param("https://trusted.example.com@evil.example", id="SSRF-07 user info naming another host"),
    pytest.param("http://localhost@evil.example", id="SSRF-07 loopback as user info"),
    pytest.param("https://backend.example.com/?a=1", id="SSRF-07 query"),
    pytest.param("https://backend.example.com#top", id="SSRF-07 fragment"),
    # the proxy appends the request path: "https://h?" + "/x" would send the path as a query
    pytest.param("https://backend.example.com?", id="SSRF-07 empty query"),
    pytest.param("https://backend.example.com#", id="SSRF-07 empty fragment"),
    pytest.param("https://[backend.example.com", id="SSRF-07 unbalanced bracket"),
    pytest.param("https://backend.example.com:https", id="SSRF-07 port that is not a number"),
    pytest.param("https://backend.example.com:99999", id="SSRF-07 port out of range"),
    # SSRF-08: numeric forms the resolver (inet_aton) turns into loopback; plain http is allowed
    # only on loopback, and these are not taken as loopback
    pytest.param("http://2130706433", id="SSRF-08 loopback as a decimal number"),
    pytest.param("http://0177.0.0.1", id="SSRF-08 loopback in octal"),
    pytest.param("http://0x7f.1", id="SSRF-08 loopback in hex, short form"),
    pytest.param("http://0x7f000001", id="SSRF-08 loopback as one hex number"),
    pytest.param("http://127.1", id="SSRF-08 loopback, short form"),
    pytest.param("http://[::ffff:127.0.0.1]", id="SSRF-08 loopback IPv4-mapped in IPv6"),
    pytest.param("http://2852039166", id="SSRF-08 metadata address as a decimal number"),
])
def test_a_bad_destination_url_stops_the_start_named(url: object) -> None:
    with pytest.raises(ConfigError) as info:
        GatewaySettings.from_env(_with_destination_url(url))
    # the routes naming the refused destination are reported too
    assert info.value.problems[0] == f"destinations[0] (frontapp): {DESTINATION_URL_PROBLEM}"
