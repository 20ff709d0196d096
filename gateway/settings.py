"""The gateway's settings, read once from the environment, the bindings and ``xs-app.json``,
with approuter's variable names and defaults (approuter.md §2.3)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.routes import DEFAULT_SESSION_TIMEOUT_MINUTES, AppConfig, load_app_config
from gateway.sessions import RedisStore, redis_store_from_env, session_secret_from_env
from seccore import ConfigError, IdentityBindings, load_identity_bindings

__all__ = ["Destination", "GatewaySettings"]

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 5000  # approuter's
DEFAULT_JWT_REFRESH_MINUTES = 5  # approuter's JWT_REFRESH
#: A session ends this long after its login, however active (ASVS 7.3.2); approuter has no such limit.
DEFAULT_SESSION_MAX_LIFETIME_MINUTES = 8 * 60
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?")
DEFAULT_DESTINATION_TIMEOUT_MS = 30_000  # approuter's; approuter's "0 = none" is not offered
_DESTINATION_KEYS = {"name", "url", "forwardAuthToken", "timeout"}


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    forward_auth_token: bool
    timeout_seconds: float


@dataclass(frozen=True)
class GatewaySettings:
    app_config: AppConfig
    destinations: Mapping[str, Destination]
    identity: IdentityBindings
    session_timeout_seconds: int
    jwt_refresh_seconds: int
    session_secret: bytes
    redis: RedisStore | None
    trusted_proxy_hops: int
    port: int
    host: str = "0.0.0.0"  # noqa: S104 - Cloud Foundry routes to the container's interface
    max_request_body: int = 10 * 1024 * 1024
    session_max_lifetime_seconds: int = DEFAULT_SESSION_MAX_LIFETIME_MINUTES * 60
    #: the Host values this gateway answers to (its routes); empty: loopback names only
    public_hosts: frozenset[str] = frozenset()

    def serves_host(self, host: str) -> bool:
        """Whether ``host`` (a Host header) names this gateway. Redirect URIs and the logout page
        are built from it, so a forged Host must not get that far (OIDC-11)."""
        host = host.lower()
        if self.public_hosts:
            return host in self.public_hosts or host_name(host) in self.public_hosts
        return is_loopback(host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GatewaySettings:
        """Build the settings; raise one ConfigError naming every problem."""
        problems: list[str] = []
        identity = _collect(problems, lambda: load_identity_bindings(environ))
        bound = frozenset(k for k, b in (("xsuaa", getattr(identity, "xsuaa", None)),
                                        ("ias", getattr(identity, "ias", None))) if b is not None)
        xsappname = identity.xsuaa.xsappname if identity is not None and identity.xsuaa else None
        routes_file = Path(environ.get("XS_APP_FILE", HERE / "xs-app.json"))
        app_config = _collect(problems, lambda: load_app_config(routes_file, xsappname=xsappname,
                                                                bound=bound))
        destinations = _destinations(environ.get("destinations", "[]"), problems)
        for route in app_config.routes if app_config else ():
            if route.destination not in destinations:
                problems.append(f"{routes_file}: routes[{route.index}] names the destination "
                                f"{route.destination!r}, which the 'destinations' variable lacks")
        redis = _collect(problems, lambda: redis_store_from_env(environ))
        secret = _collect(problems, lambda: session_secret_from_env(environ, shared=redis is not None))
        timeout = _timeout_seconds(environ, app_config.session_timeout_minutes
                                   if app_config and app_config.session_timeout_minutes
                                   else DEFAULT_SESSION_TIMEOUT_MINUTES, problems)
        refresh = _int(environ, "JWT_REFRESH", DEFAULT_JWT_REFRESH_MINUTES, problems)  # minutes, 0: off
        lifetime = _int(environ, "SESSION_MAX_LIFETIME", DEFAULT_SESSION_MAX_LIFETIME_MINUTES, problems)
        if lifetime < 1:
            problems.append("SESSION_MAX_LIFETIME must be at least 1 minute")
        hosts = _public_hosts(environ, problems)
        hops = _int(environ, "TRUSTED_PROXY_HOPS", 1 if "VCAP_APPLICATION" in environ else 0, problems)
        port = _int(environ, "PORT", DEFAULT_PORT, problems)
        if problems:
            raise ConfigError(problems)
        assert identity is not None and app_config is not None and secret is not None
        return cls(app_config=app_config, destinations=destinations, identity=identity,
                   session_timeout_seconds=timeout, jwt_refresh_seconds=refresh * 60,
                   session_secret=secret, redis=redis, trusted_proxy_hops=hops, port=port,
                   session_max_lifetime_seconds=lifetime * 60, public_hosts=hosts,
                   host=environ.get("XS_BIND_ADDRESS", "0.0.0.0"))  # noqa: S104 - as approuter


def _collect(problems: list[str], build: Any) -> Any:
    try:
        return build()
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _destinations(raw: str, problems: list[str]) -> dict[str, Destination]:
    try:
        entries = json.loads(raw)
    except ValueError:
        problems.append("the 'destinations' variable is not valid JSON")
        return {}
    if not isinstance(entries, list):
        problems.append("the 'destinations' variable must be a JSON array")
        return {}
    found: dict[str, Destination] = {}
    for i, entry in enumerate(entries):
        where = f"destinations[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(f"{where} needs a 'name'")
            continue
        unknown = set(entry) - _DESTINATION_KEYS
        if unknown:
            problems.append(f"{where} ({entry['name']}): {sorted(unknown)} are not supported by this gateway")
        url = entry.get("url")
        if not isinstance(url, str) or not _acceptable_url(url):
            problems.append(f"{where} ({entry['name']}): 'url' must be https (http only on loopback), "
                            "without user info, query or fragment")
            continue
        timeout = entry.get("timeout", DEFAULT_DESTINATION_TIMEOUT_MS)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            problems.append(f"{where} ({entry['name']}): 'timeout' is milliseconds, a positive number")
            continue
        found[entry["name"]] = Destination(entry["name"], url.rstrip("/"),
                                           entry.get("forwardAuthToken") is True, timeout / 1000)
    return found


def _acceptable_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # "https://[host": a named problem, not a traceback at start
        return False
    # '?' and '#' are tested as characters: urlsplit gives '' for an empty query or fragment, and
    # the proxy appends the request path to this URL, so "https://h?" would send it as the query
    if parts.username or parts.password or "?" in url or "#" in url or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    try:
        return parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _int(environ: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    value = environ.get(name)
    if value is None:
        return default
    if not value.isdigit():
        problems.append(f"{name}={value!r} must be a whole number")
        return default
    return int(value)


def _timeout_seconds(environ: Mapping[str, str], default_minutes: int, problems: list[str]) -> int:
    """SESSION_TIMEOUT in whole seconds: minutes as approuter, and also a decimal fraction
    (``0.05`` = 3 s), which approuter does not take, so that a test of the idle timeout need not
    wait a minute; at least 1 second."""
    value = environ.get("SESSION_TIMEOUT")
    if value is None:
        return default_minutes * 60
    seconds = round(float(value) * 60) if re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,9})?", value) else 0
    if seconds < 1:
        problems.append(f"SESSION_TIMEOUT={value!r} must be minutes above 0, e.g. 15 (or 0.05 for 3 s)")
        return default_minutes * 60
    return seconds


def _public_hosts(environ: Mapping[str, str], problems: list[str]) -> frozenset[str]:
    """PUBLIC_HOSTS (comma-separated ``host`` or ``host:port``), else the routes Cloud Foundry
    mapped to the app (VCAP_APPLICATION ``application_uris``), else none (loopback only)."""
    if "PUBLIC_HOSTS" in environ:
        hosts = [h.strip().lower() for h in environ["PUBLIC_HOSTS"].split(",") if h.strip()]
        bad = [h for h in hosts if not _HOST.fullmatch(h)]
        if bad or not hosts:
            problems.append(f"PUBLIC_HOSTS must list host names such as app.example.com, not "
                            f"{bad or '(none)'}")
        return frozenset(hosts)
    try:
        uris = json.loads(environ.get("VCAP_APPLICATION", "{}")).get("application_uris", [])
    except (ValueError, AttributeError):
        problems.append("VCAP_APPLICATION is not a JSON object")
        return frozenset()
    return frozenset(str(uri).split("/", 1)[0].lower() for uri in uris if isinstance(uri, str) and uri)


def host_name(host: str) -> str:
    """A Host header without its port: ``[::1]:5000`` -> ``[::1]``, ``localhost:5000`` -> ``localhost``."""
    host = host.lower()
    return host if host.endswith("]") else host.rsplit(":", 1)[0]


def is_loopback(host: str) -> bool:
    """Whether a Host header names this machine (``./dev run``, tests)."""
    return host_name(host) in LOOPBACK_NAMES
