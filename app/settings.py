"""The app's settings, read once from the environment and the deployed config files."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seccore import Bindings, ConfigError, load_bindings

__all__ = ["AppSettings"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IFLOW_PATH = "/http/ntif"
DEFAULT_PAYLOAD = '{"message": "Hello from frontapp"}'
_LOGOUT_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9_~.-]*)+")
_IFLOW_PATH = re.compile(r"/http/[A-Za-z0-9_~/-]+(?:\.[A-Za-z0-9_~-]+)*")


@dataclass(frozen=True)
class AppSettings:
    bindings: Bindings
    iflow_path: str = DEFAULT_IFLOW_PATH
    iflow_payload: str = DEFAULT_PAYLOAD
    iflow_content_type: str = "application/json"
    #: scope every XSUAA token must carry, ``$XSAPPNAME.<name>`` (from xs-security.json)
    required_scope: str | None = None
    #: the role of the iFlow's sender adapter, checked in the exchanged token (config-cpi.json)
    cpi_role: str | None = None
    json_logs: bool = False
    #: the gateway's central logout (xs-app.json logout.logoutEndpoint), for the page's button
    logout_path: str = "/logout"
    #: validated and exchanged tokens each cache at most this many per worker (~10 KiB a user)
    token_cache_size: int = 2000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, root: Path = ROOT) -> AppSettings:
        """Build the settings; raise one ConfigError naming every problem."""
        problems: list[str] = []
        bindings = None
        try:
            bindings = load_bindings(environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
        path = environ.get("IFLOW_PATH", DEFAULT_IFLOW_PATH)
        if not _IFLOW_PATH.fullmatch(path) or "//" in path:
            problems.append(f"IFLOW_PATH={path!r} must look like /http/<address> (letters, digits, "
                            "'_', '-', '/', '.'; no '..')")
        logout_path = environ.get("LOGOUT_PATH", "/logout")
        if not _LOGOUT_PATH.fullmatch(logout_path):
            problems.append(f"LOGOUT_PATH={logout_path!r} must be a path of the gateway such as /logout")
        cache_size = environ.get("TOKEN_CACHE_SIZE", "2000")
        if not cache_size.isdigit() or not 1 <= int(cache_size) <= 1_000_000:
            problems.append(f"TOKEN_CACHE_SIZE={cache_size!r} must be a whole number of tokens, 1 to 1000000")
            cache_size = "2000"
        payload = environ.get("IFLOW_PAYLOAD", DEFAULT_PAYLOAD)
        content_type = "application/json" if _is_json(payload) else "text/plain; charset=utf-8"
        required_scope = _setting(environ, "REQUIRED_SCOPE", lambda: _first_scope(root))
        cpi_role = _setting(environ, "CPI_ROLE", lambda: _first_role(root))
        # A check that silently disappears with a broken file fails open: name it instead.
        if required_scope is _UNREADABLE and bindings is not None and bindings.xsuaa is not None:
            problems.append("REQUIRED_SCOPE is unset and xs-security.json has no readable scope; set it "
                            "(or set it empty to accept every token of the xsuaa binding)")
        if cpi_role is _UNREADABLE:
            problems.append("CPI_ROLE is unset and config-cpi.json has no readable \"roles\" list; set it "
                            "(or set it empty to skip the role check before calling CPI)")
        if problems:
            raise ConfigError(problems)
        assert bindings is not None
        return cls(
            bindings=bindings, iflow_path=path, iflow_payload=payload, iflow_content_type=content_type,
            required_scope=None if required_scope is _UNREADABLE else required_scope,
            cpi_role=None if cpi_role is _UNREADABLE else cpi_role,
            logout_path=logout_path, token_cache_size=int(cache_size),
            json_logs=environ.get("LOG_FORMAT", "json" if "VCAP_APPLICATION" in environ else "text")
            == "json",
        )


_UNREADABLE: Any = object()  # the config file gave nothing usable


def _setting(environ: Mapping[str, str], name: str, default: Callable[[], str | None]) -> Any:
    # Set but empty switches the check off on purpose; unset falls back to the config file.
    if name in environ:
        return environ[name] or None
    value = default()
    return _UNREADABLE if value is None else value


def _first_scope(root: Path) -> str | None:
    scopes = _read_json(root / "xs-security.json").get("scopes")
    if isinstance(scopes, list) and scopes and isinstance(scopes[0], dict):
        name = scopes[0].get("name")
        return name if isinstance(name, str) and name else None
    return None


def _first_role(root: Path) -> str | None:
    roles = _read_json(root / "config-cpi.json").get("roles")
    if isinstance(roles, list) and roles and isinstance(roles[0], str) and roles[0]:
        return roles[0]
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
